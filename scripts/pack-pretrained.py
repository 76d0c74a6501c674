#!/usr/bin/env python3
"""Packs trained runs as an embedded pretrained set: web/pretrained/SET/<run>/ with the latest
checkpoint's weights in F16 and its metadata, no optimizer state.

    scripts/pack-pretrained.py AUTOENCODER_RUN DIFFUSION_RUN SURROGATE_RUN --name SET [--out DIR]
        [--overlap N]

SET is euler64 or rb128x32 (any name makes a directory; the binaries embed those two); DIR is
where SET/ goes (default web/pretrained). A run may be an embedded one kept as it is (for
example `~/.cache/lemur/pretrained-euler64-*/autoencoder`, the directory `lemur` writes it to):
its F16 tensors are copied unchanged, and a run whose packed weights and step are already
at the destination is left there as it is (metadata included). The one
stored copy serves everything: `lemur` and the native app embed it in the binary and the
browser fetches it; all convert F16 to F32 on load. Every tensor is rounded to nearest even (a
finite value beyond the F16 range or a non-finite value is an error), each file is written to a
temporary name and renamed into place once all are converted, and the three model files must
total at most 12 MB (the browser's budget). The emulators must have learnt the autoencoder's
latents (their recorded `autoencoder_step`, as the app checks). `--overlap N` records the
window overlap the diffusion run is best rolled out with (`extra.rollout.overlap`, the default
of `lemur eval`, `lemur rollout` and the app); without it a packed recommendation is kept.
Python 3 standard library only. See web/pretrained/README.md for how the embedded sets were
trained.
"""

import json
import math
import os
import struct
import sys

RUNS = ("autoencoder", "diffusion", "surrogate")
LIMIT_BYTES = 12_000_000
F16_MAX = 65504.0
# Convert in slices so that memory stays bounded for big tensors.
CHUNK = 1 << 20


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        fail(f"{path}: header length {n} past the end of the file")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    return header, memoryview(raw)[8 + n :]


def to_f16(name, data):
    """F32 little-endian bytes -> F16 little-endian bytes (round to nearest even)."""
    count = len(data) // 4
    out = bytearray()
    for start in range(0, count, CHUNK):
        k = min(CHUNK, count - start)
        values = struct.unpack(f"<{k}f", data[4 * start : 4 * (start + k)])
        try:
            # CPython's 'e' packing rounds to nearest even and raises OverflowError when the
            # rounded value is beyond F16's range; it would pass inf/nan through, so check them.
            out += struct.pack(f"<{k}e", *values)
        except OverflowError:
            worst = max(values, key=abs)
            fail(f"tensor {name}: value {worst!r} overflows F16 (max {F16_MAX})")
        for v in values:
            if not math.isfinite(v):
                fail(f"tensor {name}: non-finite value {v!r}")
    return bytes(out)


def convert(src, dst_tmp):
    header, data = read_safetensors(src)
    meta = header.pop("__metadata__", None)
    # Keep the tensors in file order (by data offset) so that the layout stays the same.
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    out_header = {}
    if meta is not None:
        out_header["__metadata__"] = meta
    chunks = []
    offset = 0
    max_abs = 0.0
    for name in names:
        info = header[name]
        if info["dtype"] not in ("F32", "F16"):
            fail(f"{src}: tensor {name} is {info['dtype']}, expected F32 (or F16, kept as it is)")
        width = 4 if info["dtype"] == "F32" else 2
        begin, end = info["data_offsets"]
        numel = math.prod(info["shape"])
        if end - begin != width * numel:
            fail(f"{src}: tensor {name}: {end - begin} bytes for shape {info['shape']} in {info['dtype']}")
        # A run packed before (an embedded one kept beside retrained ones) is F16 already.
        half = to_f16(name, data[begin:end]) if width == 4 else bytes(data[begin:end])
        if numel:
            max_abs = max(max_abs, max(abs(v) for v in struct.unpack(f"<{numel}e", half)))
        out_header[name] = {
            "dtype": "F16",
            "shape": info["shape"],
            "data_offsets": [offset, offset + len(half)],
        }
        chunks.append(half)
        offset += len(half)
    hjson = json.dumps(out_header, separators=(",", ":")).encode("utf-8")
    # Pad the header with spaces to a multiple of 8 bytes (so the data starts aligned).
    hjson += b" " * (-len(hjson) % 8)
    with open(dst_tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    return len(names), max_abs


def latest(run):
    """(model.safetensors path, checkpoint metadata) of a run's latest checkpoint, or of a
    packed run or checkpoint directory (model.safetensors beside checkpoint.json)."""
    meta = json.load(open(os.path.join(run, "checkpoint.json")))
    ckpt = run if os.path.isfile(os.path.join(run, "model.safetensors")) else os.path.join(run, meta["dir"])
    meta = json.load(open(os.path.join(ckpt, "checkpoint.json")))
    meta["dir"] = "."
    return os.path.join(ckpt, "model.safetensors"), meta


def unchanged(model_tmp, model_dst, ck_dst, meta):
    """Whether the packed run at the destination has these very weights at this step."""
    if not (os.path.isfile(model_dst) and os.path.isfile(ck_dst)):
        return False
    if json.load(open(ck_dst)).get("step") != meta["step"]:
        return False
    with open(model_tmp, "rb") as a, open(model_dst, "rb") as b:
        return a.read() == b.read()


def check_latents(runs):
    """The emulators must have learnt the autoencoder's latents (the app refuses a set whose
    steps disagree): their `extra.autoencoder_step` is the autoencoder's step, or for a decoder
    fine-tuned with the encoder frozen, the step of the encoder it keeps (`extra.encoder_step`)."""
    ae = latest(runs[0])[1]
    encodes_as = ae.get("extra", {}).get("encoder_step", ae["step"])
    for run, kind in zip(runs[1:], RUNS[1:]):
        learnt = latest(run)[1].get("extra", {}).get("autoencoder_step")
        if learnt is not None and learnt != encodes_as:
            fail(
                f"{run}: this {kind} run learnt the latents of autoencoder step {learnt}, but "
                f"{runs[0]} encodes as step {encodes_as}"
            )


def write_json(meta, tmp):
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def main():
    args = sys.argv[1:]
    if "--name" not in args:
        sys.exit(__doc__)
    i = args.index("--name")
    if i + 1 >= len(args):
        sys.exit(__doc__)
    name = args[i + 1]
    del args[i : i + 2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = os.path.join(root, "web", "pretrained")
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            sys.exit(__doc__)
        base = args[i + 1]
        del args[i : i + 2]
    overlap = None
    if "--overlap" in args:
        i = args.index("--overlap")
        if i + 1 >= len(args) or not args[i + 1].isdigit() or int(args[i + 1]) < 1:
            sys.exit(__doc__)
        overlap = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    dst = os.path.join(base, name)
    check_latents(args)
    total = 0
    pending = []  # (tmp, final): renamed only once every file converted and the size is within the limit
    try:
        for run, kind in zip(args, RUNS):
            model_src, meta = latest(run)
            out = os.path.join(dst, kind)
            os.makedirs(out, exist_ok=True)
            model_dst = os.path.join(out, "model.safetensors")
            tmp = model_dst + f".{os.getpid()}.tmp"
            pending.append((tmp, model_dst))
            n, max_abs = convert(model_src, tmp)
            size_in = os.path.getsize(model_src)
            size_out = os.path.getsize(tmp)
            total += size_out
            ck_dst = os.path.join(out, "checkpoint.json")
            packed = json.load(open(ck_dst)) if os.path.isfile(ck_dst) else {}
            if kind == "diffusion":
                # The recommended overlap: the given one, else the one already packed.
                rollout = {"overlap": overlap} if overlap else packed.get("extra", {}).get("rollout")
                if rollout:
                    meta.setdefault("extra", {})["rollout"] = rollout
            if unchanged(tmp, model_dst, ck_dst, meta):
                # The same weights at the same step: keep the packed files as they are, so a
                # run re-packed from lemur's cache (whose metadata records the cache's paths)
                # changes nothing but the recommended overlap.
                pending.pop()
                os.remove(tmp)
                print(f"{run} step {meta['step']} -> {out}: unchanged ({size_out / 1e6:.3f} MB F16)")
                rollout = meta.get("extra", {}).get("rollout")
                if rollout and packed.get("extra", {}).get("rollout") != rollout:
                    packed.setdefault("extra", {})["rollout"] = rollout
                    tmp = ck_dst + f".{os.getpid()}.tmp"
                    pending.append((tmp, ck_dst))
                    write_json(packed, tmp)
                    print(f"{out}: recommended overlap {rollout['overlap']}")
                continue
            print(
                f"{run} step {meta['step']} -> {out}: {n} tensors, {size_in / 1e6:.3f} MB -> "
                f"{size_out / 1e6:.3f} MB F16 (max |w| {max_abs:.4g})"
            )
            tmp = ck_dst + f".{os.getpid()}.tmp"
            pending.append((tmp, ck_dst))
            write_json(meta, tmp)
        print(f"total {total / 1e6:.3f} MB of models (limit {LIMIT_BYTES / 1e6:.0f} MB)")
        if total > LIMIT_BYTES:
            fail(f"the models total {total} bytes, over the {LIMIT_BYTES}-byte budget of the web app")
        for tmp, final in pending:
            os.replace(tmp, final)
        pending = []
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)


if __name__ == "__main__":
    main()
