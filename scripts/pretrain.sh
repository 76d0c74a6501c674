#!/usr/bin/env bash
# The embedded pretrained runs (web/pretrained/SET), as a pipeline that resumes across
# sittings: every stage continues its run if the run exists, and a finished stage is skipped.
# Stop it at any time (Ctrl-C saves a checkpoint) and run it again to go on.
#
#   scripts/pretrain.sh SET WORKDIR      SET: euler64 or rb128x32
#
# Where SET is already embedded, each stage starts from the embedded weights (--init
# pretrained-*), so a sitting improves on what users already have instead of starting over;
# otherwise from the `small` presets. Raise AE_STEPS, DIF_STEPS or SUR_STEPS and run again to
# train longer (a finished run takes a larger --steps on resume). Then pack the runs as the new
# default:
#
#   scripts/pack-pretrained.py WORKDIR/ae WORKDIR/dif WORKDIR/sur --name SET
#
# Environment: LEMUR (the binary; default target/release/lemur, else `lemur` on PATH),
# BACKEND (cpu or gpu; default auto), AE_STEPS, DIF_STEPS, SUR_STEPS, TRAJECTORIES (64:
# the dataset, split 80/10/10), EXTRA_TRAJECTORIES (0: training trajectories added to it with
# `lemur generate --extend`, the validation and test ones unchanged),
# AE_OPTIMIZER (adamw or soap, for a new autoencoder run; a resumed one keeps its own),
# AE_BATCH (16), EMU_BATCH (8: diffusion and surrogate) and FIRST_FRAME (`lemur train
# --first-frame`: 60 for rb128x32, past its motionless first frames; 0 for euler64) for new
# runs, and AE_TIME, DIF_TIME, SUR_TIME: a stage's time limit (`lemur train --time-limit`,
# e.g. 45m): its steps are then fitted to the time, so set its *_STEPS high
# (scripts/device-train.sh does this on a GPU).
set -euo pipefail

set=${1:?usage: scripts/pretrain.sh euler64|rb128x32 WORKDIR}
work=${2:?usage: scripts/pretrain.sh euler64|rb128x32 WORKDIR}
here=$(cd "$(dirname "$0")/.." && pwd)
lemur=${LEMUR:-$here/target/release/lemur}
[ -x "$lemur" ] || lemur=lemur
backend=${BACKEND:-auto}
ae_steps=${AE_STEPS:-3000}
dif_steps=${DIF_STEPS:-1500}
sur_steps=${SUR_STEPS:-1000}
trajectories=${TRAJECTORIES:-64}
extra=${EXTRA_TRAJECTORIES:-0}
ae_optimizer=${AE_OPTIMIZER:-adamw}
ae_batch=${AE_BATCH:-16}
emu_batch=${EMU_BATCH:-8}

case $set in
  # Periodic boundaries: with open ones the waves leave the domain and late frames empty.
  euler64) generate=(euler --periodic --frames 101 --size 64x64) prefix=pretrained first=0 ;;
  rb128x32) generate=(rayleigh-benard --frames 200 --size 128x32) prefix=pretrained-rb first=60 ;;
  *) echo "scripts/pretrain.sh: unknown set '$set' (euler64 or rb128x32)" >&2; exit 2 ;;
esac
first=${FIRST_FRAME:-$first}
# A set not embedded yet trains from the presets, at the larger learning rate of a fresh run.
if [ -f "$here/web/pretrained/$set/autoencoder/checkpoint.json" ]; then
  ae_from=(--init "$prefix-autoencoder") dif_from=(--init "$prefix")
  sur_from=(--init "$prefix-surrogate") lr=3e-4
else
  ae_from=(--config small) dif_from=(--config small) sur_from=(--config small) lr=1e-3
fi
mkdir -p "$work"
cd "$work"

[ -f data/stats.json ] || "$lemur" generate "${generate[@]}" --trajectories "$trajectories" \
  --seed 0 --out data
# More training data: added to the training split only, so that scores before and after it
# are on the same validation and test trajectories.
count() { find data/data -name '*.hdf5' | wc -l; }
have=$(count)
if [ "$have" -lt $((trajectories + extra)) ]; then
  "$lemur" generate "${generate[@]}" --trajectories $((trajectories + extra - have)) --seed 0 \
    --out data --extend
fi

# train KIND RUN STEPS TIME FROM... -- ARGS...: a new run (FROM: --init RUN or --config PRESET),
# or the run resumed; TIME (may be empty) is the session's --time-limit.
train() {
  local kind=$1 run=$2 steps=$3 limit=() from=()
  [ -n "$4" ] && limit=(--time-limit "$4")
  shift 4
  while [ "$1" != -- ]; do from+=("$1"); shift; done
  shift
  if [ -f "$run/checkpoint.json" ]; then
    local done
    done=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$run/checkpoint.json")
    [ "$done" -ge "$steps" ] && return 0
    "$lemur" train "$kind" --resume "$run" --steps "$steps" --backend "$backend" "${limit[@]}"
  else
    "$lemur" train "$kind" "${from[@]}" --out "$run" --steps "$steps" --backend "$backend" \
      "${limit[@]}" "$@"
  fi
}

train autoencoder ae "$ae_steps" "${AE_TIME:-}" "${ae_from[@]}" -- --data data \
  --batch "$ae_batch" --lr "$lr" --warmup 100 --optimizer "$ae_optimizer" --checkpoint-every 250 \
  --log-every 50 --first-frame "$first"

# The latents belong to one autoencoder checkpoint and one dataset: encode again whenever
# either moved on.
ae_step=$(python3 -c 'import json; print(json.load(open("ae/checkpoint.json"))["step"])')
lat_key="$ae_step $(count)"
if [ "$(cat lat.step 2>/dev/null)" != "$lat_key" ]; then
  rm -rf lat
  "$lemur" encode --autoencoder ae --data data --out lat --augment 1 --backend "$backend"
  # Emulators of the old latents become the starting point of new ones.
  for run in dif sur; do
    if [ -d "$run" ]; then rm -rf "$run.prev" && mv "$run" "$run.prev"; fi
  done
  echo "$lat_key" > lat.step
fi
[ -d dif.prev ] && dif_from=(--init dif.prev)
[ -d sur.prev ] && sur_from=(--init sur.prev)

train diffusion dif "$dif_steps" "${DIF_TIME:-}" "${dif_from[@]}" -- --latents lat \
  --batch "$emu_batch" --lr "$lr" --warmup 50 --checkpoint-every 250 --log-every 50 \
  --first-frame "$first"
train surrogate sur "$sur_steps" "${SUR_TIME:-}" "${sur_from[@]}" -- --latents lat \
  --batch "$emu_batch" --lr "$lr" --warmup 50 --checkpoint-every 250 --log-every 50 \
  --first-frame "$first"
