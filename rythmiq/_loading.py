"""The loading edge: turn a path, bytes or array into an upright RGB/grayscale uint8 array."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq.normalize import apply_orientation
from rythmiq.quality import check_image

__all__ = ["DEFAULT_MAX_PIXELS", "LoadedImage", "Source", "load_image"]

DEFAULT_MAX_PIXELS = 100_000_000

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, NDArray[np.uint8]]

_EXIF_ORIENTATION = 0x0112
_EXIF_XRES, _EXIF_YRES, _EXIF_UNIT = 0x011A, 0x011B, 0x0128

# Magic numbers of common non-image uploads, so the error can say what the file is.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<?xml", "an XML file"),
    (b"<svg", "an SVG drawing"),
    (b"{", "a JSON/text file"),
    (b"<!DOCTYPE html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"ftypheic", "a HEIC photo"),
)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright image and what its file said about itself.

    Attributes:
        pixels: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB ``uint8``, EXIF orientation applied.
        format: Pillow format name (``"JPEG"``, ``"PNG"``...), or ``None`` for an array.
        mode: The file's original Pillow mode, e.g. ``"CMYK"`` or ``"I;16"``.
        declared_dpi: ``(x, y)`` DPI from JFIF, EXIF, PNG pHYs or TIFF tags, if any.
        orientation: The EXIF orientation (1-8) that was applied; 1 means none.
        frames: Number of frames/pages in the file; only the first is used.
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


def _describe(data: bytes) -> str:
    head = data[:64].lstrip()
    for magic, name in _SIGNATURES:
        if head.startswith(magic) or (magic == b"ftypheic" and data[4:12] == magic):
            return name
    try:
        data[:256].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unrecognised binary file"


def _read_source(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise InputError(f"no such file: {str(path)!r}", code="input.not_found") from None
        except IsADirectoryError:
            raise InputError(f"{str(path)!r} is a directory, not an image file") from None
        except OSError as exc:
            raise InputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    raise OptionsError(
        f"source must be a path, bytes or a numpy array, got {type(source).__name__}"
    )


def _declared_dpi(im: Any) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if dpi is not None and im.format == "TIFF" and _EXIF_XRES not in im.tag_v2:
        dpi = None  # Pillow reports (1, 1) for a TIFF with no resolution tags at all
    if dpi is None:
        exif = im.getexif()
        x, y, unit = exif.get(_EXIF_XRES), exif.get(_EXIF_YRES), exif.get(_EXIF_UNIT, 2)
        if x and unit in (2, 3):
            per_inch = 2.54 if unit == 3 else 1.0
            dpi = (float(x) * per_inch, float(y or x) * per_inch)
    if dpi is None:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (np.isfinite(x) and np.isfinite(y)) or x <= 0 or y <= 0:
        return None
    return (x, y)


def _flatten_alpha(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Composite an ``(H, W, 2|4)`` image with alpha onto white paper."""
    alpha = rgba[..., -1:].astype(np.float32) / 255.0
    colour = rgba[..., :-1].astype(np.float32)
    out = colour * alpha + 255.0 * (1.0 - alpha)
    flat: NDArray[np.uint8] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return flat[..., 0] if flat.shape[-1] == 1 else flat


def _to_uint8(im: Any) -> NDArray[np.uint8]:
    """Convert any Pillow mode to grayscale or RGB ``uint8`` without losing the picture."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im, dtype=np.uint8)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("LA", "La", "PA"):
        return _flatten_alpha(np.asarray(im.convert("LA"), dtype=np.uint8))
    if mode in ("RGBA", "RGBa"):
        return _flatten_alpha(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode.startswith("I") or mode == "F":
        # 16-bit and float data: scale into 0-255 rather than clip (clipping turns a 16-bit
        # scan almost entirely white, or black).
        arr = np.asarray(im, dtype=np.float64)
        if mode == "F":
            lo, hi = (0.0, 1.0) if arr.min() >= 0 and arr.max() <= 1.0 else (arr.min(), arr.max())
        elif mode.startswith("I;16") or arr.max() > 255:
            lo, hi = 0.0, 65535.0 if arr.max() <= 65535 else float(arr.max())
        else:
            lo, hi = 0.0, 255.0
        span = (hi - lo) or 1.0
        return np.clip((arr - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _from_array(image: NDArray[Any]) -> NDArray[np.uint8]:
    check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    if image.ndim == 3 and image.shape[2] == 4:
        return _flatten_alpha(image)
    return image


def load_image(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``source`` into an upright grayscale or RGB ``uint8`` image.

    Args:
        source: A file path, the encoded bytes of an image, or a ``uint8`` array that is
            ``(H, W)`` grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (composited on white).
        max_pixels: Refuse images with more pixels than this, checked from the header before
            the image is decoded. Pillow's own, process-wide guard
            (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 MP) still applies above that.

    Raises:
        InputError: ``input.not_found``, ``input.empty``, ``input.unsupported`` (not an image;
            the message names the detected type), ``input.too_large`` or ``input.unreadable``
            (a corrupt or truncated image).
    """
    if max_pixels < 1:
        raise OptionsError(f"max_pixels must be >= 1, got {max_pixels}")
    if isinstance(source, np.ndarray):
        pixels = _from_array(source)
        if pixels.shape[0] * pixels.shape[1] > max_pixels:
            raise InputError(
                f"image has {pixels.shape[0] * pixels.shape[1]} pixels, over the limit of "
                f"{max_pixels}",
                code="input.too_large",
            )
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
        mode = "RGB" if pixels.ndim == 3 else "L"
        return LoadedImage(pixels, None, mode, None, 1, 1, 0, digest)

    data, label = _read_source(source)
    if not data:
        raise InputError(f"{label} is empty (0 bytes)", code="input.empty")

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's global bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            if width * height > max_pixels:
                raise InputError(
                    f"{label} is {width}x{height} = {width * height} pixels, over the limit "
                    f"of {max_pixels}; raise max_pixels if this is expected",
                    code="input.too_large",
                )
            if width < 1 or height < 1:
                raise InputError(f"{label} has no pixels ({width}x{height})", code="input.empty")
            im.load()
            frames = int(getattr(im, "n_frames", 1) or 1)
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
            dpi = _declared_dpi(im)
            mode, fmt = im.mode, im.format
            pixels = _to_uint8(im)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS inside Image.open, before our
        # own check; that limit is process-global, so it is the caller's to raise.
        raise InputError(
            f"{label} is a decompression bomb or over Pillow's pixel limit: {exc} "
            "(to accept such images, raise PIL.Image.MAX_IMAGE_PIXELS as well as max_pixels)",
            code="input.too_large",
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(
            f"{label} is not a supported image; it looks like {_describe(data)}",
            code="input.unsupported",
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise InputError(f"{label} is corrupt or truncated: {exc}") from exc
    if orientation not in range(1, 9):
        orientation = 1
    pixels = apply_orientation(pixels, orientation)
    digest = hashlib.sha256(data).hexdigest()
    return LoadedImage(pixels, fmt, mode, dpi, orientation, frames, len(data), digest, data)
