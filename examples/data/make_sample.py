"""Render examples/data/sample.jpg: a made-up invoice, scanned-looking, at 200 dpi.

The sample is our own text rendered with Pillow's bundled font, so it can ship with the repo.

    python examples/data/make_sample.py
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

LINES = [
    ("NORTHWIND STATIONERY LTD", 46),
    ("14 Harbour Street, Leith EH6 6QT", 30),
    ("", 20),
    ("INVOICE 2026-0142", 40),
    ("Date: 28 November 2026", 30),
    ("Customer: Jane Morrison, Studio Nine", 30),
    ("", 20),
    ("Item                          Qty    Amount", 30),
    ("Recycled copier paper A4       4     23.80", 30),
    ("Blue ballpoint pens box        2      9.50", 30),
    ("Archive storage boxes          6     31.20", 30),
    ("Desk lamp with warm bulb       1     42.00", 30),
    ("", 20),
    ("Subtotal                            106.50", 30),
    ("VAT 20 percent                       21.30", 30),
    ("Total due                           127.80", 34),
    ("", 20),
    ("Payment within thirty days by bank transfer.", 30),
    ("Thank you for your order.", 30),
]

# Right edges of the quantity and amount columns, in inches from the left.
TAB_STOPS = (5.2, 6.6)


def render(dpi: int = 200) -> Image.Image:
    width, height = round(8.27 * dpi), round(11.69 * dpi)
    page = Image.new("L", (width, height), 246)
    draw = ImageDraw.Draw(page)
    y = round(0.9 * dpi)
    for text, size in LINES:
        font = ImageFont.load_default(size=round(size * dpi / 200))
        # Columns separated by runs of spaces are set at fixed tab stops, right-aligned
        # after the first, like a real invoice.
        cells = re.split(r"\s{2,}", text) if text else []
        for i, cell in enumerate(cells):
            if i == 0:
                x = 0.9 * dpi
            else:
                stop = TAB_STOPS[-1] if i == len(cells) - 1 else TAB_STOPS[0]
                x = stop * dpi - draw.textlength(cell, font=font)
            draw.text((round(x), y), cell, fill=28, font=font)
        y += round(size * 1.6 * dpi / 200)
    rng = np.random.default_rng(7)
    arr = np.asarray(page.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
    arr += rng.normal(0.0, 3.0, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")


if __name__ == "__main__":
    out = Path(__file__).with_name("sample.jpg")
    render().save(out, "JPEG", quality=85, dpi=(200, 200))
    print(out, out.stat().st_size, "bytes")
