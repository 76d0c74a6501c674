#!/usr/bin/env bash
# Prepares .device/ (git-ignored) for scripts/device-bench.sh and scripts/device-train.sh on a
# machine with a discrete GPU that has no Rust toolchain: the stripped release binary
# (xz-compressed: it embeds the pretrained weights, 23 MB, so it stays about 25 MB), Debian's
# Vulkan loader and GL dispatch libraries (libvulkan1, libglvnd0 and friends, unpacked there
# with dpkg -x) and, with --tests, GPU-vs-CPU kernel test binaries (also compressed; they read
# no fixtures: tests that do take them from LEMUR_FIXTURES_DIR).
#   scripts/device-prepare.sh            # the benches only
#   scripts/device-prepare.sh --tests    # also the GPU-vs-CPU tests (a long release build)
# The device run carries the repository's tracked files (about 37 MB) and .device: together at
# most 64 MiB, which this checks. Then, on the device machine, from the repository root:
#   scripts/device-bench.sh .device
#   scripts/device-train.sh euler64 .device
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
for arg in "$@"; do
    case "$arg" in
        --tests) tests=1 ;;
        *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
    esac
done

dest=.device
rm -rf "$dest"
mkdir -p "$dest/bin"

cargo build --release --bin lemur
pack() { # pack SRC NAME: a stripped, xz-compressed copy as $dest/bin/NAME.xz
    cp "$1" "$dest/bin/$2"
    strip "$dest/bin/$2"
    xz -9 -T0 "$dest/bin/$2"
}
pack target/release/lemur lemur

# The Vulkan loader and the GL vendor-neutral libraries the NVIDIA driver's Vulkan ICD
# (libGLX_nvidia.so.0) needs (the GPU machine has the driver and its ICD file, not always
# these: without libglvnd the ICD gives the loader no vkCreateInstance). amd64, whatever this
# machine is.
debs=(libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2)
mkdir -p /tmp/lemur-apt-amd64/partial
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/lemur-apt-amd64)
if ! (cd "$dest" && apt-get "${apt_opts[@]}" download "${debs[@]}" 2>/dev/null); then
    apt-get "${apt_opts[@]}" update >/dev/null
    (cd "$dest" && apt-get "${apt_opts[@]}" download "${debs[@]}")
fi

# What a device run carries: the tracked files and $dest, in MiB (rounded up).
tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
travel() {
    echo $(( (tracked + $(du -sb "$dest" | cut -f1) + 1048575) / 1048576 ))
}

if [ "$tests" = 1 ]; then
    # Kernel tests that run the GPU backend against the CPU one (about 1.7 MB each, packed),
    # most wanted first, as many as fit (63 MiB, a margin for untracked files).
    exes=$(cargo test --release --no-run --message-format=json \
        -p lemur-tensor --test matmul --test counters --test attention \
        | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
    for name in matmul counters attention; do
        exe=$(echo "$exes" | grep "/$name-[0-9a-f]*$")
        pack "$exe" "test-$name"
        if [ "$(travel)" -gt 63 ]; then
            rm "$dest/bin/test-$name.xz"
            echo "test-$name: left out, no room in the 64 MiB a device run carries"
        fi
    done
fi

echo "$dest: $(du -sh "$dest" | cut -f1); a device run carries $(travel) MiB with the tracked files (at most 64)"
if [ "$(travel)" -gt 64 ]; then
    echo "error: the device run carries at most 64 MiB" >&2
    exit 1
fi
