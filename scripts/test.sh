#!/usr/bin/env bash
# Runs every test: the native workspace (CPU backend and the GPU backend, on lavapipe where
# there is no GPU) and the WebGPU kernel test in headless Chromium.
#   LEMUR_TEST_CPU_ONLY=1  skips the GPU backend (and the browser test) explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Mesa's Vulkan drivers complain on every device open when this is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

cargo test --workspace

if [ "${LEMUR_TEST_CPU_ONLY:-0}" = 1 ]; then
    echo "LEMUR_TEST_CPU_ONLY=1: skipping the WebGPU browser test"
    exit 0
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if ! command -v wasm-bindgen-test-runner >/dev/null || ! wasm-bindgen-test-runner --version | grep -q " $want"; then
    echo "error: the browser test needs wasm-bindgen-test-runner $want:" >&2
    echo "  cargo install wasm-bindgen-cli --version $want" >&2
    exit 1
fi
if ! command -v chromedriver >/dev/null; then
    echo "error: the browser test needs Chromium and ChromeDriver: apt-get install chromium chromium-driver" >&2
    exit 1
fi
# SwiftShader's WebGPU is slow: give the whole test binary two minutes.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" \
WASM_BINDGEN_TEST_TIMEOUT=120 \
    cargo test --target wasm32-unknown-unknown -p lemur-tensor --test browser
