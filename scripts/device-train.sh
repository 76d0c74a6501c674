#!/usr/bin/env bash
# One sitting of scripts/pretrain.sh on a machine with a discrete GPU and no Rust toolchain,
# from the binary scripts/device-prepare.sh put in DIR: the set's data are generated there,
# every stage trains on the GPU within its time limit (`lemur train --time-limit`, which fits
# the stage's cosine schedule to the time), and the runs' latest weights come back, one
# tarball per run (ae.tar, dif.tar, sur.tar: checkpoint metadata, weights and log; no
# optimizer state), with the log, in $OUT (else a scratch directory under $TMPDIR, printed).
#
#   scripts/device-train.sh SET [DIR]        SET: euler64 or rb128x32; DIR: .device
#
# Nothing but the binary travels: each stage starts from the weights the binary embeds, as
# pretrain.sh does with a fresh working directory. Environment: AE_TIME, DIF_TIME, SUR_TIME
# (seconds; defaults 290, 110 and 60: about 8 minutes in all with the data and the encoding,
# to fit one 10-minute device command), DEADLINE (530 s: then pretrain.sh is interrupted, its
# stage in progress checkpoints as on Ctrl-C, and what exists is packed), AE_BATCH (64),
# EMU_BATCH (32), AE_OPTIMIZER (soap), EXTRA_TRAJECTORIES (192 training trajectories beside
# the 64 of the dataset: emulators fine-tuned on four times the data score 2-3% better at
# equal steps, web/pretrained/README.md), BACKEND (gpu; cpu checks the script on a machine
# without a GPU). Then, here, pack the runs:
#
#   mkdir W && for r in ae dif sur; do tar -xf OUT/$r.tar -C W; done
#   scripts/pack-pretrained.py W/ae W/dif W/sur --name SET
set -uo pipefail

set=${1:?usage: scripts/device-train.sh euler64|rb128x32 [DIR]}
dir=$(cd "${2:-.device}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -e "$dir/bin/lemur.xz" ]; then
    echo "error: $dir/bin/lemur.xz is missing: run scripts/device-prepare.sh first" >&2
    exit 1
fi
. "$here/scripts/device-lib.sh"
device_setup "$dir"

work=$(mktemp -d "${TMPDIR:-/tmp}/lemur-device-train.XXXXXX")
out=${OUT:-$work/out}
mkdir -p "$out"
device_unpack "$dir" lemur "$work"

main() {
    echo "=== $(date -u +%FT%TZ) $(uname -srm), $(nproc) CPUs, in $work"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    fi
    local start=$SECONDS
    # timeout signals its whole process group, so the lemur in progress gets the interrupt.
    LEMUR="$work/lemur" BACKEND=${BACKEND:-gpu} AE_OPTIMIZER=${AE_OPTIMIZER:-soap} \
        AE_BATCH=${AE_BATCH:-64} EMU_BATCH=${EMU_BATCH:-32} \
        AE_TIME=${AE_TIME:-290} DIF_TIME=${DIF_TIME:-110} SUR_TIME=${SUR_TIME:-60} \
        AE_STEPS=1000000 DIF_STEPS=1000000 SUR_STEPS=1000000 \
        EXTRA_TRAJECTORIES=${EXTRA_TRAJECTORIES:-192} \
        timeout -s INT -k 30 "${DEADLINE:-530}" bash "$here/scripts/pretrain.sh" "$set" "$work/runs"
    echo "=== pretrain.sh: rc $? after $((SECONDS - start)) s"
    # The latest checkpoint of each run, without its optimizer state (the next sitting starts
    # a fresh one from these weights, as from the embedded ones).
    for run in ae dif sur; do
        local meta="$work/runs/$run/checkpoint.json"
        [ -f "$meta" ] || { echo "=== $run: no checkpoint"; continue; }
        local step
        step=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$meta")
        local ck
        ck=$(printf '%s/step-%08d' "$run" "$step")
        tar -cf "$out/$run.tar" -C "$work/runs" "$run/checkpoint.json" "$run/log.jsonl" \
            "$ck/checkpoint.json" "$ck/model.safetensors"
        echo "=== $run: step $step -> $out/$run.tar"
    done
    echo "=== done in ${SECONDS} s"
}
main 2>&1 | tee -a "$out/device-train.log"
