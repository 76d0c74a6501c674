#!/usr/bin/env python3
"""Draws web/icon-256.png, the web app's icon: a swirl (a vortex's spiral arms) in a diverging
colour map on a dark disc. Python 3 standard library only; an indexed-colour PNG of a few KB.

    python3 scripts/make-web-icon.py [OUT]
"""

import math
import os
import struct
import sys
import zlib

SIZE = 256
LEVELS = 48  # colour-map entries; index LEVELS is the background


def colormap(t):
    """t in [-1, 1] -> RGB: deep blue, cyan, near-white, orange, deep red."""
    stops = [
        (-1.0, (33, 60, 160)),
        (-0.5, (64, 160, 220)),
        (0.0, (235, 240, 245)),
        (0.5, (245, 150, 60)),
        (1.0, (180, 30, 40)),
    ]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            u = (t - t0) / (t1 - t0)
            return tuple(round(a + (b - a) * u) for a, b in zip(c0, c1))
    return stops[-1][1]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "web", "icon-256.png")
    background = (18, 20, 26)
    palette = [colormap(-1 + 2 * i / (LEVELS - 1)) for i in range(LEVELS)] + [background]

    rows = bytearray()
    c = (SIZE - 1) / 2
    for y in range(SIZE):
        rows.append(0)  # filter type none
        for x in range(SIZE):
            dx, dy = (x - c) / c, (y - c) / c
            r = math.hypot(dx, dy)
            if r > 0.97:
                rows.append(LEVELS)
                continue
            theta = math.atan2(dy, dx)
            # Three logarithmic spiral arms, fading towards the rim and the core.
            v = math.sin(3 * theta + 5.5 * math.log(r + 0.04))
            v *= math.tanh(6 * r) * (1 - r**6)
            rows.append(round((v + 1) / 2 * (LEVELS - 1)))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 3, 0, 0, 0))
    png += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 9))
    png += chunk(b"IEND", b"")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(png)} bytes)")


if __name__ == "__main__":
    main()
