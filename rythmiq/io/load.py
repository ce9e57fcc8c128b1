"""The loaders: :func:`load_image` and :func:`load_document`, one pass from source to pages.

Each entry point checks its limits (:func:`rythmiq.io.limits.check_limits`), reads the
source once (:mod:`rythmiq.io.source`), sniffs the format (:mod:`rythmiq.io.sniff`), runs the
structure checks (:mod:`rythmiq.io.preflight`) and hands the bytes to one reader
(:mod:`rythmiq.io.raster`, :mod:`rythmiq.io.tiff` or :mod:`rythmiq.io.pdf`). Nothing goes
back up: every step gets what the one before produced.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError
from rythmiq._public import public
from rythmiq.io.limits import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TOTAL_PIXELS,
    DEFAULT_PDF_DPI,
    check_limits,
    too_many_pixels,
)
from rythmiq.io.pages import LoadedDocument, LoadedImage, single_page
from rythmiq.io.pdf import read_pdf
from rythmiq.io.preflight import check_structure
from rythmiq.io.raster import FirstPage, array_pixels, decoding, read_first
from rythmiq.io.sniff import container, is_pdf
from rythmiq.io.source import Source, read_source
from rythmiq.io.tiff import read_tiff

__all__ = ["load_document", "load_image"]


@public
def load_image(
    source: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> LoadedImage:
    """Decode ``source`` into an upright grayscale or RGB ``uint8`` image.

    Only the first frame or page of a multi-frame file is decoded. Accepted formats are
    :data:`~rythmiq.io.sniff.SUPPORTED_FORMATS`; :mod:`rythmiq.io.preflight` lists the
    structure limits (what they cost is in docs/benchmarks.md).

    Args:
        source: A file path, the encoded bytes of an image, or a ``uint8`` array that is
            ``(H, W)`` grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (composited on white).
        max_pixels: Refuse images with more pixels than this, checked from the header before
            the image is decoded. Pillow's own, process-wide guard
            (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) still applies above that.
        max_input_bytes: Refuse encoded inputs larger than this, before reading more than
            this many bytes of a file. Not applied to arrays.

    Raises:
        InputError: ``input.not_found``, ``input.empty``, ``input.unsupported`` (not an image
            of a supported format; the message names the detected type), ``input.too_large``
            (over a limit) or ``input.unreadable`` (a corrupt or truncated image).
        OptionsError: A limit is not a positive integer.
    """
    limits = check_limits(max_pixels=max_pixels, max_input_bytes=max_input_bytes)
    if isinstance(source, np.ndarray):
        return _array_image(source, limits.max_pixels)
    data, label = read_source(source, limits.max_input_bytes)
    return _first_page(data, label, limits.max_pixels, ifds=1).image


@public
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

    The source is read once; the page count and the pixels of every page are checked
    *before* any page but the first of a TIFF is decoded or rendered, and the pages are then
    decoded one at a time, so a long document never holds more than one full-resolution page
    in memory. Every other format (and a single-page TIFF) is a one-page document decoded as
    :func:`load_image` decodes it, with the same limits and errors. See
    :mod:`rythmiq.io.pdf` for how PDF pages are rendered.

    Args:
        source: A path, encoded bytes, or a ``uint8`` array (a one-page document).
        max_pixels: Largest page, in pixels (checked from headers / page sizes).
        max_input_bytes: Largest encoded input.
        max_pages: Most pages a document may have.
        max_total_pixels: Most pixels all pages may have together; a single image's (or an
            array's) pixels count too, checked from the header before it is decoded.
        pdf_dpi: DPI PDF pages are rendered at, unless a page is a scan of another
            resolution (see :mod:`rythmiq.io.pdf`).

    Raises:
        InputError: ``input.too_large`` (a limit), ``input.encrypted`` (a
            password-protected PDF), ``input.empty`` (no pages), or any error
            :func:`load_image` raises.
        OptionsError: A limit is not a positive number.
    """
    limits = check_limits(
        max_pixels=max_pixels,
        max_input_bytes=max_input_bytes,
        max_pages=max_pages,
        max_total_pixels=max_total_pixels,
        pdf_dpi=pdf_dpi,
    )
    if isinstance(source, np.ndarray):
        return single_page(_array_image(source, limits.max_pixels, limits.max_total_pixels))
    data, label = read_source(source, limits.max_input_bytes)
    if is_pdf(data):
        return read_pdf(data, label, limits)
    # Every IFD a document may have is checked, and one more to tell "too many pages". The
    # first frame counts toward max_total_pixels, so a single image is bound by it too.
    first = _first_page(
        data,
        label,
        limits.max_pixels,
        ifds=limits.max_pages + 1,
        max_total_pixels=limits.max_total_pixels,
    )
    if first.image.format == "TIFF" and first.image.frames > 1:
        return read_tiff(first, label, limits)
    return single_page(first.image)


def _first_page(
    data: bytes, label: str, max_pixels: int, *, ifds: int, max_total_pixels: int | None = None
) -> FirstPage:
    """Sniff, check the structure, decode the first frame: one error mapping for all three."""
    with decoding(label, data):
        frames = check_structure(data, label, container(data), ifds=ifds)
        return read_first(
            data, label, max_pixels=max_pixels, frames=frames, max_total_pixels=max_total_pixels
        )


def _array_image(
    source: NDArray[Any], max_pixels: int, max_total_pixels: int | None = None
) -> LoadedImage:
    pixels = array_pixels(source)
    count = pixels.shape[0] * pixels.shape[1]
    if count > max_pixels:
        raise InputError(
            f"image has {count} pixels, over the limit of {max_pixels}", code="input.too_large"
        )
    if max_total_pixels is not None and count > max_total_pixels:
        raise too_many_pixels("image", count, max_total_pixels)
    digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
    mode = "RGB" if pixels.ndim == 3 else "L"
    return LoadedImage(pixels, None, mode, None, 1, 1, 0, digest)
