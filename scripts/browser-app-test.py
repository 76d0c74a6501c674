#!/usr/bin/env python3
"""End-to-end test of lemur's web app in Chromium: WebGPU, then the CPU fallback.

Serves a built site (`trunk build --release --offline` -> dist/) on 127.0.0.1, drives a headed
Chromium through chromedriver (W3C WebDriver over HTTP) and checks the contract with the app:

  URL query:  ensemble, seed, steps, horizon (latent frames), backend (gpu|cpu)
  <body> attributes set by the app:
    data-lemur-state        loading | running | done | error
    data-lemur-error        the message when the state is error
    data-lemur-backend      webgpu | cpu
    data-lemur-first-frame  JSON array: fingerprint of the first emulated ensemble-mean frame
    data-lemur-panels       JSON array of [x, y, w, h] (CSS pixels) of the field panels
    data-lemur-ttff-ms      time to the first emulated frame (ms since the page started)
    data-lemur-fps          UI frames/s while the rollout ran
    data-lemur-dataset      the dataset the loaded runs were trained on

Run 1 (WebGPU on SwiftShader) must reach `done` with backend `webgpu` and non-blank panels in a
screenshot. The fallback runs, each in a fresh browser without WebGPU (`no-adapter`: without the
WebGPU flags, so navigator.gpu has no adapter; `absent`: navigator.gpu deleted before the page
runs; see --no-webgpu), must reach `done` with backend `cpu`, non-blank panels and the first
frame of run 1 within a tolerance (and so must a native app's, given with --native-first-frame).

Chromium must run headed (a WebGPU canvas comes out blank in headless screenshots), so run this
under Xvfb:

    xvfb-run -a -s "-screen 0 1280x1024x24" python3 scripts/browser-app-test.py dist

Python 3 standard library only. Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import base64
import functools
import http.server
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib

DEFAULT_QUERY = "ensemble=2&steps=4&horizon=4&seed=0"

COMMON_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--window-size=1280,900",
]
# WebGPU on SwiftShader's Vulkan (see /work/shared/notes/wasm-webgpu-tests.md).
WEBGPU_ARGS = [
    "--enable-unsafe-webgpu",
    "--ignore-gpu-blocklist",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--disable-vulkan-surface",
]
# How the fallback runs take WebGPU away (--no-webgpu; checked with Chromium 156 on Xvfb):
#   no-adapter: the WebGPU flags above are left out: navigator.gpu exists but requestAdapter()
#               resolves to null (there is no GPU that Chromium would use);
#   absent:     the same, and `delete Navigator.prototype.gpu` runs before the page's scripts
#               (CDP Page.addScriptToEvaluateOnNewDocument), so navigator.gpu is undefined, as in
#               a browser without WebGPU. No command-line switch does this in Chromium 156:
#               --disable-blink-features=WebGPU, --disable-features=WebGPU,WebGPUService,
#               --disable-webgpu and --disable-gpu all leave navigator.gpu defined.
NO_WEBGPU_MODES = ("no-adapter", "absent")
HIDE_WEBGPU_JS = "delete Navigator.prototype.gpu;"
# WebGL 2 (what eframe draws its UI with when WebGPU is missing) on SwiftShader: without these,
# Chromium 156 on a machine without a GPU has no WebGL at all.
CPU_RUN_ARGS = ["--ignore-gpu-blocklist", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]

# What the page can tell about its graphics, reported with each run.
PROBE_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  const out = {gpu: typeof navigator.gpu !== 'undefined', adapter: null, webgl2: false,
               dpr: window.devicePixelRatio, inner: [window.innerWidth, window.innerHeight],
               ua: navigator.userAgent};
  try { out.webgl2 = !!document.createElement('canvas').getContext('webgl2'); } catch (e) {}
  if (out.gpu) {
    try {
      const a = await navigator.gpu.requestAdapter();
      if (a) {
        let info = a.info || {};
        out.adapter = [info.vendor, info.architecture, info.device, info.description]
          .filter(Boolean).join(' ') || 'yes';
      }
    } catch (e) { out.adapter = 'error: ' + e; }
  }
  done(out);
})();
"""

STATE_JS = """
const b = document.body;
if (!b) return null;
const d = b.dataset;
return {state: d.lemurState || null, error: d.lemurError || null, backend: d.lemurBackend || null,
        dataset: d.lemurDataset || null, firstFrame: d.lemurFirstFrame || null, panels: d.lemurPanels || null,
        ttff: d.lemurTtffMs || null, fps: d.lemurFps || null,
        dpr: window.devicePixelRatio, inner: [window.innerWidth, window.innerHeight]};
"""


class Failure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Static file server


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".json": "application/json",
        ".safetensors": "application/octet-stream",
        ".png": "image/png",
        ".html": "text/html",
        ".css": "text/css",
    }
    missing = []  # paths answered 404, for the diagnostics

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def send_error(self, code, message=None, explain=None):
        if code == 404:
            Handler.missing.append(self.path)
        super().send_error(code, message, explain)

    def log_message(self, fmt, *args):
        pass


def serve(site):
    handler = functools.partial(Handler, directory=site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


# ---------------------------------------------------------------------------------------------
# WebDriver


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(Exception):
    pass


class Driver:
    """Just enough of W3C WebDriver, spoken to a chromedriver it starts."""

    def __init__(self, chromedriver, verbose_log=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [chromedriver, f"--port={self.port}"]
        if verbose_log:
            args += ["--verbose", f"--log-path={verbose_log}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                if self.request("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if self.proc.poll() is not None:
                raise Failure(f"chromedriver exited with status {self.proc.returncode}")
            if time.time() > deadline:
                raise Failure("chromedriver did not become ready in 30 s")
            time.sleep(0.1)
        self.session = None

    def request(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read()).get("value", {})
                msg = f"{value.get('error')}: {value.get('message', '')}".strip()
            except (ValueError, AttributeError):
                msg = str(e)
            raise WebDriverError(f"{method} {path}: {msg}") from None
        return payload.get("value", payload)

    def start(self, binary, args, preload_js=None):
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": binary, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "timeouts": {"script": 60_000, "pageLoad": 120_000},
                }
            }
        }
        value = self.request("POST", "/session", caps, timeout=120)
        self.session = value["sessionId"]
        if preload_js:
            self.request("POST", self.s("/goog/cdp/execute"),
                         {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": preload_js}})
        return value.get("capabilities", {})

    def s(self, path):
        return f"/session/{self.session}{path}"

    def get(self, url):
        self.request("POST", self.s("/url"), {"url": url}, timeout=150)

    def execute(self, script, args=()):
        return self.request("POST", self.s("/execute/sync"), {"script": script, "args": list(args)})

    def execute_async(self, script, args=()):
        return self.request("POST", self.s("/execute/async"), {"script": script, "args": list(args)})

    def screenshot(self):
        return base64.b64decode(self.request("GET", self.s("/screenshot"), timeout=120))

    def console(self):
        """The browser's console messages since the last call (chromedriver's log endpoint)."""
        for path in ("/se/log", "/log"):
            try:
                return self.request("POST", self.s(path), {"type": "browser"})
            except WebDriverError:
                continue
        return []

    def quit_session(self):
        if self.session:
            try:
                self.request("DELETE", self.s(""), timeout=30)
            except (OSError, WebDriverError):
                pass
            self.session = None

    def close(self):
        self.quit_session()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------
# PNG decoding (8-bit RGB / RGBA, not interlaced: what Chromium's screenshots are)


def decode_png(data):
    """-> (width, height, channels, rows): rows is a list of bytes, one per scanline."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failure("screenshot is not a PNG")
    pos = 8
    idat = []
    ihdr = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None:
        raise Failure("PNG without IHDR")
    width, height, depth, colour, _, _, interlace = ihdr
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace != 0:
        raise Failure(f"unsupported PNG (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise Failure(f"PNG data is {len(raw)} bytes, expected {height * (stride + 1)}")
    rows = []
    prev = bytearray(stride)
    bpp = channels
    for y in range(height):
        off = y * (stride + 1)
        ftype = raw[off]
        line = bytearray(raw[off + 1 : off + 1 + stride])
        if ftype == 0:
            pass
        elif ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
                line[i] = (line[i] + pred) & 0xFF
        else:
            raise Failure(f"PNG row {y}: unknown filter type {ftype}")
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows


def region_stats(image, rect, scale, inset=0.08):
    """Mean and standard deviation of the luminance (0..255) inside a CSS-pixel rectangle,
    shrunk by `inset` of its size on each side (to stay off borders and labels)."""
    width, height, channels, rows = image
    x, y, w, h = rect
    x0 = int(math.ceil((x + inset * w) * scale))
    y0 = int(math.ceil((y + inset * h) * scale))
    x1 = int(math.floor((x + (1 - inset) * w) * scale))
    y1 = int(math.floor((y + (1 - inset) * h) * scale))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    n = s = s2 = 0.0
    colours = set()
    for yy in range(y0, y1):
        row = rows[yy]
        for xx in range(x0, x1):
            i = xx * channels
            r, g, b = row[i], row[i + 1], row[i + 2]
            lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
            n += 1
            s += lum
            s2 += lum * lum
            if len(colours) < 64:
                colours.add((r, g, b))
    mean = s / n
    std = math.sqrt(max(s2 / n - mean * mean, 0.0))
    return {"mean": mean, "std": std, "colours": len(colours), "pixels": int(n), "box": (x0, y0, x1, y1)}


# ---------------------------------------------------------------------------------------------
# Checks


def parse_json_attr(name, text):
    if text is None:
        raise Failure(f"data-lemur-{name} is not set")
    try:
        return json.loads(text)
    except ValueError as e:
        raise Failure(f"data-lemur-{name} is not JSON ({e}): {text[:200]!r}") from None


def as_numbers(name, value):
    if not isinstance(value, list) or not value:
        raise Failure(f"{name}: expected a non-empty JSON array of numbers, got {str(value)[:200]}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise Failure(f"{name}: non-numeric or non-finite entry {v!r}")
        out.append(float(v))
    return out


def compare_frames(name_a, a, name_b, b, rtol, atol):
    """|a - b| <= rtol * max(|a|, |b|) + atol for every entry; returns a one-line report."""
    if len(a) != len(b):
        raise Failure(f"first frame: {name_a} has {len(a)} entries, {name_b} has {len(b)}")
    worst, worst_i, worst_ratio = 0.0, 0, 0.0
    bad = []
    for i, (x, y) in enumerate(zip(a, b)):
        d = abs(x - y)
        tol = rtol * max(abs(x), abs(y)) + atol
        if d / tol > worst_ratio:
            worst, worst_i, worst_ratio = d, i, d / tol
        if d > tol:
            bad.append(i)
    line = (f"{name_a} vs {name_b}: {len(a)} entries, max |diff| {worst:.3g} at [{worst_i}] "
            f"({a[worst_i]:.6g} vs {b[worst_i]:.6g}), {100 * worst_ratio:.1f}% of the tolerance")
    if bad:
        show = ", ".join(f"[{i}] {a[i]:.6g} vs {b[i]:.6g}" for i in bad[:8])
        raise Failure(f"first frame differs: {line}; {len(bad)} entries out of tolerance "
                      f"(rtol {rtol}, atol {atol}): {show}")
    return line


def load_native(path):
    with open(path) as f:
        text = f.read()
    try:
        value = json.loads(text)
    except ValueError:
        # Accept a log: the first line that is a JSON array.
        value = None
        for line in text.splitlines():
            line = line.strip()
            start = line.find("[")
            if start >= 0:
                try:
                    value = json.loads(line[start:])
                    break
                except ValueError:
                    continue
        if value is None:
            raise Failure(f"{path}: no JSON array found") from None
    if isinstance(value, dict):
        value = value.get("first_frame", value.get("firstFrame"))
    return as_numbers(path, value)


def print_console(driver, limit=200):
    try:
        entries = driver.console()
    except Exception as e:  # noqa: BLE001 - diagnostics only
        log(f"  (could not read the browser console: {e})")
        return
    log(f"--- browser console ({len(entries)} entries{', last ' + str(limit) if len(entries) > limit else ''}) ---")
    for e in entries[-limit:]:
        log(f"  [{e.get('level', '?')}] {e.get('message', '')}")
    log("--- end of browser console ---")


def run_once(opts, driver, url, label, args, expect_backend, screenshot_path, preload_js=None):
    """One page load in a fresh browser; returns the figures of the run."""
    log(f"\n== {label}: {url}")
    log(f"   chromium {' '.join(args)}" + (f"; before the page: {preload_js}" if preload_js else ""))
    result = {"label": label}
    printed = False
    t0 = time.time()
    driver.start(opts.chromium, args, preload_js)
    try:
        driver.get(url)
        try:
            probe = driver.execute_async(PROBE_JS)
        except (WebDriverError, OSError) as e:
            probe = {"error": str(e)}
        result["probe"] = probe
        log(f"   page: navigator.gpu {'present' if probe.get('gpu') else 'absent'}, "
            f"adapter {probe.get('adapter')!r}, webgl2 {probe.get('webgl2')}, "
            f"devicePixelRatio {probe.get('dpr')}, viewport {probe.get('inner')}")
        if "error" not in probe:
            if expect_backend == "webgpu" and not probe.get("adapter"):
                raise Failure("Chromium offers no WebGPU adapter with these flags (is SwiftShader's Vulkan "
                              "there? is the display a 24-bit Xvfb?)")
            if expect_backend == "cpu" and probe.get("adapter"):
                raise Failure(f"WebGPU is still available in the fallback run (adapter {probe['adapter']!r})")
            if expect_backend == "cpu" and not probe.get("webgl2"):
                log("   warning: no WebGL 2 in this run: eframe cannot draw without WebGPU or WebGL")

        deadline = t0 + opts.timeout
        last_state = None
        st = None
        while True:
            try:
                st = driver.execute(STATE_JS)
            except (WebDriverError, OSError) as e:
                # A page busy on its main thread (a long synchronous step) answers late: keep
                # polling until the deadline; a crashed page fails every call until then.
                if time.time() > deadline:
                    raise Failure(f"the page stopped answering: {e}") from None
                log(f"   {time.time() - t0:6.1f} s  page not answering ({e}); polling on")
                time.sleep(2)
                continue
            state = (st or {}).get("state")
            if state != last_state:
                log(f"   {time.time() - t0:6.1f} s  state {state}")
                last_state = state
            if state in ("done", "error"):
                break
            if time.time() > deadline:
                raise Failure(f"timed out after {opts.timeout:.0f} s in state {state!r}")
            time.sleep(0.5)
        result["wall_s"] = time.time() - t0
        if st["state"] == "error":
            raise Failure(f"the app reports an error: {st.get('error')}")

        result["backend"] = st.get("backend")
        result["ttff_ms"] = st.get("ttff")
        result["fps"] = st.get("fps")
        if st.get("backend") != expect_backend:
            raise Failure(f"data-lemur-backend is {st.get('backend')!r}, expected {expect_backend!r}")
        result["dataset"] = st.get("dataset")
        if opts.expect_dataset and st.get("dataset") != opts.expect_dataset:
            raise Failure(f"data-lemur-dataset is {st.get('dataset')!r}, expected {opts.expect_dataset!r}")
        frame = as_numbers("data-lemur-first-frame", parse_json_attr("first-frame", st.get("firstFrame")))
        result["first_frame"] = frame
        panels = parse_json_attr("panels", st.get("panels"))
        if not isinstance(panels, list) or not panels:
            raise Failure(f"data-lemur-panels: expected a non-empty array of [x, y, w, h], got {str(panels)[:200]}")
        for p in panels:
            if (not isinstance(p, list) or len(p) != 4
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in p)
                    or p[2] <= 0 or p[3] <= 0):
                raise Failure(f"data-lemur-panels: bad rectangle {p!r}")

        png = driver.screenshot()
        if screenshot_path:
            os.makedirs(os.path.dirname(os.path.abspath(screenshot_path)), exist_ok=True)
            with open(screenshot_path, "wb") as f:
                f.write(png)
            result["screenshot"] = screenshot_path
        image = decode_png(png)
        inner_w = (st.get("inner") or [0])[0] or image[0]
        scale = image[0] / inner_w
        dpr = st.get("dpr") or 1.0
        if abs(scale - dpr) > 0.05 * dpr:
            log(f"   note: screenshot scale {scale:.3f} != devicePixelRatio {dpr}; using the screenshot's")
        log(f"   screenshot {image[0]}x{image[1]} ({len(png) / 1e3:.0f} KB), {scale:.3g} px per CSS px")
        blank = []
        stats = []
        for i, rect in enumerate(panels):
            r = region_stats(image, rect, scale)
            if r is None:
                blank.append(f"panel {i} {rect} lies outside the {image[0]}x{image[1]} screenshot")
                continue
            stats.append(r)
            log(f"   panel {i} [{', '.join(f'{v:g}' for v in rect)}]: luminance mean {r['mean']:.1f}, "
                f"std {r['std']:.1f}, {r['colours']}{'+' if r['colours'] >= 64 else ''} colours")
            if r["std"] < opts.min_std:
                blank.append(f"panel {i} {rect} is blank: luminance std {r['std']:.2f} < {opts.min_std} "
                             f"(mean {r['mean']:.1f})")
        result["panels"] = len(panels)
        result["panel_std_min"] = min((r["std"] for r in stats), default=None)
        if blank:
            raise Failure("; ".join(blank))
        return result
    except Failure:
        printed = True
        try:
            st = driver.execute(STATE_JS)
            log(f"   body attributes at failure: {json.dumps(st)[:2000]}")
        except Exception:  # noqa: BLE001 - diagnostics only
            pass
        print_console(driver)
        if Handler.missing:
            log(f"   HTTP 404s: {', '.join(sorted(set(Handler.missing)))}")
        raise
    finally:
        if opts.console and not printed:
            print_console(driver)
        driver.quit_session()


def error_run(opts, driver, base):
    """Weights that are not there: the page must say so, naming the file, on its loading
    screen (the canvas is still hidden under it), not spin forever or show a blank canvas."""
    url = f"{base}?weights=missing-runs"
    log(f"\n== missing weights: {url}")
    t0 = time.time()
    driver.start(opts.chromium, COMMON_ARGS + CPU_RUN_ARGS)
    try:
        driver.get(url)
        while True:
            st = driver.execute(STATE_JS) or {}
            if st.get("state") in ("error", "done"):
                break
            if time.time() - t0 > 120:
                raise Failure(f"no error reported within 120 s (state {st.get('state')!r})")
            time.sleep(0.5)
        if st.get("state") != "error":
            raise Failure("the page reports done without its weights")
        err = st.get("error") or ""
        if "missing-runs/autoencoder/checkpoint.json" not in err:
            raise Failure(f"the error does not name the file: {err!r}")
        shown = driver.execute(
            "var t = document.getElementById('lemur_loading_text'); return t ? t.textContent : null;")
        if not shown or "could not start" not in shown or "missing-runs" not in shown:
            raise Failure(f"the loading screen does not show the error: {shown!r}")
        log(f"   ok: {err}")
    finally:
        driver.quit_session()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("site", nargs="?", default="dist", help="the built site directory (default dist/)")
    p.add_argument("--query", default=DEFAULT_QUERY, help=f"URL query for the app (default {DEFAULT_QUERY})")
    p.add_argument("--page", default="index.html", help="the page under the site (default index.html)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run to reach done (default 300)")
    p.add_argument("--rtol", type=float, default=2e-2, help="first-frame relative tolerance (default 2e-2)")
    p.add_argument("--atol", type=float, default=2e-3, help="first-frame absolute tolerance (default 2e-3)")
    p.add_argument("--min-std", type=float, default=3.0,
                   help="a panel whose luminance (0-255) std is below this is blank (default 3)")
    p.add_argument("--native-first-frame", metavar="FILE",
                   help="JSON array (the native app's first-frame fingerprint) to compare against too")
    p.add_argument("--expect-dataset", metavar="NAME",
                   help="the dataset the loaded runs must name (data-lemur-dataset)")
    p.add_argument("--screenshot", metavar="PATH", help="save the WebGPU run's screenshot (PNG)")
    p.add_argument("--screenshot-cpu", metavar="PATH",
                   help="save the CPU runs' screenshots (PNG; -absent added to the name of the second)")
    p.add_argument("--runs", default="webgpu,cpu", help="which runs: webgpu,cpu (default both)")
    p.add_argument("--no-webgpu", default=",".join(NO_WEBGPU_MODES),
                   help="how CPU runs take WebGPU away, one run each: no-adapter (navigator.gpu without "
                        "an adapter), absent (no navigator.gpu); default no-adapter,absent")
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    p.add_argument("--chrome-arg", action="append", default=[], help="extra Chromium argument (repeatable)")
    p.add_argument("--headless", action="store_true",
                   help="run Chromium headless (debugging only: WebGPU canvases come out blank)")
    p.add_argument("--console", action="store_true", help="print the browser console after every run")
    p.add_argument("--chromedriver-log", metavar="PATH", help="chromedriver's verbose log")
    opts = p.parse_args()

    kinds = [r.strip() for r in opts.runs.split(",") if r.strip()]
    if not kinds or any(r not in ("webgpu", "cpu") for r in kinds):
        p.error("--runs takes webgpu, cpu or webgpu,cpu")
    modes = [m.strip() for m in opts.no_webgpu.split(",") if m.strip()]
    if not modes or any(m not in NO_WEBGPU_MODES for m in modes):
        p.error(f"--no-webgpu takes a comma list of {', '.join(NO_WEBGPU_MODES)}")
    runs = (["webgpu"] if "webgpu" in kinds else []) + ([f"cpu-{m}" for m in modes] if "cpu" in kinds else [])
    if not os.path.isfile(os.path.join(opts.site, opts.page)):
        log(f"error: {os.path.join(opts.site, opts.page)} does not exist (build the site with "
            f"`trunk build --release --offline`)")
        return 1
    for tool in (opts.chromium, opts.chromedriver):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            log(f"error: {tool} not found (apt-get install chromium chromium-driver)")
            return 1
    if not opts.headless and not os.environ.get("DISPLAY"):
        log("error: no X display: run under Xvfb (xvfb-run -a -s \"-screen 0 1280x1024x24\" python3 "
            "scripts/browser-app-test.py ...); headless Chromium captures WebGPU canvases blank")
        return 1

    server = serve(os.path.abspath(opts.site))
    base = f"http://127.0.0.1:{server.server_address[1]}/{opts.page}"
    log(f"serving {os.path.abspath(opts.site)} at {base}")
    extra = list(opts.chrome_arg) + (["--headless=new"] if opts.headless else [])

    results = {}
    failures = []
    driver = None
    try:
        driver = Driver(opts.chromedriver, opts.chromedriver_log)
        url = f"{base}?{opts.query}"
        for n, run in enumerate(runs, 1):
            preload = None
            if run == "webgpu":
                args = COMMON_ARGS + WEBGPU_ARGS + extra
                shot = opts.screenshot
                label = f"run {n}: WebGPU (SwiftShader)"
            else:
                mode = run[len("cpu-"):]
                args = COMMON_ARGS + CPU_RUN_ARGS + extra
                preload = HIDE_WEBGPU_JS if mode == "absent" else None
                shot = opts.screenshot_cpu
                if shot and mode != modes[0]:
                    stem, ext = os.path.splitext(shot)
                    shot = f"{stem}-{mode}{ext or '.png'}"
                label = f"run {n}: no WebGPU ({mode}), CPU fallback"
            expect = "webgpu" if run == "webgpu" else "cpu"
            try:
                results[run] = run_once(opts, driver, url, label, args, expect, shot, preload)
                log(f"   ok ({results[run]['wall_s']:.1f} s)")
            except (Failure, WebDriverError) as e:
                log(f"   FAIL: {e}")
                failures.append(f"{label}: {e}")

        if "cpu" in kinds:
            try:
                error_run(opts, driver, base)
            except (Failure, WebDriverError) as e:
                log(f"   FAIL: {e}")
                failures.append(f"missing weights: {e}")

        # First-frame agreement.
        frames = [(n, results[n]["first_frame"]) for n in runs if n in results]
        if opts.native_first_frame:
            try:
                frames.append(("native", load_native(opts.native_first_frame)))
            except (Failure, OSError) as e:
                failures.append(f"native first frame: {e}")
        if len(frames) >= 2:
            log("")
            ref_name, ref = frames[0]
            for name, frame in frames[1:]:
                try:
                    log("first frame " + compare_frames(ref_name, ref, name, frame, opts.rtol, opts.atol))
                except Failure as e:
                    log(f"FAIL: {e}")
                    failures.append(str(e))
    except (Failure, WebDriverError) as e:
        failures.append(str(e))
        log(f"FAIL: {e}")
    finally:
        if driver is not None:
            driver.close()
        server.shutdown()
        server.server_close()

    log("\n== summary")
    for run in runs:
        r = results.get(run)
        if r is None:
            log(f"   {run:14s} FAILED")
            continue
        ttff = r.get("ttff_ms")
        fps = r.get("fps")
        ttff_s = f"{float(ttff) / 1e3:.2f} s" if ttff not in (None, "") else "n/a"
        fps_s = f"{float(fps):.1f}" if fps not in (None, "") else "n/a"
        log(f"   {run:14s} backend {r['backend']}, time to first frame {ttff_s}, UI {fps_s} frames/s, "
            f"{r['panels']} panels (min luminance std {r['panel_std_min']:.1f}), "
            f"run {r['wall_s']:.1f} s" + (f", screenshot {r['screenshot']}" if r.get("screenshot") else ""))
    if failures:
        log(f"FAILED ({len(failures)}):")
        for f in failures:
            log(f"   - {f}")
        return 1
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
