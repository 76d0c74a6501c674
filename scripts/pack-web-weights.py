#!/usr/bin/env python3
"""Packs the pretrained euler64 models for the browser app: F32 safetensors -> F16.

Reads assets/pretrained/euler64/{autoencoder,diffusion,surrogate}/{model.safetensors,
checkpoint.json} and writes web/pretrained/euler64/<run>/model.safetensors with every tensor
converted to F16 (IEEE binary16, round to nearest even; a finite value beyond the F16 range or a
non-finite value is an error) and checkpoint.json copied verbatim. Every file is written to a
temporary name and renamed into place. Fails if the three model files exceed 12 MB in total.

Python 3 standard library only:
    python3 scripts/pack-web-weights.py [--src assets/pretrained/euler64] [--dst web/pretrained/euler64]
"""

import argparse
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
        if info["dtype"] != "F32":
            fail(f"{src}: tensor {name} is {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        numel = math.prod(info["shape"])
        if end - begin != 4 * numel:
            fail(f"{src}: tensor {name}: {end - begin} bytes for shape {info['shape']}")
        half = to_f16(name, data[begin:end])
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


def copy_verbatim(src, dst_tmp):
    with open(src, "rb") as f:
        raw = f.read()
    with open(dst_tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=os.path.join(root, "assets/pretrained/euler64"))
    p.add_argument("--dst", default=os.path.join(root, "web/pretrained/euler64"))
    args = p.parse_args()

    total = 0
    pending = []  # (tmp, final): renamed only once every file converted and the size is within the limit
    try:
        for run in RUNS:
            src_dir = os.path.join(args.src, run)
            dst_dir = os.path.join(args.dst, run)
            os.makedirs(dst_dir, exist_ok=True)
            model_src = os.path.join(src_dir, "model.safetensors")
            model_dst = os.path.join(dst_dir, "model.safetensors")
            tmp = model_dst + f".{os.getpid()}.tmp"
            pending.append((tmp, model_dst))
            n, max_abs = convert(model_src, tmp)
            size_in = os.path.getsize(model_src)
            size_out = os.path.getsize(tmp)
            total += size_out
            print(
                f"{run:12s} {n:3d} tensors  {size_in / 1e6:7.3f} MB F32 -> {size_out / 1e6:7.3f} MB F16"
                f"  (max |w| {max_abs:.4g})"
            )
            ck_src = os.path.join(src_dir, "checkpoint.json")
            ck_dst = os.path.join(dst_dir, "checkpoint.json")
            tmp = ck_dst + f".{os.getpid()}.tmp"
            pending.append((tmp, ck_dst))
            copy_verbatim(ck_src, tmp)
        print(f"total        {total / 1e6:.3f} MB of models (limit {LIMIT_BYTES / 1e6:.0f} MB)")
        if total > LIMIT_BYTES:
            fail(f"the models total {total} bytes, over the {LIMIT_BYTES}-byte budget of the web app")
        for tmp, final in pending:
            os.replace(tmp, final)
        pending = []
        print(f"wrote {args.dst}")
    finally:
        for tmp, _ in pending:
            if os.path.exists(tmp):
                os.remove(tmp)


if __name__ == "__main__":
    main()
