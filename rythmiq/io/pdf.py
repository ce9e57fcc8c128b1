"""The PDF reader: pages rasterized with pdfium, each at a planned, checked resolution.

Pages are rendered with pypdfium2 (Google's pdfium, the PDF engine of Chrome) at ``pdf_dpi``
(300 by default), page rotation (``/Rotate``) and crop box applied. A page that is a scan (one
image covering at least half of the page) is rendered at that image's own resolution
instead, between :data:`~rythmiq.io.limits.MIN_PDF_DPI` and
:data:`~rythmiq.io.limits.MAX_PDF_DPI` dpi, so a 200 dpi scan is neither upsampled to 300
dpi nor a 600 dpi one thinned. A page whose render would exceed ``max_pixels`` is rendered at
the highest DPI that fits, and says so in ``render_dpi``. :func:`read_pdf` plans every page
(its size and DPI) and checks the page count and the total pixels before any page is
rendered. Password-protected PDFs are refused (``input.encrypted``). Interactive form fields
are not drawn (no form environment is initialised); born-digital pages are rasterized and
OCR'd like scans, their own text layer is not used.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError
from rythmiq.io.limits import MAX_PDF_DPI, MIN_PDF_DPI, Limits, too_many_pages, too_many_pixels
from rythmiq.io.pages import LoadedDocument, LoadedPage

__all__ = ["read_pdf"]

log = logging.getLogger("rythmiq.loading")

# PDF user space is at most 14 400 units (200 inches) on a side (ISO 32000-1, Annex C).
_MAX_PAGE_POINTS = 14_400.0
# A page is a scan when one image covers at least this fraction of it.
_SCAN_COVERAGE = 0.5
# pdfium is not thread-safe; pypdfium2 leaves serialising calls to the caller.
_PDFIUM_LOCK = threading.RLock()


@dataclass(frozen=True)
class _PagePlan:
    dpi: float
    reason: str
    width: int
    height: int


def read_pdf(data: bytes, label: str, limits: Limits) -> LoadedDocument:
    """A PDF as a document: every page's render size planned and checked, none rendered.

    Raises:
        InputError: ``input.encrypted`` (a password), ``input.empty`` (no pages),
            ``input.too_large`` (``max_pages``, ``max_total_pixels``, a page larger than a PDF
            page can be), ``input.unreadable`` (a corrupt PDF or page) or
            ``input.unsupported`` (pypdfium2 is missing).
    """
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
            if count > limits.max_pages:
                raise too_many_pages(label, count, limits.max_pages)
            dpi = float(limits.pdf_dpi)
            plans = [_plan_page(pdf, i, label, dpi, limits.max_pixels) for i in range(count)]
        finally:
            pdf.close()
    total = sum(p.width * p.height for p in plans)
    if total > limits.max_total_pixels:
        raise too_many_pixels(label, total, limits.max_total_pixels)

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
