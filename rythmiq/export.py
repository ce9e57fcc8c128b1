"""Searchable outputs from OCR results: a plain-text sidecar, hOCR and a PDF with a text layer.

The functions are pure: they take results and bytes and return a string or bytes, never a path.
fpdf2 and Pillow are imported inside :func:`to_searchable_pdf`, so importing this module is cheap.

Fonts and Unicode: the invisible text layer of the PDF uses DejaVu Sans when a copy is found
under ``/usr/share/fonts`` (or the other usual font folders), which covers Latin, Greek,
Cyrillic and many symbols. Characters the font has no glyph for, and every character outside
Latin-1 when no DejaVu Sans is found (fpdf2's built-in Helvetica is Latin-1 only), are written
as ``?``, so such text is searchable only up to those characters. Lines are placed by the
axis-aligned bounds of their box; the angle of a rotated box is not reproduced.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from html import escape
from typing import Any

from rythmiq._errors import InputError, OptionsError
from rythmiq._system import font_path
from rythmiq._version import __version__
from rythmiq.layout import output_name
from rythmiq.ocr.base import OcrLine, OcrResult, checked_result
from rythmiq.results import ProcessResult

__all__ = ["result_to_hocr", "result_to_pdf", "to_hocr", "to_searchable_pdf", "to_text"]

# Vertical metrics (em fractions) used to fit a line's font into its box: DejaVu Sans's
# ascender and descender, close enough to Helvetica's for the fallback too.
_ASCENT = 0.93
_DESCENT = 0.24
# Characters XML 1.0 forbids (C0 controls except tab/newline/return, surrogates, U+FFFE/F).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def to_text(ocr: OcrResult) -> str:
    """The plain-text sidecar: one row per line in reading order, ending with a newline.

    Args:
        ocr: The OCR result of one page.

    Returns:
        :attr:`OcrResult.text` plus a trailing newline (an empty string for no lines).

    Raises:
        OptionsError: ``ocr`` is not an :class:`~rythmiq.ocr.OcrResult`.
        OcrError: ``ocr`` is not of the shape :func:`~rythmiq.ocr.checked_result` checks
            (``ocr.bad_output``).
    """
    text = _checked(ocr, "ocr").text
    return text + "\n" if text else ""


def to_hocr(
    pages: Sequence[tuple[OcrResult, str | None]] | OcrResult, *, title: str = "rythmiq OCR"
) -> str:
    """An XHTML hOCR document with one ``ocr_page`` per page and one ``ocr_line`` per line.

    Args:
        pages: One :class:`~rythmiq.ocr.OcrResult`, or ``(result, image_name)`` pairs where
            ``image_name`` (or ``None``) is written as the page's ``image`` property.
        title: The document title.

    Returns:
        The hOCR document; it is well-formed XML. Confidences are ``x_wconf`` 0-100.

    Raises:
        OptionsError: ``pages`` is empty or not of the types above.
        OcrError: A result is not of the shape :func:`~rythmiq.ocr.checked_result` checks
            (``ocr.bad_output``).
    """
    if not isinstance(title, str):
        raise OptionsError(f"title must be a str, got {type(title).__name__}")
    if isinstance(pages, OcrResult):
        pages = [(pages, None)]
    items = _check_pages(pages, 2, "pages")
    body: list[str] = []
    for number, (given, image) in enumerate(items, start=1):
        ocr = _checked(given, f"pages[{number - 1}][0]")
        if image is not None and not isinstance(image, str):
            raise OptionsError(f"pages[{number - 1}][1] must be a str or None")
        props = [f"bbox 0 0 {ocr.width} {ocr.height}", f"ppageno {number - 1}"]
        if image is not None:
            props.insert(0, 'image "' + image.replace("\\", "\\\\").replace('"', '\\"') + '"')
        body.append(
            f'  <div class="ocr_page" id="page_{number}" title="{_attr("; ".join(props))}">'
        )
        for index, line in enumerate(ocr.lines, start=1):
            x0, y0, x1, y1 = _int_bbox(line, ocr.width, ocr.height)
            conf = _wconf(line.confidence)
            body.append(
                f'   <span class="ocr_line" id="line_{number}_{index}"'
                f' title="bbox {x0} {y0} {x1} {y1}; x_wconf {conf}">'
                f"{_text(line.text)}</span>"
            )
        body.append("  </div>")
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
        ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        " <head>\n"
        f"  <title>{_text(title)}</title>\n"
        '  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f'  <meta name="ocr-system" content="rythmiq {_attr(__version__)}"/>\n'
        '  <meta name="ocr-capabilities" content="ocr_page ocr_line"/>\n'
        " </head>\n"
        " <body>\n"
    )
    return head + "\n".join(body) + "\n </body>\n</html>\n"


def to_searchable_pdf(pages: Sequence[tuple[bytes, OcrResult, float]]) -> bytes:
    """A PDF with one page per JPEG image and an invisible, selectable text layer.

    Each page is ``image / dpi * 72`` points in size; the JPEG is embedded as is (not
    re-encoded). Each OCR line is written in text render mode 3 (invisible) from the left of
    its box, on a baseline near the box bottom, horizontally scaled to the box width, so that
    selecting, copying and searching land on the line in the image. When the result's size
    differs from the JPEG's, its boxes are scaled to the JPEG.

    Args:
        pages: ``(jpeg_bytes, ocr_result, dpi)`` per page, ``ocr_result`` in pixel coordinates
            of that image.

    Returns:
        The PDF bytes.

    Raises:
        OptionsError: ``pages`` is empty or holds the wrong types, or a dpi is not positive.
        InputError: An image is not a readable JPEG (``input.unreadable``).
        OcrError: A result is not of the shape :func:`~rythmiq.ocr.checked_result` checks
            (``ocr.bad_output``).
    """
    from fpdf import FPDF
    from fpdf.enums import TextMode

    items = _check_pages(pages, 3, "pages")
    checked = []
    for i, (jpeg, given, dpi) in enumerate(items):
        if not isinstance(jpeg, (bytes, bytearray, memoryview)):
            raise OptionsError(f"pages[{i}][0] must be JPEG bytes, got {type(jpeg).__name__}")
        ocr = _checked(given, f"pages[{i}][1]")
        if isinstance(dpi, bool) or not isinstance(dpi, (int, float)):
            raise OptionsError(f"pages[{i}][2] (dpi) must be a number, got {type(dpi).__name__}")
        if not (math.isfinite(dpi) and dpi > 0):
            raise OptionsError(f"pages[{i}][2] (dpi) must be positive and finite, got {dpi!r}")
        data = bytes(jpeg)
        width, height = _jpeg_size(data, i)
        checked.append((data, ocr, float(dpi), width, height))

    pdf = FPDF(unit="pt")
    pdf.set_creator("rythmiq")
    pdf.set_auto_page_break(False)
    pdf.set_margin(0)
    font = font_path()
    if font is not None:
        pdf.add_font("rythmiq-text", fname=font)
        pdf.set_font("rythmiq-text", size=12)
    else:
        pdf.set_font("helvetica", size=12)
    for data, ocr, dpi, width, height in checked:
        scale = 72.0 / dpi
        page_w, page_h = width * scale, height * scale
        pdf.add_page(format=(page_w, page_h))
        pdf.image(io.BytesIO(data), x=0, y=0, w=page_w, h=page_h)
        sx = width / ocr.width if ocr.width > 0 else 1.0
        sy = height / ocr.height if ocr.height > 0 else 1.0
        pdf.text_mode = TextMode.INVISIBLE
        for line in ocr.lines:
            text = _encodable(pdf, " ".join(line.text.split()), font is not None)
            if not text:
                continue
            left, top, right, bottom = line.bbox
            x0, x1 = left * sx * scale, right * sx * scale
            y0, y1 = top * sy * scale, bottom * sy * scale
            box_w, box_h = x1 - x0, y1 - y0
            if box_w <= 0 or box_h <= 0:
                continue
            size = box_h / (_ASCENT + _DESCENT)
            pdf.set_font_size(size)
            pdf.set_stretching(100)
            natural = pdf.get_string_width(text)
            if natural <= 0:
                continue
            pdf.set_stretching(100 * box_w / natural)
            pdf.text(x0, y1 - _DESCENT * size, text)
        pdf.set_stretching(100)
        pdf.text_mode = TextMode.FILL
    return bytes(pdf.output())


def result_to_pdf(result: ProcessResult) -> bytes:
    """A searchable PDF of a :class:`~rythmiq.ProcessResult`, one page per document page.

    Uses each page's normalized JPEG, its DPI and its OCR lines; a page's text layer is
    empty when OCR did not run on it.

    Raises:
        OptionsError: ``result`` is not a :class:`~rythmiq.ProcessResult`.
    """
    _check_process_result(result)
    pages = []
    for page in result.pages:
        image = page.image
        ocr = page.ocr or OcrResult((), image.width, image.height, "")
        pages.append((image.data, ocr, image.dpi))
    return to_searchable_pdf(pages)


def result_to_hocr(result: ProcessResult, *, title: str = "rythmiq OCR") -> str:
    """hOCR of a :class:`~rythmiq.ProcessResult`: one ``ocr_page`` per document page.

    Each page names its normalized image as ``normalized.jpg`` (one page) or
    ``pages/NNNN/normalized.jpg``, the keys of :mod:`rythmiq.layout` relative to the job's
    folder. A page without OCR is an empty ``ocr_page`` of the image's size.

    Raises:
        OptionsError: ``result`` is not a :class:`~rythmiq.ProcessResult`.
    """
    _check_process_result(result)
    multi = len(result.pages) > 1
    pages: list[tuple[OcrResult, str | None]] = []
    for page in result.pages:
        image = page.image
        ocr = page.ocr or OcrResult((), image.width, image.height, "")
        pages.append((ocr, output_name("normalized", page=page.index + 1 if multi else None)))
    return to_hocr(pages, title=title)


def _check_process_result(result: object) -> None:
    if not isinstance(result, ProcessResult):
        raise OptionsError(f"result must be a ProcessResult, got {type(result).__name__}")


# --------------------------------------------------------------------------- helpers


def _checked(ocr: object, name: str) -> OcrResult:
    """``ocr`` as :func:`~rythmiq.ocr.checked_result` makes it, once it is an OcrResult: every
    writer writes only checked results, so no text or box a caller or engine made can crash
    one."""
    if not isinstance(ocr, OcrResult):
        raise OptionsError(f"{name} must be an OcrResult, got {type(ocr).__name__}")
    return checked_result(ocr, source=name)


def _check_pages(pages: object, arity: int, name: str) -> list[tuple[Any, ...]]:
    if isinstance(pages, (str, bytes)) or not isinstance(pages, Sequence):
        raise OptionsError(f"{name} must be a sequence of tuples, got {type(pages).__name__}")
    if not pages:
        raise OptionsError(f"{name} is empty; give at least one page")
    out = []
    for i, page in enumerate(pages):
        if not isinstance(page, tuple) or len(page) != arity:
            raise OptionsError(f"{name}[{i}] must be a tuple of {arity} items")
        out.append(page)
    return out


def _jpeg_size(data: bytes, index: int) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size, mode = img.format, img.size, img.mode
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(
            f"pages[{index}][0] is not a readable image: {exc}", code="input.unreadable"
        ) from exc
    if fmt != "JPEG" or mode not in ("L", "RGB", "CMYK"):
        raise InputError(
            f"pages[{index}][0] must be a grayscale, RGB or CMYK JPEG, got {fmt} {mode}",
            code="input.unsupported",
        )
    return int(size[0]), int(size[1])


def _encodable(pdf: Any, text: str, unicode_font: bool) -> str:
    """``text`` with the characters the current font cannot write replaced by ``?``."""
    if unicode_font:
        cmap = pdf.current_font.cmap
        return "".join(c if ord(c) in cmap else "?" for c in text)
    return text.encode("latin-1", "replace").decode("latin-1")


def _int_bbox(line: OcrLine, width: int, height: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = line.bbox
    x0 = min(max(round(left), 0), width)
    y0 = min(max(round(top), 0), height)
    return x0, y0, min(max(round(right), x0), width), min(max(round(bottom), y0), height)


def _wconf(confidence: float) -> int:
    if not math.isfinite(confidence):
        return 0
    return min(max(round(confidence * 100), 0), 100)


def _text(text: str) -> str:
    return escape(_XML_INVALID.sub("", text), quote=False)


def _attr(text: str) -> str:
    return escape(_XML_INVALID.sub("", text), quote=True)
