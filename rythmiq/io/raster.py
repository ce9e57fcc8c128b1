"""The raster reader: Pillow opens the bytes once and decodes the first frame to ``uint8``.

:func:`read_first` opens an encoded image with only the allowed plugins
(:data:`~rythmiq.io.sniff.OPEN_FORMATS`; never EPS, which would run Ghostscript on the
upload), checks its pixel count from the header against ``max_pixels`` before decoding, and
decodes only the first frame or page; the Pillow image stays open for the other pages of a
TIFF (:mod:`rythmiq.io.tiff`). :func:`to_uint8` turns any Pillow mode into grayscale or RGB
without losing the picture (16-bit and float data are scaled, alpha is composited on white,
CIELab goes through LittleCMS), :func:`metadata` reads the EXIF orientation and the declared
DPI, ignoring corrupt metadata, and :func:`array_pixels` does the same for an array source.

Everything a decoder can raise on a hostile file becomes an :class:`~rythmiq.InputError`
inside :func:`decoding`. Pillow's own warnings (corrupt EXIF, truncated metadata, its
decompression-bomb warning, which our pixel limit replaces) are captured there and logged at
DEBUG on ``rythmiq.loading``: a warning about an uploaded file is not the caller's bug.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError
from rythmiq._util import check_image
from rythmiq.io.limits import too_large, too_many_pixels
from rythmiq.io.pages import LoadedImage
from rythmiq.io.preflight import clamp_frames, exif_is_small
from rythmiq.io.sniff import OPEN_FORMATS, unidentified
from rythmiq.normalize import apply_exif_orientation

__all__ = [
    "DECODE_ERRORS",
    "FirstPage",
    "array_pixels",
    "decoding",
    "metadata",
    "read_first",
    "to_uint8",
]

log = logging.getLogger("rythmiq.loading")

_EXIF_ORIENTATION = 0x0112
_EXIF_XRES, _EXIF_YRES, _EXIF_UNIT = 0x011A, 0x011B, 0x0128

# What a decoder can raise on a hostile file. Pillow's plugins are Python code, so besides
# OSError/SyntaxError/ValueError that includes struct.error from unpacking short data,
# IndexError/KeyError from bad tables, ZeroDivisionError/OverflowError from bad fields,
# EOFError from seeking, and RecursionError/NotImplementedError (both RuntimeError).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    LookupError,
    ArithmeticError,
    EOFError,
    RuntimeError,
    struct.error,
)


@dataclass(frozen=True)
class FirstPage:
    """An encoded image with its first frame decoded, and the Pillow image it came from.

    Attributes:
        image: The decoded, upright first frame and what the file says about itself.
        pillow: The Pillow image, opened once and left open: a TIFF's other pages are read
            from it.
        size: ``(width, height)`` of the first frame from its header, before any EXIF
            orientation.
    """

    image: LoadedImage
    pillow: Any
    size: tuple[int, int]


@contextlib.contextmanager
def decoding(label: str, data: bytes) -> Iterator[None]:
    """Map whatever a decoder raises on a hostile file to :class:`~rythmiq.InputError`.

    Pillow's warnings raised inside are captured and logged at DEBUG.
    """
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except InputError:
            raise
        except Image.DecompressionBombError as exc:
            # Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS inside Image.open, before
            # our own check; that limit is process-global, so it is the caller's to raise.
            raise InputError(
                f"{label} is a decompression bomb or over Pillow's pixel limit: {exc} "
                "(to accept such images, raise PIL.Image.MAX_IMAGE_PIXELS as well as "
                "max_pixels)",
                code="input.too_large",
            ) from exc
        except UnidentifiedImageError as exc:
            raise unidentified(label, data) from exc
        except MemoryError as exc:
            raise InputError(
                f"{label} needs more memory to decode than is available; lower max_pixels "
                "or give the process more memory",
                code="input.too_large",
            ) from exc
        except DECODE_ERRORS as exc:
            raise InputError(
                f"{label} is corrupt or truncated ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            for warning in caught:
                if not issubclass(warning.category, Image.DecompressionBombWarning):
                    log.debug("%s: Pillow warned: %s", label, warning.message)


def read_first(
    data: bytes,
    label: str,
    *,
    max_pixels: int,
    frames: int | None,
    max_total_pixels: int | None = None,
) -> FirstPage:
    """Open ``data`` with Pillow, check its size, decode its first frame and turn it upright.

    Call it inside :func:`decoding`.

    Args:
        data: Encoded bytes that passed :func:`rythmiq.io.preflight.check_structure`.
        label: Names them in messages.
        max_pixels: Refuse a first frame with more pixels, from the header.
        max_total_pixels: Refuse a first frame with more pixels than the whole document may
            have, from the header (``None``: no such bound).
        frames: The frame count the preflight counted, or ``None`` to take the header's.

    Raises:
        InputError: ``input.too_large``, ``input.empty`` or ``input.unsupported`` (a mode
            with no RGB form); anything else the decoder raises is mapped by
            :func:`decoding`.
    """
    from PIL import Image

    im = Image.open(io.BytesIO(data), formats=OPEN_FORMATS)
    width, height = im.size
    if width * height > max_pixels:
        raise too_large(
            label,
            f"is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "raise max_pixels if this is expected",
        )
    if max_total_pixels is not None and width * height > max_total_pixels:
        raise too_many_pixels(label, width * height, max_total_pixels)
    if width < 1 or height < 1:
        raise InputError(f"{label} has no pixels ({width}x{height})", code="input.empty")
    im.load()
    mode, fmt = im.mode, im.format
    orientation, dpi = metadata(im, label)
    pixels = to_uint8(im, label)
    count = clamp_frames(frames if frames is not None else _declared_frames(im))
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise InputError(
            f"{label} decoded to an unexpected shape {pixels.shape} (mode {mode!r})",
            code="input.unsupported",
        )
    upright = apply_exif_orientation(pixels, orientation)
    digest = hashlib.sha256(data).hexdigest()
    image = LoadedImage(upright, fmt, mode, dpi, orientation, count, len(data), digest, data)
    return FirstPage(image, im, (width, height))


def _declared_frames(im: Any) -> int:
    # WebP, APNG and MPO declare their frame count in a header; nothing is decoded.
    try:
        return int(getattr(im, "n_frames", 1) or 1)
    except DECODE_ERRORS:
        return 1


# --- metadata --------------------------------------------------------------------------------


def _jpeg_dpi_made_up(im: Any, use_exif: bool) -> bool:
    """Whether Pillow's DPI of a JPEG is its own: not from the JFIF header (unit 1 or 2) nor
    from an EXIF resolution, but the 72 dpi it sets for every JPEG whose EXIF has none."""
    if im.format not in ("JPEG", "MPO") or im.info.get("jfif_unit") in (1, 2):
        return False
    return not use_exif or _EXIF_XRES not in im.getexif()


def _declared_dpi(im: Any, use_exif: bool) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if dpi is not None and im.format == "TIFF" and _EXIF_XRES not in im.tag_v2:
        dpi = None  # Pillow reports (1, 1) for a TIFF with no resolution tags at all
    if dpi is not None and _jpeg_dpi_made_up(im, use_exif):
        dpi = None
    if dpi is None and use_exif:
        exif = im.getexif()
        x, y, unit = exif.get(_EXIF_XRES), exif.get(_EXIF_YRES), exif.get(_EXIF_UNIT, 2)
        if x and unit in (2, 3):
            per_inch = 2.54 if unit == 3 else 1.0
            dpi = (float(x) * per_inch, float(y or x) * per_inch)
    if dpi is None:
        return None
    x, y = float(dpi[0]), float(dpi[1])
    if not (np.isfinite(x) and np.isfinite(y)) or x <= 0 or y <= 0:
        return None
    return (x, y)


def _orientation(im: Any) -> int:
    value = im.getexif().get(_EXIF_ORIENTATION, 1)
    orientation = int(value) if isinstance(value, (int, np.integer)) else 1
    return orientation if 1 <= orientation <= 8 else 1


def metadata(im: Any, label: str) -> tuple[int, tuple[float, float] | None]:
    """EXIF orientation and declared DPI; corrupt metadata is ignored, not fatal."""
    blob = im.info.get("exif")
    use_exif = not isinstance(blob, bytes) or exif_is_small(blob)
    if not use_exif:
        log.debug("%s: ignoring an EXIF block with an oversized IFD", label)
    try:
        orientation = _orientation(im) if use_exif else 1
    except DECODE_ERRORS as exc:
        log.debug("%s: ignoring unreadable EXIF orientation: %s", label, exc)
        orientation = 1
    try:
        dpi = _declared_dpi(im, use_exif)
    except DECODE_ERRORS as exc:
        log.debug("%s: ignoring unreadable DPI: %s", label, exc)
        dpi = None
    return orientation, dpi


# --- pixels ----------------------------------------------------------------------------------


# Rows are converted in blocks of about this many values, so that a 100 Mpx 16-bit or float
# image needs no float64 copy of itself (800 MB) and a 100 Mpx RGBA no float copy (1.6 GB).
_BLOCK_VALUES = 1 << 22


def _row_blocks(height: int, row_values: int) -> range:
    return range(0, height, max(1, _BLOCK_VALUES // max(1, row_values)))


def _flatten_alpha(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Composite an ``(H, W, 2|4)`` image with alpha onto white paper."""
    height, width, channels = rgba.shape
    out = np.empty((height, width, channels - 1), dtype=np.uint8)
    step = _row_blocks(height, width * channels).step
    for r in range(0, height, step):
        block = rgba[r : r + step]
        alpha = block[..., -1:].astype(np.float32) / 255.0
        mixed = block[..., :-1].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        out[r : r + step] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def _rescale(arr: NDArray[Any], lo: float, hi: float) -> NDArray[np.uint8]:
    """Map ``[lo, hi]`` onto 0-255, rounding; NaN becomes 0 and infinities clip."""
    out = np.empty(arr.shape, dtype=np.uint8)
    span = (hi - lo) or 1.0
    step = _row_blocks(arr.shape[0], arr.shape[1]).step
    for r in range(0, arr.shape[0], step):
        block = arr[r : r + step].astype(np.float64)
        block -= lo
        block *= 255.0  # before dividing, so that exact halves stay exact
        block /= span
        block += 0.5
        np.clip(block, 0, 255, out=block)
        np.nan_to_num(block, copy=False, nan=0.0)
        out[r : r + step] = block.astype(np.uint8)
    return out


def _numeric_to_uint8(im: Any) -> NDArray[np.uint8]:
    """16-bit, 32-bit integer and float data: scale into 0-255 rather than clip.

    Clipping would turn a 16-bit scan almost entirely white, or black.
    """
    mode = im.mode
    arr = np.asarray(im)
    if mode == "F":
        finite = np.isfinite(arr)
        if not finite.any():
            return np.zeros(arr.shape, dtype=np.uint8)
        lo = float(np.min(arr, where=finite, initial=np.inf))
        hi = float(np.max(arr, where=finite, initial=-np.inf))
        if lo >= 0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        return _rescale(arr, lo, hi)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:  # signed data: stretch its range
        return _rescale(arr, lo, hi)
    if mode.startswith("I;16") or hi > 255:
        return _rescale(arr, 0.0, max(65535.0, hi))
    return _rescale(arr, 0.0, 255.0)


@functools.cache
def _lab_to_srgb() -> Any:
    from PIL import ImageCms

    # Pillow's LAB profile is the ICC one (D50 white), as Lab TIFFs from Photoshop are.
    return ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )


def to_uint8(im: Any, label: str = "the image") -> NDArray[np.uint8]:
    """Convert any Pillow mode to grayscale or RGB ``uint8`` without losing the picture."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return np.asarray(im, dtype=np.uint8)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode == "PA":  # a colour palette: to grey only after compositing, if ever
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("LA", "La"):
        return _flatten_alpha(np.asarray(im.convert("LA"), dtype=np.uint8))
    if mode in ("RGBA", "RGBa"):
        return _flatten_alpha(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode.startswith("I") or mode == "F":
        return _numeric_to_uint8(im)
    if mode == "LAB":
        try:
            from PIL import ImageCms
        except ImportError:  # Pillow built without LittleCMS
            raise InputError(
                f"{label} is a CIELab image, which needs Pillow with LittleCMS (ImageCms)",
                code="input.unsupported",
            ) from None
        return np.asarray(ImageCms.applyTransform(im, _lab_to_srgb()), dtype=np.uint8)
    try:
        rgb = im.convert("RGB")  # CMYK, YCbCr, HSV, RGBX
    except ValueError as exc:
        raise InputError(
            f"{label} has pixel mode {mode!r}, which cannot be converted to RGB: {exc}",
            code="input.unsupported",
        ) from exc
    return np.asarray(rgb, dtype=np.uint8)


def array_pixels(image: NDArray[Any]) -> NDArray[np.uint8]:
    """An array source as ``(H, W)`` or ``(H, W, 3)`` ``uint8``: checked, squeezed, alpha
    composited on white.

    Raises:
        InputError: ``input.invalid_array`` or ``input.empty`` (see
            :func:`rythmiq._util.check_image`).
    """
    check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    if image.ndim == 3 and image.shape[2] == 4:
        return _flatten_alpha(image)
    return image
