"""Multi-page documents: PDF pages (rasterized with pdfium) and multi-page TIFF.

:func:`load_document` reads a source once, checks the page count and the pixels of every
page against the limits *before* any page is decoded or rendered, and then yields the pages
one at a time, so a long document never holds more than one full-resolution page in memory.
Every other format (and a single-page TIFF) is a one-page document decoded by
:func:`rythmiq._loading.decode_bytes`, with the same limits and errors as before.

**PDF.** Pages are rendered with pypdfium2 (Google's pdfium, the PDF engine of Chrome) at
``pdf_dpi`` (300 by default), page rotation (``/Rotate``) and crop box applied. A page that is
a scan (one image covering at least half of the page) is rendered at that image's own
resolution instead, between :data:`MIN_PDF_DPI` and :data:`MAX_PDF_DPI` dpi, so a 200 dpi scan
is neither upsampled to 300 dpi nor a 600 dpi one thinned. A page whose render would exceed
``max_pixels`` is rendered at the highest DPI that fits, and says so in ``render_dpi``.
Password-protected PDFs are refused (``input.encrypted``). Interactive form fields are not
drawn (no form environment is initialised); born-digital pages are rasterized and OCR'd
like scans, their own text layer is not used.

**TIFF.** Every IFD is a page. Each IFD is checked like the first one always is (entries,
strips, metadata IFDs) before Pillow parses it, and each page's size is read from its header
before any page is decoded.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq._loading import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    Source,
    _metadata,
    _read_source,
    _to_uint8,
    decode_bytes,
    decoding,
    load_image,
    tiff_ifds,
)
from rythmiq.normalize import apply_orientation

__all__ = [
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_TOTAL_PIXELS",
    "DEFAULT_PDF_DPI",
    "LoadedDocument",
    "LoadedPage",
    "load_document",
]

log = logging.getLogger("rythmiq.loading")

DEFAULT_MAX_PAGES = 200
# 2 Gpx: about 230 A4 pages at 300 dpi. Only one page is decoded at a time; this bounds time.
DEFAULT_MAX_TOTAL_PIXELS = 2_000_000_000
DEFAULT_PDF_DPI = 300.0
MIN_PDF_DPI = 50.0
MAX_PDF_DPI = 600.0
# PDF user space is at most 14 400 units (200 inches) on a side (ISO 32000-1, Annex C).
_MAX_PAGE_POINTS = 14_400.0
# A page is a scan when one image covers at least this fraction of it.
_SCAN_COVERAGE = 0.5
# pdfium is not thread-safe; pypdfium2 leaves serialising calls to the caller.
_PDFIUM_LOCK = threading.RLock()


@dataclass(frozen=True)
class LoadedPage:
    """One decoded, upright page.

    Attributes:
        index: 0-based page number.
        pixels: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB ``uint8``.
        declared_dpi: ``(x, y)`` DPI the file declared for this page; for a PDF page, the
            DPI it was rendered at.
        orientation: EXIF orientation that was applied (1 = none; always 1 for PDF pages).
        render_dpi: For a PDF page, the DPI it was rendered at; ``None`` otherwise.
        render_reason: For a PDF page, why that DPI: ``"default"`` (``pdf_dpi``),
            ``"embedded_image"`` (a scan's own resolution) or ``"max_pixels"`` (lowered to
            fit the pixel limit).
    """

    index: int
    pixels: NDArray[np.uint8] = field(repr=False)
    declared_dpi: tuple[float, float] | None
    orientation: int = 1
    render_dpi: float | None = None
    render_reason: str | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """A document whose pages are decoded on demand by :meth:`pages`.

    Attributes:
        format: ``"PDF"``, a Pillow format name (``"TIFF"``, ``"JPEG"``...), or ``None`` for
            an array.
        mode: The first page's Pillow mode (``"RGB"`` for PDF pages).
        page_count: Number of pages.
        total_pixels: Pixels of all pages together, as they will be decoded.
        byte_size: Size of the encoded input, 0 for an array.
        sha256: SHA-256 of the encoded input, or of the array's bytes.
        encoded: The encoded input (empty for an array); kept for the encrypted master.
    """

    format: str | None
    mode: str
    page_count: int
    total_pixels: int
    byte_size: int
    sha256: str
    encoded: bytes = field(default=b"", repr=False)
    _pages: Callable[[], Iterator[LoadedPage]] = field(
        default=lambda: iter(()), repr=False, compare=False
    )

    def pages(self) -> Iterator[LoadedPage]:
        """Decode the pages in order, one at a time.

        Raises:
            InputError: A page turned out corrupt while it was decoded.
        """
        return self._pages()


def load_document(
    source: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS,
    pdf_dpi: float = DEFAULT_PDF_DPI,
) -> LoadedDocument:
    """Open a single image, a multi-page TIFF or a PDF and check it against the limits.

    Args:
        source: A path, encoded bytes, or a ``uint8`` array (a one-page document).
        max_pixels: Largest page, in pixels (checked from headers / page sizes).
        max_input_bytes: Largest encoded input.
        max_pages: Most pages a document may have.
        max_total_pixels: Most pixels all pages may have together.
        pdf_dpi: DPI PDF pages are rendered at, unless a page is a scan of another
            resolution (see the module documentation).

    Raises:
        InputError: ``input.too_large`` (a limit), ``input.encrypted`` (a
            password-protected PDF), ``input.empty`` (no pages), or any error
            :func:`rythmiq._loading.load_image` raises.
        OptionsError: A limit is not a positive number.
    """
    for name, value in (
        ("max_pixels", max_pixels),
        ("max_input_bytes", max_input_bytes),
        ("max_pages", max_pages),
        ("max_total_pixels", max_total_pixels),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
    if (
        isinstance(pdf_dpi, bool)
        or not isinstance(pdf_dpi, (int, float))
        or not MIN_PDF_DPI <= pdf_dpi <= MAX_PDF_DPI
    ):
        raise OptionsError(f"pdf_dpi must be within {MIN_PDF_DPI:g}-{MAX_PDF_DPI:g}, got {pdf_dpi}")

    if isinstance(source, np.ndarray):
        return _single(load_image(source, max_pixels=max_pixels))

    data, label = _read_source(source, max_input_bytes)
    if b"%PDF-" in data[:1024]:
        return _pdf(data, label, max_pixels, max_pages, max_total_pixels, float(pdf_dpi))
    first = decode_bytes(data, label, max_pixels=max_pixels)
    if first.format == "TIFF" and first.frames > 1:
        return _tiff(data, label, first, max_pixels, max_pages, max_total_pixels)
    return _single(first)


def _single(first: LoadedImage) -> LoadedDocument:
    page = LoadedPage(0, first.pixels, first.declared_dpi, first.orientation)
    h, w = first.pixels.shape[:2]
    return LoadedDocument(
        first.format,
        first.mode,
        1,
        h * w,
        first.byte_size,
        first.sha256,
        first.encoded,
        lambda: iter([page]),
    )


def _too_many_pages(label: str, count: int, max_pages: int, counted: bool = False) -> InputError:
    at_least = "at least " if counted else ""
    return InputError(
        f"{label} has {at_least}{count} pages, over the limit of {max_pages}; raise max_pages "
        "if this is expected",
        code="input.too_large",
    )


def _too_many_pixels(label: str, total: int, limit: int) -> InputError:
    return InputError(
        f"{label} has {total} pixels over all its pages, over the limit of {limit}; raise "
        "max_total_pixels if this is expected",
        code="input.too_large",
    )


# --------------------------------------------------------------------------- TIFF


def _tiff(
    data: bytes,
    label: str,
    first: LoadedImage,
    max_pixels: int,
    max_pages: int,
    max_total_pixels: int,
) -> LoadedDocument:
    from PIL import Image

    # Check every IFD's structure (the first was checked while decoding page 1).
    offsets = tiff_ifds(data, label, check=max_pages + 1)
    if len(offsets) > max_pages:
        raise _too_many_pages(label, len(offsets), max_pages, counted=True)
    sizes: list[tuple[int, int]] = []
    with decoding(label, data):
        im = Image.open(io.BytesIO(data), formats=("TIFF",))
    for i in range(len(offsets)):
        with decoding(f"{label} page {i + 1}", data):
            im.seek(i)  # parses the IFD only
            w, h = im.size
            if w < 1 or h < 1:
                raise InputError(f"{label} page {i + 1} has no pixels ({w}x{h})")
            if w * h > max_pixels:
                raise InputError(
                    f"{label} page {i + 1} is {w}x{h} = {w * h} pixels, over the limit of "
                    f"{max_pixels}",
                    code="input.too_large",
                )
            sizes.append((w, h))
    total = sum(w * h for w, h in sizes)
    if total > max_total_pixels:
        raise _too_many_pixels(label, total, max_total_pixels)

    def pages() -> Iterator[LoadedPage]:
        yield LoadedPage(0, first.pixels, first.declared_dpi, first.orientation)
        with decoding(label, data):
            im = Image.open(io.BytesIO(data), formats=("TIFF",))
        for i in range(1, len(sizes)):
            with decoding(f"{label} page {i + 1}", data):
                im.seek(i)
                if im.size != sizes[i]:
                    raise InputError(f"{label} page {i + 1} changed size while decoding")
                im.load()
                orientation, dpi = _metadata(im, label)
                pixels = _to_uint8(im, f"{label} page {i + 1}")
            yield LoadedPage(i, apply_orientation(pixels, orientation), dpi, orientation)

    return LoadedDocument(
        "TIFF", first.mode, len(sizes), total, len(data), first.sha256, data, pages
    )


# --------------------------------------------------------------------------- PDF


@dataclass(frozen=True)
class _PagePlan:
    dpi: float
    reason: str
    width: int
    height: int


def _pdf(
    data: bytes, label: str, max_pixels: int, max_pages: int, max_total_pixels: int, dpi: float
) -> LoadedDocument:
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:  # a declared dependency; only a broken install lacks it
        raise InputError(
            f"{label} is a PDF, and reading PDFs needs pypdfium2: pip install pypdfium2",
            code="input.unsupported",
        ) from exc

    digest = hashlib.sha256(data).hexdigest()
    with _PDFIUM_LOCK:
        pdf = _open_pdf(pdfium, data, label)
        try:
            count = len(pdf)
            if count < 1:
                raise InputError(f"{label} is a PDF with no pages", code="input.empty")
            if count > max_pages:
                raise _too_many_pages(label, count, max_pages)
            plans = [_plan_page(pdf, i, label, dpi, max_pixels) for i in range(count)]
        finally:
            pdf.close()
    total = sum(p.width * p.height for p in plans)
    if total > max_total_pixels:
        raise _too_many_pixels(label, total, max_total_pixels)

    def pages() -> Iterator[LoadedPage]:
        with _PDFIUM_LOCK:
            doc = _open_pdf(pdfium, data, label)
        try:
            for i, plan in enumerate(plans):
                with _PDFIUM_LOCK:
                    pixels = _render(pdfium, doc, i, plan, label)
                yield LoadedPage(
                    i,
                    pixels,
                    (plan.dpi, plan.dpi),
                    1,
                    render_dpi=plan.dpi,
                    render_reason=plan.reason,
                )
        finally:
            with _PDFIUM_LOCK:
                doc.close()

    return LoadedDocument("PDF", "RGB", count, total, len(data), digest, data, pages)


def _open_pdf(pdfium: Any, data: bytes, label: str) -> Any:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise InputError(
                f"{label} is a password-protected PDF; remove the password first",
                code="input.encrypted",
            ) from exc
        raise InputError(f"{label} looks like a PDF but is corrupt: {exc}") from exc


def _plan_page(pdf: Any, index: int, label: str, dpi: float, max_pixels: int) -> _PagePlan:
    name = f"{label} page {index + 1}"
    try:
        page = pdf[index]
    except Exception as exc:  # pdfium raises PdfiumError; anything else is a corrupt page too
        raise InputError(f"{name} cannot be read: {exc}") from exc
    try:
        w_pt, h_pt = (float(v) for v in page.get_size())  # after /Rotate and the crop box
        if not (math.isfinite(w_pt) and math.isfinite(h_pt)) or min(w_pt, h_pt) < 1:
            raise InputError(f"{name} has an invalid size {w_pt:g} x {h_pt:g} pt")
        if max(w_pt, h_pt) > _MAX_PAGE_POINTS:
            raise InputError(
                f"{name} is {w_pt:g} x {h_pt:g} pt, larger than a PDF page can be",
                code="input.too_large",
            )
        reason = "default"
        native = _scan_dpi(page, w_pt, h_pt)
        if native is not None:
            dpi, reason = min(max(native, MIN_PDF_DPI), MAX_PDF_DPI), "embedded_image"
    finally:
        page.close()
    width, height = _render_size(w_pt, h_pt, dpi)
    if width * height > max_pixels:
        dpi = math.floor(dpi * math.sqrt(max_pixels / (width * height)) * 100) / 100
        width, height = _render_size(w_pt, h_pt, dpi)
        while width * height > max_pixels and dpi > 1:
            dpi -= 0.01
            width, height = _render_size(w_pt, h_pt, dpi)
        reason = "max_pixels"
        log.info("%s: rendered at %.2f dpi to stay within max_pixels", name, dpi)
    return _PagePlan(round(dpi, 2), reason, width, height)


def _render_size(w_pt: float, h_pt: float, dpi: float) -> tuple[int, int]:
    # An upper bound: pdfium rounds points x scale up, sometimes a pixel past the exact size.
    return math.ceil(w_pt * dpi / 72) + 1, math.ceil(h_pt * dpi / 72) + 1


def _scan_dpi(page: Any, w_pt: float, h_pt: float) -> float | None:
    """The resolution of an image covering most of the page, or ``None`` (not a scan)."""
    import pypdfium2.raw as pdfium_c

    best: tuple[float, float] | None = None  # (covered area, dpi)
    try:
        objects = page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2)
        for obj in objects:
            left, bottom, right, top = obj.get_bounds()
            px_w, px_h = obj.get_px_size()
            bw, bh = (right - left) / 72, (top - bottom) / 72
            if bw <= 0 or bh <= 0 or px_w < 1 or px_h < 1:
                continue
            area = bw * bh
            if best is not None and area <= best[0]:
                continue
            # Pair the image's sides with the box's; an image turned a quarter swaps them.
            if (px_w >= px_h) != (bw >= bh):
                bw, bh = bh, bw
            best = (area, max(px_w / bw, px_h / bh))
    except Exception as exc:  # an unreadable object only means "not a scan"
        log.debug("could not inspect images on a PDF page: %s", exc)
        return None
    if best is None or best[0] < _SCAN_COVERAGE * (w_pt / 72) * (h_pt / 72):
        return None
    return float(round(best[1]))


def _render(pdfium: Any, doc: Any, index: int, plan: _PagePlan, label: str) -> NDArray[np.uint8]:
    try:
        page = doc[index]
        try:
            bitmap = page.render(scale=plan.dpi / 72, rev_byteorder=True)
            try:
                array = np.array(bitmap.to_numpy(), dtype=np.uint8, copy=True)
            finally:
                bitmap.close()
        finally:
            page.close()
    except MemoryError as exc:
        raise InputError(
            f"{label} page {index + 1} needs more memory to render than is available",
            code="input.too_large",
        ) from exc
    except Exception as exc:
        raise InputError(f"{label} page {index + 1} cannot be rendered: {exc}") from exc
    if array.ndim == 3 and array.shape[2] == 4:
        array = np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 1:
        array = np.ascontiguousarray(array[:, :, 0])
    return array
