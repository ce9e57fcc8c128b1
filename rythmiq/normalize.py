"""Normalization: orientation, exact-size resize, DPI correction, byte-budget JPEG and previews.

Pure functions over ``uint8`` arrays (``(H, W)`` grayscale or ``(H, W, 3)`` RGB) and bytes.
Encoding to JPEG is done in memory; nothing here touches a file.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError

__all__ = [
    "DEFAULT_DPI",
    "DEFAULT_MAX_OUTPUT_PIXELS",
    "PAGE_SIZES",
    "PLAUSIBLE_DPI",
    "CompressedImage",
    "DpiInfo",
    "PageSize",
    "SizePlan",
    "apply_exif_orientation",
    "compress_to_budget",
    "encode_jpeg",
    "fit_size",
    "make_preview",
    "plan_size",
    "resample_to_dpi",
    "resize_exact",
    "resize_to_box",
    "resolve_dpi",
]

DEFAULT_DPI = 300.0
#: The default bound on a normalized image's pixels (``ProcessOptions.max_output_pixels``):
#: the default bound on an input's (``max_pixels``), so that normalizing never makes more
#: pixels than the largest page rythmiq decodes.
DEFAULT_MAX_OUTPUT_PIXELS = 100_000_000
PLAUSIBLE_DPI = (72.0, 1200.0)
# Page sizes in inches (short side, long side).
PageSize = Literal["a4", "letter", "legal", "a5"]
PAGE_SIZES: dict[PageSize, tuple[float, float]] = {
    "a4": (8.27, 11.69),
    "letter": (8.5, 11.0),
    "legal": (8.5, 14.0),
    "a5": (5.83, 8.27),
}
# How far the image aspect may differ from the assumed page's before inference is not trusted.
_ASPECT_TOLERANCE = 0.05
#: The DPIs cameras, phones and screenshots write whatever they show (72 and 96), trusted
#: only when the page they imply is at most :data:`_DEVICE_DPI_MAX_INCHES` on its long side:
#: a 4032x3024 phone photo "at 72 dpi" would be a 56-inch page.
_DEVICE_DPIS = (72.0, 96.0)
_DEVICE_DPI_MAX_INCHES = 17.0  # tabloid/ledger, the largest common office page

DpiSource = Literal["metadata", "inferred", "default"]


def apply_exif_orientation(image: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """Rotate/flip ``image`` so that an EXIF ``orientation`` (1-8) becomes upright (1)."""
    if orientation == 1:
        return image
    if orientation == 2:
        out = image[:, ::-1]
    elif orientation == 3:
        out = image[::-1, ::-1]
    elif orientation == 4:
        out = image[::-1, :]
    elif orientation == 5:  # transpose
        out = np.swapaxes(image, 0, 1)
    elif orientation == 6:
        out = np.rot90(image, -1)
    elif orientation == 7:  # transverse
        out = np.swapaxes(image, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(image, 1)
    else:
        raise OptionsError(f"orientation must be an EXIF orientation 1-8, got {orientation}")
    return np.ascontiguousarray(out)


def fit_size(
    width: int,
    height: int,
    box: tuple[int, int],
    *,
    upscale: bool = False,
    rotate_box: bool = True,
) -> tuple[int, int]:
    """The exact ``(width, height)`` that ``width x height`` gets when fitted into ``box``.

    The aspect ratio is kept (to the nearest pixel) and the result never exceeds the box. An
    image already inside the box keeps its size unless ``upscale``. With ``rotate_box`` a
    landscape image is fitted into the box turned landscape too, so ``(2480, 3508)`` means
    "A4 at 300 dpi" for either orientation.
    """
    bw, bh = box
    if width < 1 or height < 1:
        raise OptionsError(f"image size must be positive, got {width}x{height}")
    if bw < 1 or bh < 1:
        raise OptionsError(f"box must be positive, got {box}")
    if rotate_box and (width > height) != (bw > bh) and width != height and bw != bh:
        bw, bh = bh, bw
    scale = min(bw / width, bh / height)
    if scale >= 1.0 and not upscale:
        return (width, height)
    return (
        min(bw, max(1, round(width * scale))),
        min(bh, max(1, round(height * scale))),
    )


def resize_exact(image: NDArray[np.uint8], size: tuple[int, int]) -> NDArray[np.uint8]:
    """Resize to exactly ``size = (width, height)``: area averaging down, bicubic up."""
    w, h = size
    if w < 1 or h < 1:
        raise OptionsError(f"size must be positive, got {size}")
    if (w, h) == (image.shape[1], image.shape[0]):
        return image
    import cv2

    shrinking = w * h < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, (w, h), interpolation=interpolation), dtype=np.uint8)


def resize_to_box(
    image: NDArray[np.uint8], box: tuple[int, int], *, upscale: bool = False
) -> NDArray[np.uint8]:
    """Fit ``image`` into ``box`` (see :func:`fit_size`); the output size is ``fit_size(...)``."""
    return resize_exact(image, fit_size(image.shape[1], image.shape[0], box, upscale=upscale))


@dataclass(frozen=True)
class DpiInfo:
    """The resolution an image is taken to have, and where that figure came from.

    Attributes:
        dpi: Dots per inch used from here on (square pixels).
        source: ``"metadata"`` (read from the file), ``"inferred"`` (from an assumed page
            size) or ``"default"`` (fallback).
        declared: What the file declared, ``(x, y)``, or ``None``.
        note: Why metadata was not used, when it was not.
    """

    dpi: float
    source: DpiSource
    declared: tuple[float, float] | None = None
    note: str = ""


def resolve_dpi(
    declared: tuple[float, float] | None,
    width: int,
    height: int,
    *,
    page: str | None = "a4",
    default: float = DEFAULT_DPI,
    plausible: tuple[float, float] = PLAUSIBLE_DPI,
) -> DpiInfo:
    """Decide the DPI of a ``width x height`` image.

    1. A declared DPI within ``plausible`` (72-1200 by default) is used as is (for
       non-square pixels, the larger axis), but for 72 or 96 dpi, the figures cameras and
       screenshots write for any picture: those are used only when the page they make is at
       most 17 inches long (a 72-dpi scan of a letter page is 612x792 pixels; a phone photo
       of 4032x3024 "at 72 dpi" would be 56 inches).
    2. Otherwise, if ``page`` names a size in :data:`PAGE_SIZES` and the image has that page's
       aspect ratio (within 5 %; Letter is 9 % off A4), the DPI is the long side in pixels
       over the page's long side in inches, when that is plausible.
    3. Otherwise ``default`` (300).
    """
    lo, hi = plausible
    if not 0 < lo < hi:
        raise OptionsError(f"plausible must be (low, high) with 0 < low < high, got {plausible}")
    if not lo <= default <= hi:
        raise OptionsError(f"default dpi {default} is outside plausible {plausible}")
    note = "no DPI in the file"
    if declared is not None:
        d = max(declared)
        long_in = max(width, height) / d if d > 0 else float("inf")
        if d in _DEVICE_DPIS and long_in > _DEVICE_DPI_MAX_INCHES:
            note = f"declared DPI {d:g} would make a {long_in:.0f}-inch page (a device default)"
        elif lo <= d <= hi:
            return DpiInfo(float(d), "metadata", declared)
        else:
            note = f"declared DPI {d:g} is outside {lo:g}-{hi:g}"
    if page is not None:
        if page not in PAGE_SIZES:
            raise OptionsError(f"page must be one of {sorted(PAGE_SIZES)} or None, got {page!r}")
        short_in, long_in = PAGE_SIZES[page]
        long_px, short_px = max(width, height), min(width, height)
        aspect_err = abs((short_px / long_px) / (short_in / long_in) - 1.0)
        inferred = long_px / long_in
        if aspect_err <= _ASPECT_TOLERANCE and lo <= inferred <= hi:
            return DpiInfo(round(inferred, 1), "inferred", declared, f"{note}; {page} page assumed")
    return DpiInfo(float(default), "default", declared, note)


def _dpi_size(width: int, height: int, dpi: float, target_dpi: float) -> tuple[int, int]:
    """The pixel size of a ``width x height`` image at ``dpi`` resampled to ``target_dpi``."""
    if dpi <= 0 or target_dpi <= 0:
        raise OptionsError(f"dpi and target_dpi must be > 0, got {dpi}, {target_dpi}")
    scale = target_dpi / dpi
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def resample_to_dpi(
    image: NDArray[np.uint8], dpi: float, target_dpi: float
) -> tuple[NDArray[np.uint8], float]:
    """Resample ``image`` from ``dpi`` to ``target_dpi``; returns the image and its new DPI.

    The physical page size is kept, so the new DPI is exact for the rounded pixel size.
    """
    h, w = image.shape[:2]
    size = _dpi_size(w, h, dpi, target_dpi)
    return resize_exact(image, size), dpi * size[0] / w


@dataclass(frozen=True)
class SizePlan:
    """The size normalization gives an image, worked out before a pixel is resampled.

    Attributes:
        size: ``(width, height)`` of the normalized image.
        dpi: Its DPI (the physical page size is kept).
        resampled: Whether ``target_dpi`` changed the size (correction ``dpi_resampled``).
        resized: Whether fitting into the box changed it (correction ``resized``).
    """

    size: tuple[int, int]
    dpi: float
    resampled: bool
    resized: bool


def plan_size(
    width: int,
    height: int,
    *,
    dpi: float,
    target_dpi: float | None = None,
    box: tuple[int, int] | None = None,
    upscale: bool = False,
    max_pixels: int | None = None,
) -> SizePlan:
    """The size a ``width x height`` image at ``dpi`` is normalized to, checked against
    ``max_pixels`` before anything is allocated.

    First resampled to ``target_dpi`` (when it differs from ``dpi`` by more than half a
    dot), then fitted into ``box`` (see :func:`fit_size`). The caller resizes once, straight
    to :attr:`SizePlan.size`, so no larger image is ever made on the way.

    Raises:
        InputError: ``input.output_too_large``: the normalized image would have more than
            ``max_pixels`` pixels (``ProcessOptions.max_output_pixels``).
        OptionsError: A size, DPI or box is not positive.
    """
    size, out_dpi = (width, height), float(dpi)
    resampled = resized = False
    if target_dpi is not None and abs(target_dpi - dpi) > 0.5:
        size = _dpi_size(width, height, dpi, target_dpi)
        out_dpi = dpi * size[0] / width
        resampled = True
    if box is not None:
        fitted = fit_size(size[0], size[1], box, upscale=upscale)
        if fitted != size:
            out_dpi *= fitted[0] / size[0]
            size, resized = fitted, True
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise InputError(
            f"the normalized image would be {size[0]}x{size[1]} = {size[0] * size[1]} pixels, "
            f"over max_output_pixels={max_pixels}; lower target_dpi or box, or raise "
            "max_output_pixels if this is expected",
            code="input.output_too_large",
        )
    return SizePlan(size, out_dpi, resampled, resized)


def encode_jpeg(image: NDArray[np.uint8], *, quality: int = 90, dpi: float | None = None) -> bytes:
    """Encode ``image`` as baseline JPEG; with ``dpi``, JFIF density is written in inches."""
    if not 1 <= quality <= 100:
        raise OptionsError(f"quality must be within 1-100, got {quality}")
    from PIL import Image

    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": int(quality)}
    if dpi is not None:
        kwargs["dpi"] = (round(dpi), round(dpi))
    Image.fromarray(image).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


@dataclass(frozen=True)
class CompressedImage:
    """The result of :func:`compress_to_budget`.

    Attributes:
        data: The JPEG bytes.
        quality: JPEG quality used.
        encodes: How many JPEG encodes the search took.
        width: Pixel width of the encoded image (smaller than the input if it had to shrink).
        height: Pixel height of the encoded image.
        scale: Linear scale applied to fit the budget (1.0 when none was needed).
        fits: Whether ``len(data) <= max_bytes``.
        image: The pixels that were encoded (the input itself unless it had to shrink).
    """

    data: bytes
    quality: int
    encodes: int
    width: int
    height: int
    scale: float
    fits: bool
    image: NDArray[np.uint8] = field(repr=False, compare=False)

    @property
    def size(self) -> int:
        """Length of :attr:`data` in bytes."""
        return len(self.data)


def _log_quant_scale(quality: int) -> float:
    """Log of libjpeg's quantization-table scale for ``quality``; JPEG size is near linear in it."""
    return math.log(5000.0 / quality if quality < 50 else max(200.0 - 2.0 * quality, 1.0))


def _interpolate_quality(lo: int, size_lo: int, hi: int, size_hi: int, max_bytes: int) -> int:
    """The quality strictly inside ``(lo, hi)`` predicted to encode to about 95 % of the budget.

    A secant step: log size is taken as linear in the log quantizer scale between the two
    qualities already encoded (``size_lo <= max_bytes < size_hi``). Bisection on quality needs
    7 probes to resolve 30-95 to one step; this usually lands within 90-100 % in 1-3.
    """
    target = math.log(max_bytes * math.sqrt(0.9))
    t = (target - math.log(size_lo)) / (math.log(size_hi) - math.log(size_lo))
    x_lo, x_hi = _log_quant_scale(lo), _log_quant_scale(hi)
    x = x_lo + t * (x_hi - x_lo)
    return min(range(lo + 1, hi), key=lambda q: abs(_log_quant_scale(q) - x))


def compress_to_budget(
    image: NDArray[np.uint8],
    max_bytes: int,
    *,
    dpi: float | None = None,
    min_quality: int = 30,
    max_quality: int = 95,
    max_encodes: int = 8,
    min_side: int = 16,
) -> CompressedImage:
    """JPEG-encode ``image`` in at most ``max_bytes``, at the highest quality that fits.

    A bracketing search over quality in ``[min_quality, max_quality]`` (secant steps on log
    size, see :func:`_interpolate_quality`, with a bisection step whenever the same end of
    the bracket moves twice in a row) that stops as soon as a size lands within 90-100 % of
    the budget or the bracket closes, and takes at most ``max_encodes`` (8) encodes when
    the budget is achievable at ``min_quality``. If ``max_quality`` already fits, that one
    encode is the answer (there is no better use of the spare bytes). If even ``min_quality``
    is too big, the image is shrunk by the square root of the byte ratio (JPEG size grows
    roughly with pixel count) and searched again, until it fits or reaches ``min_side``.

    ``dpi`` is the DPI of ``image``; after a shrink the written DPI is scaled with it, so the
    physical page size stays right.
    """
    if max_bytes < 1:
        raise OptionsError(f"max_bytes must be >= 1, got {max_bytes}")
    if not 1 <= min_quality <= max_quality <= 100:
        raise OptionsError(
            f"need 1 <= min_quality <= max_quality <= 100, got {min_quality}, {max_quality}"
        )
    if max_encodes < 2:
        raise OptionsError(f"max_encodes must be >= 2, got {max_encodes}")
    encodes = 0
    scale = 1.0
    current = image
    h0, w0 = image.shape[:2]
    while True:
        cur_dpi = dpi * scale if dpi is not None else None

        def enc(q: int, img: NDArray[np.uint8] = current, d: float | None = cur_dpi) -> bytes:
            nonlocal encodes
            encodes += 1
            return encode_jpeg(img, quality=q, dpi=d)

        h, w = current.shape[:2]
        top = enc(max_quality)
        if len(top) <= max_bytes:
            return CompressedImage(top, max_quality, encodes, w, h, scale, True, current)
        bottom = enc(min_quality)
        if len(bottom) <= max_bytes:
            best, best_q = bottom, min_quality
            lo, hi = min_quality, max_quality  # lo fits, hi does not
            size_lo, size_hi = len(bottom), len(top)
            budget_left = max_encodes - 2
            same_side = 0  # how many steps in a row moved the same end of the bracket
            moved_lo = False
            while hi - lo > 1 and budget_left > 0 and len(best) < 0.9 * max_bytes:
                if same_side >= 2:  # interpolation is creeping up one side: bisect once
                    mid = (lo + hi) // 2
                else:
                    mid = _interpolate_quality(lo, size_lo, hi, size_hi, max_bytes)
                data = enc(mid)
                budget_left -= 1
                fits = len(data) <= max_bytes
                same_side = same_side + 1 if fits == moved_lo else 1
                moved_lo = fits
                if fits:
                    lo, size_lo, best, best_q = mid, len(data), data, mid
                else:
                    hi, size_hi = mid, len(data)
            return CompressedImage(best, best_q, encodes, w, h, scale, True, current)
        if min(h, w) <= min_side:
            return CompressedImage(bottom, min_quality, encodes, w, h, scale, False, current)
        # Shrink: JPEG size is roughly proportional to pixel count.
        factor = math.sqrt(max_bytes / len(bottom)) * 0.95
        scale *= factor
        size = (max(min_side, round(w0 * scale)), max(min_side, round(h0 * scale)))
        scale = size[0] / w0
        current = resize_exact(image, size)


def make_preview(
    image: NDArray[np.uint8],
    *,
    long_side: int = 1024,
    quality: int = 80,
    dpi: float | None = None,
) -> tuple[bytes, int, int]:
    """A small JPEG preview whose long side is at most ``long_side``; ``(data, width, height)``."""
    if long_side < 16:
        raise OptionsError(f"long_side must be >= 16, got {long_side}")
    small = resize_to_box(image, (long_side, long_side))
    scale = small.shape[1] / image.shape[1]
    data = encode_jpeg(small, quality=quality, dpi=dpi * scale if dpi else None)
    return data, small.shape[1], small.shape[0]
