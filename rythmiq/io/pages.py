"""What comes out of the loaders: a decoded image, a document, its pages.

The readers build these; :func:`rythmiq.load_image` returns a :class:`LoadedImage` and
:func:`rythmiq.load_document` a :class:`LoadedDocument`, whose :meth:`~LoadedDocument.pages`
decodes its :class:`LoadedPage` objects one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rythmiq._public import public
from rythmiq._util import short_repr

__all__ = ["LoadedDocument", "LoadedImage", "LoadedPage", "single_page"]


@public
@dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright image and what its file said about itself.

    Attributes:
        pixels: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB ``uint8``, EXIF orientation applied.
        format: Pillow format name (``"JPEG"``, ``"PNG"``...), or ``None`` for an array.
        mode: The file's original Pillow mode, e.g. ``"CMYK"`` or ``"I;16"``.
        declared_dpi: ``(x, y)`` DPI from JFIF, EXIF, PNG pHYs or TIFF tags, if any.
        orientation: The EXIF orientation (1-8) that was applied; 1 means none.
        frames: Number of frames/pages in the file, counted from its structure up to
            :data:`~rythmiq.io.preflight.FRAME_COUNT_LIMIT`; only the first is decoded and
            used.
        byte_size: Size of the encoded input, 0 for an array.
        sha256: SHA-256 of the encoded input, or of the array's bytes.
        encoded: The encoded input bytes (empty for an array); kept for the encrypted master.
    """

    pixels: NDArray[np.uint8]
    format: str | None
    mode: str
    declared_dpi: tuple[float, float] | None
    orientation: int
    frames: int
    byte_size: int
    sha256: str
    encoded: bytes = field(default=b"", repr=False)

    __repr__ = short_repr


@public
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


@public
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


def single_page(image: LoadedImage) -> LoadedDocument:
    """A one-page document of an image that is decoded already."""
    page = LoadedPage(0, image.pixels, image.declared_dpi, image.orientation)
    h, w = image.pixels.shape[:2]
    return LoadedDocument(
        image.format,
        image.mode,
        1,
        h * w,
        image.byte_size,
        image.sha256,
        image.encoded,
        lambda: iter([page]),
    )
