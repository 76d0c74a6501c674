# Sourced by scripts/device-bench.sh and scripts/device-train.sh, which run from the binaries
# scripts/device-prepare.sh put in a directory, on a GPU machine without a Rust toolchain.

# device_setup DIR: Vulkan for a container that has the NVIDIA driver but not the Vulkan
# loader or the GL dispatch libraries its ICD needs (unpacked from the .debs in DIR, whatever
# the machine has: its own loader finds the ICD but cannot start it without libglvnd), or
# whose loader does not look where the driver's ICD file is.
device_setup() {
    local unpacked=
    for f in "$1"/*.deb; do
        [ -e "$f" ] && dpkg -x "$f" / && unpacked=1
    done
    # The loader cache only needs refreshing for a library just unpacked (and only root may).
    [ -n "$unpacked" ] && ldconfig
    local nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$nvidia_icd" ]; then
        export VK_DRIVER_FILES="$nvidia_icd"
    fi
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
}

# device_unpack DIR NAME DEST: DIR/bin/NAME.xz, uncompressed to DEST/NAME (xz, else Python's
# lzma) and made executable.
device_unpack() {
    if command -v xz >/dev/null; then
        xz -dc "$1/bin/$2.xz" >"$3/$2"
    else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
            "$1/bin/$2.xz" >"$3/$2"
    fi
    chmod +x "$3/$2"
}
