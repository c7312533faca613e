#!/usr/bin/env python3
"""Draw Ringfence's app icons into src/ringfence/web/icons/ (run once; the files are
committed, since the web client has no build step).

The mark is the brand's ring (the one before "Ringfence" in the top bar): a white ring
on the accent blue. Written with the standard library only (zlib + struct write a PNG;
an .ico is a small header around PNG images), and deterministic, so running it again
changes nothing unless the drawing does:

    python3 scripts/make_icons.py          # write the files
    python3 scripts/make_icons.py --check  # exit 1 if a committed file differs

Files:
    icon.svg                 the same mark as a vector (the favicon of modern browsers)
    icon-192.png, icon-512.png
                             "purpose": "any": a rounded square, transparent corners
    maskable-192.png, maskable-512.png
                             "purpose": "maskable": full-bleed background, the ring
                             inside the central 80 % safe zone (radius 0.4 of the size)
    apple-touch-icon.png     180 px, full bleed (iOS rounds the corners itself)
    favicon.ico              16, 32 and 48 px PNGs in one .ico, for /favicon.ico
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "ringfence" / "web" / "icons"

ACCENT = (0x2F, 0x5B, 0xEA)  # --accent in app.css
WHITE = (0xFF, 0xFF, 0xFF)


@dataclass(frozen=True)
class Mark:
    """The drawing, in units of the icon's size (0..1)."""

    corner: float  # corner radius of the background square; 0 = full bleed
    ring_outer: float  # outer radius of the ring
    ring_width: float


ANY = Mark(corner=0.22, ring_outer=0.30, ring_width=0.085)
# The ring's outer radius (0.26) stays well inside the maskable safe zone (0.40).
MASKABLE = Mark(corner=0.0, ring_outer=0.26, ring_width=0.075)
SMALL = Mark(corner=0.22, ring_outer=0.32, ring_width=0.12)  # favicon: a thicker ring


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _rounded_square_sdf(x: float, y: float, size: float, radius: float) -> float:
    """Signed distance (px) from a pixel centre to a size x size square with rounded corners."""
    half = size / 2
    qx = abs(x - half) - (half - radius)
    qy = abs(y - half) - (half - radius)
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    inside = min(max(qx, qy), 0.0)
    return outside + inside - radius


def render(size: int, mark: Mark) -> bytes:
    """RGBA rows of the icon at size x size, with analytic anti-aliasing."""
    centre = size / 2
    outer = mark.ring_outer * size
    inner = outer - mark.ring_width * size
    radius = mark.corner * size
    rows = bytearray()
    for j in range(size):
        rows.append(0)  # PNG filter type 0 (None) for this row
        y = j + 0.5
        for i in range(size):
            x = i + 0.5
            bg = _clamp(0.5 - _rounded_square_sdf(x, y, size, radius)) if radius else 1.0
            d = math.hypot(x - centre, y - centre)
            ring = _clamp(outer - d + 0.5) * _clamp(d - inner + 0.5)
            r, g, b = (round(a + (w - a) * ring) for a, w in zip(ACCENT, WHITE, strict=True))
            rows += bytes((r, g, b, round(255 * bg)))
    return bytes(rows)


def png(size: int, mark: Mark) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(render(size, mark), 9))
        + chunk(b"IEND", b"")
    )


def ico(images: list[tuple[int, bytes]]) -> bytes:
    """An .ico whose entries are PNG images (supported by every current browser)."""
    head = struct.pack("<HHH", 0, 1, len(images))
    offset = len(head) + 16 * len(images)
    entries = b""
    data = b""
    for size, image in images:
        dim = 0 if size >= 256 else size  # 0 means 256
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
        data += image
    return head + entries + data


def svg(mark: Mark) -> bytes:
    size = 512
    outer = mark.ring_outer * size
    width = mark.ring_width * size
    r = outer - width / 2  # the stroke is centred on the circle
    accent = "#{:02x}{:02x}{:02x}".format(*ACCENT)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}">'
        f'<rect width="{size}" height="{size}" rx="{mark.corner * size:g}" fill="{accent}"/>'
        f'<circle cx="{size / 2:g}" cy="{size / 2:g}" r="{r:g}" fill="none" '
        f'stroke="#ffffff" stroke-width="{width:g}"/>'
        "</svg>\n"
    ).encode()


FILES: dict[str, Callable[[], bytes]] = {
    "icon.svg": lambda: svg(ANY),
    "icon-192.png": lambda: png(192, ANY),
    "icon-512.png": lambda: png(512, ANY),
    "maskable-192.png": lambda: png(192, MASKABLE),
    "maskable-512.png": lambda: png(512, MASKABLE),
    "apple-touch-icon.png": lambda: png(180, MASKABLE),
    "favicon.ico": lambda: ico([(s, png(s, SMALL)) for s in (16, 32, 48)]),
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, make in FILES.items():
        data = make()
        path = OUT / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(name)
            continue
        path.write_bytes(data)
        print(f"wrote {path.relative_to(OUT.parent.parent.parent.parent)} ({len(data)} bytes)")
    if stale:
        print(f"out of date (run scripts/make_icons.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
