#!/usr/bin/env bash
# The embedded pretrained Euler runs (assets/pretrained/euler64), as a pipeline that resumes
# across sittings: every stage continues its run if the run exists, and a finished stage is
# skipped. Stop it at any time (Ctrl-C saves a checkpoint) and run it again to go on.
#
#   scripts/pretrain-euler64.sh WORKDIR
#
# Each stage starts from the weights embedded today (--init pretrained-*), so a sitting
# improves on what users already have instead of starting over. Raise AE_STEPS, DIF_STEPS or
# SUR_STEPS and run again to train longer (a finished run takes a larger --steps on resume).
# Then pack the runs as the new default:
#
#   scripts/pack-pretrained.py WORKDIR/ae WORKDIR/dif WORKDIR/sur
#   scripts/pack-web-weights.py
#
# Environment: LEMUR (the binary; default target/release/lemur, else `lemur` on PATH),
# BACKEND (cpu or gpu; default auto), AE_STEPS, DIF_STEPS, SUR_STEPS, TRAJECTORIES.
set -euo pipefail

work=${1:?usage: scripts/pretrain-euler64.sh WORKDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
lemur=${LEMUR:-$here/target/release/lemur}
[ -x "$lemur" ] || lemur=lemur
backend=${BACKEND:-auto}
ae_steps=${AE_STEPS:-3000}
dif_steps=${DIF_STEPS:-1500}
sur_steps=${SUR_STEPS:-1000}
mkdir -p "$work"
cd "$work"

# Periodic boundaries: with open ones the waves leave the domain and late frames empty.
[ -f data/stats.json ] || "$lemur" generate euler --periodic --trajectories "${TRAJECTORIES:-64}" \
  --frames 101 --size 64x64 --seed 0 --out data

# train KIND RUN STEPS INIT ARGS...: a new run from INIT's weights, or the run resumed.
train() {
  local kind=$1 run=$2 steps=$3 init=$4
  shift 4
  if [ -f "$run/checkpoint.json" ]; then
    local done
    done=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$run/checkpoint.json")
    [ "$done" -ge "$steps" ] && return 0
    "$lemur" train "$kind" --resume "$run" --steps "$steps" --backend "$backend"
  else
    "$lemur" train "$kind" --init "$init" --out "$run" --steps "$steps" --backend "$backend" "$@"
  fi
}

train autoencoder ae "$ae_steps" pretrained-autoencoder --data data \
  --batch 16 --lr 3e-4 --warmup 100 --checkpoint-every 250 --log-every 50

# The latents belong to one autoencoder checkpoint: encode again whenever it moved on.
ae_step=$(python3 -c 'import json; print(json.load(open("ae/checkpoint.json"))["step"])')
if [ "$(cat lat.step 2>/dev/null)" != "$ae_step" ]; then
  rm -rf lat
  "$lemur" encode --autoencoder ae --data data --out lat --augment 1 --backend "$backend"
  # Emulators of the old latents become the starting point of new ones.
  for run in dif sur; do
    if [ -d "$run" ]; then rm -rf "$run.prev" && mv "$run" "$run.prev"; fi
  done
  echo "$ae_step" > lat.step
fi
dif_init=pretrained sur_init=pretrained-surrogate
[ -d dif.prev ] && dif_init=dif.prev
[ -d sur.prev ] && sur_init=sur.prev

train diffusion dif "$dif_steps" "$dif_init" --latents lat \
  --batch 8 --lr 3e-4 --warmup 50 --checkpoint-every 250 --log-every 50
train surrogate sur "$sur_steps" "$sur_init" --latents lat \
  --batch 8 --lr 3e-4 --warmup 50 --checkpoint-every 250 --log-every 50
