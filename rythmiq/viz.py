"""Drawing helpers for notebooks and reports: OCR boxes over a page image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq.io import array_pixels, load_image, to_uint8
from rythmiq.ocr import OcrResult
from rythmiq.results import ProcessResult

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "COLOR_HIGH",
    "COLOR_LOW",
    "COLOR_MEDIUM",
    "CONFIDENCE_HIGH",
    "CONFIDENCE_LOW",
    "confidence_color",
    "draw_ocr",
]

# A line below CONFIDENCE_LOW is drawn in COLOR_LOW (red): PP-OCRv5 is usually wrong on
# several characters there. Between the two it is COLOR_MEDIUM (orange): worth a look. At or
# above CONFIDENCE_HIGH it is COLOR_HIGH (green). The same colours mark confidences in the
# notebook tables of rythmiq._html, so a box and its table row match.
CONFIDENCE_LOW = 0.5
CONFIDENCE_HIGH = 0.8
COLOR_LOW = (220, 38, 38)
COLOR_MEDIUM = (234, 138, 0)
COLOR_HIGH = (22, 163, 74)

# Outline width is the image's long side divided by this, but at least _MIN_LINE_WIDTH px: 3 px
# on a 1024 px preview, 10 px on an A4 page at 300 dpi.
_LINE_WIDTH_DIVISOR = 350
_MIN_LINE_WIDTH = 2
_MIN_MAX_SIZE = 16


def confidence_color(confidence: float) -> tuple[int, int, int]:
    """The RGB colour :func:`draw_ocr` gives a line of this confidence.

    Args:
        confidence: A recognition confidence in ``[0, 1]``.

    Returns:
        :data:`COLOR_LOW` below :data:`CONFIDENCE_LOW`, :data:`COLOR_MEDIUM` below
        :data:`CONFIDENCE_HIGH`, :data:`COLOR_HIGH` otherwise.
    """
    if confidence < CONFIDENCE_LOW:
        return COLOR_LOW
    if confidence < CONFIDENCE_HIGH:
        return COLOR_MEDIUM
    return COLOR_HIGH


def draw_ocr(
    result_or_image: ProcessResult
    | Image.Image
    | NDArray[np.uint8]
    | bytes
    | bytearray
    | memoryview,
    ocr: OcrResult | None = None,
    *,
    max_size: int | None = None,
) -> Image.Image:
    """Draw OCR line boxes over a page image, coloured by confidence.

    Args:
        result_or_image: A :class:`rythmiq.ProcessResult` (its preview JPEG is drawn on, or its
            normalized JPEG when ``max_size`` is larger than the preview), a Pillow image, a
            ``uint8`` numpy array (``(H, W)`` grayscale or ``(H, W, 3)`` RGB, the Pillow
            convention) or the encoded bytes of an image. Files are not read: pass their bytes.
        ocr: The lines to draw. Defaults to ``result.ocr`` for a :class:`ProcessResult`; with
            ``None`` (or a result whose OCR was skipped) the image is returned without boxes.
            Boxes are in pixel coordinates of an ``ocr.width`` x ``ocr.height`` image and are
            scaled to the drawn image, which may have any size.
        max_size: Longest side of the returned image in pixels (at least 16). The image is
            shrunk to fit, never enlarged. ``None`` keeps the image's own size (the preview's,
            for a :class:`ProcessResult`).

    Returns:
        A new RGB :class:`PIL.Image.Image`; the input is never modified. Each line's box is a
        polygon outline in :func:`confidence_color` (red below :data:`CONFIDENCE_LOW`, orange
        below :data:`CONFIDENCE_HIGH`, green above), with a width that grows with the image.

    Raises:
        OptionsError: An argument has the wrong type, or ``max_size`` is below 16.
        InputError: The bytes are not a decodable image, or the array is not a ``uint8``
            image.
    """
    from PIL import Image

    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < _MIN_MAX_SIZE
    ):
        raise OptionsError(
            f"max_size must be an integer >= {_MIN_MAX_SIZE} or None, got {max_size!r}"
        )
    if ocr is not None and not isinstance(ocr, OcrResult):
        raise OptionsError(f"ocr must be an OcrResult or None, got {type(ocr).__name__}")

    if isinstance(result_or_image, ProcessResult):
        result = result_or_image
        if ocr is None:
            ocr = result.ocr
        preview_long = max(result.preview.width, result.preview.height)
        image_long = max(result.image.width, result.image.height)
        wants_more = max_size is not None and max_size > preview_long
        data = (
            result.image.data if wants_more and image_long > preview_long else result.preview.data
        )
        im = _decode(data)
    elif isinstance(result_or_image, Image.Image):
        im = _from_pil(result_or_image)
    elif isinstance(result_or_image, np.ndarray):
        im = _from_array(result_or_image)
    elif isinstance(result_or_image, (bytes, bytearray, memoryview)):
        im = _decode(bytes(result_or_image))
    else:
        raise OptionsError(
            "result_or_image must be a ProcessResult, a PIL image, a uint8 numpy array or "
            f"encoded image bytes, got {type(result_or_image).__name__}"
        )

    if max_size is not None and max(im.size) > max_size:
        scale = max_size / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if ocr is not None and ocr.lines:
        _draw_boxes(im, ocr)
    return im


def _draw_boxes(im: Image.Image, ocr: OcrResult) -> None:
    from PIL import ImageDraw

    sx = im.width / ocr.width if ocr.width > 0 else 1.0
    sy = im.height / ocr.height if ocr.height > 0 else 1.0
    width = max(_MIN_LINE_WIDTH, round(max(im.size) / _LINE_WIDTH_DIVISOR))
    draw = ImageDraw.Draw(im)
    for line in ocr.lines:
        points = [(float(x) * sx, float(y) * sy) for x, y in line.box]
        # A closed line is centred on the true edge (a polygon outline would sit inside it).
        draw.line([*points, points[0]], fill=confidence_color(line.confidence), width=width)


def _from_pil(image: Image.Image) -> Image.Image:
    try:
        pixels = to_uint8(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"the PIL image cannot be read: {exc}") from exc
    return _from_array(pixels)


def _from_array(image: NDArray[Any]) -> Image.Image:
    from PIL import Image

    pixels = array_pixels(image)  # validates: uint8, (H, W), (H, W, 1|3|4)
    return Image.fromarray(pixels).convert("RGB")


def _decode(data: bytes) -> Image.Image:
    return _from_array(load_image(data).pixels)
