#!/usr/bin/env bash
# Every GPU bench of issue #10, from the binaries scripts/device-prepare.sh put in DIR
# (default .device), in a scratch directory outside any source tree: adapter information,
# `lemur bench kernels`, `lemur bench training` at the reference figures' batches (16/32 on
# both backends, 128/256 on the GPU), `lemur bench emulation` at 128x128, and the GPU-vs-CPU
# test binaries when DIR has them (device-prepare.sh --tests). About 5 minutes on an NVIDIA H200 (each step has a time
# limit, so one slow step cannot starve the rest). Output also goes to $OUT/device-bench.log
# when OUT is set (the device run's return folder), else to the scratch directory.
#   scripts/device-bench.sh [DIR]
# LEMUR_DEVICE_BENCH_QUICK=1 runs the same commands tiny and on the CPU, to check the script
# itself on a machine without a discrete GPU.
set -uo pipefail

dir=$(cd "${1:-.device}" && pwd)
if [ ! -e "$dir/bin/lemur.xz" ]; then
    echo "error: $dir/bin/lemur.xz is missing: run scripts/device-prepare.sh first" >&2
    exit 1
fi

. "$(dirname "$0")/device-lib.sh"
device_setup "$dir"

work=$(mktemp -d /tmp/lemur-device-bench.XXXXXX)
log="${OUT:-$work}/device-bench.log"
mkdir -p "$(dirname "$log")"
cd "$work"

device_unpack "$dir" lemur "$work"
lemur="$work/lemur"

step() {
    local limit=$1
    shift
    echo
    echo "=== $* (limit ${limit} s)"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "=== rc $rc after $((SECONDS - start)) s"
}

main() {
echo "=== $(date -u +%FT%TZ) $(uname -srm), $(nproc) CPUs, in $work"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} LEMUR_ADAPTER=${LEMUR_ADAPTER:-}"
# The adapter lemur opens is named in every bench's "backend: gpu: ..." lines.

if [ "${LEMUR_DEVICE_BENCH_QUICK:-0}" = 1 ]; then
    # A check of this script where there is no discrete GPU: the same commands, tiny, on the CPU.
    step 60 "$lemur" bench kernels --backend cpu --max-size 256 --min-ms 10 --batch 1 --compare-shader-checks
    step 120 "$lemur" bench training --backend cpu --min-ms 10 --config tiny --only tiny --batch 2
    step 60 "$lemur" bench emulation --backend cpu --size 32 --preset tiny --horizon 1 --ensembles 1 --steps 2
else
    step 120 "$lemur" bench kernels --backend both --max-size 8192 --compare-shader-checks
    step 90 "$lemur" bench training --backend both --min-ms 1000
    step 45 "$lemur" bench training --backend gpu --min-ms 1000 --batch 128 --only autoencoder-fixed
    step 45 "$lemur" bench training --backend gpu --min-ms 1000 --batch 256 --only denoiser-fixed
    step 60 "$lemur" bench emulation --backend gpu --size 128 --ensembles 1,8
fi

# Test binaries that read fixtures find them in LEMUR_FIXTURES_DIR (the folder of reference/
# and lola-runs/), when the caller sets it.
for t in "$dir"/bin/test-*.xz; do
    [ -e "$t" ] || continue
    name=$(basename "$t" .xz)
    device_unpack "$dir" "$name" "$work"
    step 60 "$work/$name" -q
done
echo
echo "=== done in ${SECONDS} s; log: $log"
}
main 2>&1 | tee -a "$log"
