#!/usr/bin/env python3
"""Copies the latest checkpoint of trained runs into assets/pretrained/<name>/ (weights and
metadata only, no optimizer state), as the embedded pretrained default.

    scripts/pack-pretrained.py AUTOENCODER_RUN DIFFUSION_RUN SURROGATE_RUN [--name euler64]

See assets/pretrained/README.md for the commands that trained the embedded runs.
"""
import json
import os
import shutil
import sys


def pack(run, out):
    pointer = json.load(open(os.path.join(run, "checkpoint.json")))
    ckpt = os.path.join(run, pointer["dir"])
    meta = json.load(open(os.path.join(ckpt, "checkpoint.json")))
    meta["dir"] = "."
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(ckpt, "model.safetensors"), os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "checkpoint.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{run} step {meta['step']} -> {out}")


def main():
    args = sys.argv[1:]
    name = "euler64"
    if "--name" in args:
        i = args.index("--name")
        name = args[i + 1]
        del args[i : i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    root = os.path.join(os.path.dirname(__file__), "..", "assets", "pretrained", name)
    for run, kind in zip(args, ["autoencoder", "diffusion", "surrogate"]):
        pack(run, os.path.join(root, kind))


if __name__ == "__main__":
    main()
