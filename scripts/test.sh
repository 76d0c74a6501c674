#!/usr/bin/env bash
# Runs every test: the native workspace (CPU backend and the GPU backend, on lavapipe where
# there is no GPU), the WebGPU kernel test in headless Chromium, and the web app (built with
# Trunk) end to end in Chromium under Xvfb, on WebGPU and on the CPU fallback (Euler), and on
# WebGPU with the Rayleigh-Bénard set and with runs from a `?weights=` URL.
#   LEMUR_TEST_CPU_ONLY=1  skips the GPU backend (and the browser tests) explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Mesa's Vulkan drivers complain on every device open when this is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

# Every test that skips its GPU part under LEMUR_TEST_CPU_ONLY=1 appends a line here
# (lemur_tensor::testing::skip_gpu), so that the skips are counted rather than read as "ok".
skip_log="$PWD/target/skipped-gpu-tests.txt"
mkdir -p target
rm -f "$skip_log"
LEMUR_TEST_SKIP_LOG="$skip_log" cargo test --workspace

if [ "${LEMUR_TEST_CPU_ONLY:-0}" = 1 ]; then
    # One test may skip the GPU backend more than once: count tests, not lines.
    skipped=$(awk '{ print $2, $3 }' "$skip_log" 2>/dev/null | sort -u | wc -l)
    echo "LEMUR_TEST_CPU_ONLY=1: $skipped tests skipped their GPU backend part (listed in $skip_log)"
    echo "LEMUR_TEST_CPU_ONLY=1: skipping the WebGPU browser tests (the kernel test and the web app)"
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

# The web app: built once by Trunk (Trunk.toml: index.html -> dist/, relative URLs, offline, so
# the crates must be here: `cargo fetch` gets the wasm-only ones), then loaded in a headed
# Chromium under Xvfb (a WebGPU canvas is captured blank headless): a WebGPU run, then CPU
# fallback runs without WebGPU, with the same first frame (scripts/browser-app-test.py).
for tool in trunk wasm-opt xvfb-run; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: the web app test needs trunk 0.21, wasm-opt 132 and xvfb-run:" >&2
        echo "  cargo install trunk --version \"~0.21\" --locked" >&2
        echo "  npm install -g --prefix /usr/local binaryen@132.0.0" >&2
        echo "  apt-get install xvfb xauth" >&2
        exit 1
    fi
done
cargo fetch
trunk build --release --offline
# The desktop build's first emulated frame from the same seed and the browser's (f16) weights,
# on the CPU backend: every browser run must reproduce it.
# The binary `cargo test --workspace` just built, run as it is: `cargo run -p lemur-app` would
# unify features for that one package and build a second copy of every dependency.
app="${CARGO_TARGET_DIR:-target}/debug/lemur-app"
if [ ! -x "$app" ]; then
    echo "error: $app is missing: cargo test --workspace should have built it" >&2
    exit 1
fi
"$app" --first-frame --ensemble 2 --steps 4 --horizon 4 --seed 0 \
    --weights web/pretrained/euler64 > target/native-first-frame.json
xvfb-run -a -s "-screen 0 1280x1024x24" python3 scripts/browser-app-test.py dist \
    --native-first-frame target/native-first-frame.json --screenshot target/app-browser.png
# The Rayleigh-Bénard set: the page fetches the other set's files and runs its solver.
xvfb-run -a -s "-screen 0 1280x1024x24" python3 scripts/browser-app-test.py dist \
    --query "set=rb128x32&ensemble=2&steps=4&horizon=4&seed=0" --runs webgpu \
    --screenshot target/app-browser-rb.png
# Runs from `?weights=URL` bring their own checkpoints: the Euler runs, laid out as
# `lemur train` writes a run (the weights in the checkpoint directory `checkpoint.json` names)
# and loaded under the Rayleigh-Bénard set's name, must load as Euler and reproduce the
# native first frame.
python3 - <<'EOF_PY'
import json, os, shutil
for run in ("autoencoder", "diffusion", "surrogate"):
    src = f"web/pretrained/euler64/{run}"
    ckpt = json.load(open(f"{src}/checkpoint.json"))
    ckpt["dir"] = "step-00000001"
    os.makedirs(f"dist/test-runs/{run}/step-00000001", exist_ok=True)
    json.dump(ckpt, open(f"dist/test-runs/{run}/checkpoint.json", "w"))
    shutil.copy(f"{src}/checkpoint.json", f"dist/test-runs/{run}/step-00000001/checkpoint.json")
    shutil.copy(f"{src}/model.safetensors", f"dist/test-runs/{run}/step-00000001/model.safetensors")
EOF_PY
xvfb-run -a -s "-screen 0 1280x1024x24" python3 scripts/browser-app-test.py dist \
    --query "set=rb128x32&weights=test-runs/&ensemble=2&steps=4&horizon=4&seed=0" \
    --runs webgpu --expect-dataset euler_multi_quadrants_periodicBC \
    --native-first-frame target/native-first-frame.json
