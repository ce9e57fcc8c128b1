"""The loading edge: turn a path, bytes or array into an upright RGB/grayscale uint8 array.

Every input ends in a :class:`LoadedImage` or an :class:`~rythmiq.InputError`, within bounded
time and memory. The limits, all checked before the image is decoded:

* **Bytes**: ``max_input_bytes`` (default :data:`DEFAULT_MAX_INPUT_BYTES`, 200 MiB). A file
  is refused from its size before it is read, and never more than the limit plus one byte is
  read (so ``/dev/zero`` or a growing file cannot exhaust memory).
* **Pixels**: ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`, 100 Mpx), from the header.
* **Formats**: only :data:`SUPPORTED_FORMATS` are opened. Pillow's other plugins are never
  tried; among them EPS, which would run Ghostscript on the upload.
* **Structure**: Pillow parses headers, markers, chunks and blocks one at a time in Python
  (about 0.4-2.5 us each), and a few layouts make decoding cost grow with something other
  than the pixel count. A cheap scan of the raw bytes refuses, with ``input.too_large``:

  - a JPEG with more than :data:`MAX_JPEG_SCANS` scans (SOS markers). Progressive decoding
    costs pixels x scans: a 94 KB, 16 Mpx JPEG with 1000 copies of a tiny scan took 2.2 s,
    so 10 000 such scans (under 1 MB) would keep a 100 Mpx decode busy for minutes;
  - a JPEG with more than :data:`MAX_HEADER_UNITS` marker segments or junk/fill bytes before
    its first scan (20 MB of COM segments: 11.7 s; of 0xFF fill bytes: 14.6 s);
  - a PNG with more than :data:`MAX_PNG_CHUNKS` chunks (20 MB of empty chunks: 8.1 s);
  - a GIF with more than :data:`MAX_HEADER_UNITS` extension sub-blocks before its first
    image (20 MB of 1-byte comment sub-blocks: 4.6 s and 926 MB of memory);
  - a TIFF whose first IFD has more than :data:`MAX_HEADER_UNITS` entries or more than
    :data:`MAX_TIFF_STRIPS` strips or tiles (an uncompressed 45 MB TIFF with 5 M one-byte
    strips took 31 s and 1.85 GB; 2**18 strips take 1.5 s and 130 MB);
  - a JPEG 2000 file with more than :data:`MAX_HEADER_UNITS` boxes before its codestream
    (20 MB of empty boxes: 2.0 s), and a PPM/PGM header longer than 64 KiB (20 MB of
    comment lines: 8.3 s);
  - an RLE-compressed BMP over :data:`MAX_RLE_BMP_PIXELS` pixels: Pillow decodes RLE in
    Python, about 0.7 us per pixel (9 Mpx: 6.2 s).

  The figures were measured with Pillow 13.0 on one core of a 2-core x86-64 machine.
* **Frames**: only the first frame or page is ever decoded. The number of frames is counted
  from the file's structure (the TIFF IFD chain, the GIF block chain, or the count a WebP,
  APNG or MPO header declares), never by decoding or seeking frames, and the count stops at
  :data:`FRAME_COUNT_LIMIT`. A GIF whose blocks are too many to walk cheaply reports the
  frames counted so far.

**Decode time and memory.** Within these limits decoding is linear in the pixels. The
largest image the defaults allow, 10000 x 10000 RGB, loaded in 1.1 s as baseline JPEG,
1.2 s as deflate TIFF, 1.9 s as PNG, 2.5 s as WebP and 8.4 s as JPEG 2000 (OpenJPEG), with a
peak RSS of 1.0 GB (1.8 GB for WebP, 1.9 GB for JPEG 2000); a 100 Mpx progressive JPEG at the
scan limit loaded in 2.6 s, a BMP at the RLE limit in 7.2 s, and ``rythmiq.process`` of the
100 Mpx JPEG took 2.2 s at 1.0 GB. Lower ``max_pixels`` to bound time and memory further.

Pillow's own warnings (corrupt EXIF, truncated metadata, its decompression-bomb warning, which
our pixel limit replaces) are captured during decoding and logged at DEBUG on
``rythmiq.loading``: a warning about an uploaded file is not the caller's bug.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import os
import re
import stat
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq._util import check_image
from rythmiq.normalize import apply_orientation

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_PIXELS",
    "FRAME_COUNT_LIMIT",
    "SUPPORTED_FORMATS",
    "LoadedImage",
    "Source",
    "load_image",
]

log = logging.getLogger("rythmiq.loading")

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_INPUT_BYTES = 200 * 1024 * 1024
FRAME_COUNT_LIMIT = 1024
# Pillow format names that are opened; the master extensions in rythmiq.layout match them.
SUPPORTED_FORMATS = ("BMP", "GIF", "JPEG", "JPEG2000", "MPO", "PNG", "PPM", "TIFF", "WEBP")
_OPEN_FORMATS = tuple(f for f in SUPPORTED_FORMATS if f != "MPO")  # MPO opens as JPEG

MAX_JPEG_SCANS = 100  # libjpeg writes 6-10 for a progressive JPEG, mozjpeg about 10-20
MAX_HEADER_UNITS = 1 << 16
MAX_PNG_CHUNKS = 1 << 18  # 2 GiB of IDAT in 8 KiB chunks
MAX_TIFF_STRIPS = 1 << 18
MAX_RLE_BMP_PIXELS = 1 << 24
_PPM_HEADER_WINDOW = 1 << 16
# Walking GIF blocks to count frames stops after this many sub-blocks (about 0.2 s).
_GIF_COUNT_BUDGET = 1 << 20

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, NDArray[np.uint8]]

_EXIF_ORIENTATION = 0x0112
_EXIF_XRES, _EXIF_YRES, _EXIF_UNIT = 0x011A, 0x011B, 0x0128

# What a decoder can raise on a hostile file. Pillow's plugins are Python code, so besides
# OSError/SyntaxError/ValueError that includes struct.error from unpacking short data,
# IndexError/KeyError from bad tables, ZeroDivisionError/OverflowError from bad fields,
# EOFError from seeking, and RecursionError/NotImplementedError (both RuntimeError).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
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

# Magic numbers of common uploads, so the error can say what the file is.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%!PS", "a PostScript/EPS file"),
    (b"\xc5\xd0\xd3\xc6", "a PostScript/EPS file"),
    (b"8BPS", "a Photoshop document"),
    (b"<?xml", "an XML file"),
    (b"<svg", "an SVG drawing"),
    (b"{", "a JSON/text file"),
    (b"<!DOCTYPE html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"ftypheic", "a HEIC photo"),
    (b"ftypavif", "an AVIF photo"),
)
# Images of a supported format: a file with one of these magics that Pillow cannot open is
# corrupt or truncated (input.unreadable), not of an unsupported type.
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_PPM_MAGIC = re.compile(rb"P[1-6][ \t\n\r\v\f]")
_BMP_HEADER_SIZES = frozenset(n.to_bytes(4, "little") for n in (12, 40, 52, 56, 64, 108, 124))
# Pillow also accepts the two byte-swapped classic magics.
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"MM*\x00", b"II\x00*")


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
            :data:`FRAME_COUNT_LIMIT`; only the first is decoded and used.
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
        if head.startswith(magic) or (magic.startswith(b"ftyp") and data[4:12] == magic):
            return name
    try:
        data[:256].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unrecognised binary file"


def _image_kind(data: bytes) -> str | None:
    for magic, name in _IMAGE_SIGNATURES:
        if data.startswith(magic):
            return name
    # "BM" alone is too weak a magic ("BMW service report..."): also want a known header size.
    if data.startswith(b"BM") and data[14:18] in _BMP_HEADER_SIZES:
        return "BMP"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WebP"
    if _PPM_MAGIC.match(data):
        return "PPM/PGM"
    return None


def _too_large(label: str, what: str) -> InputError:
    return InputError(f"{label} {what}", code="input.too_large")


def _read_source(source: Source, max_input_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = memoryview(source).nbytes
        if size > max_input_bytes:
            raise _too_large(
                "<bytes>",
                f"is {size} bytes, over the limit of {max_input_bytes}; raise max_input_bytes "
                "if this is expected",
            )
        return bytes(source), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = repr(str(path))
        if "\x00" in str(path):  # os.stat would raise ValueError
            raise InputError(f"{label} is not a valid path: it contains a NUL character")
        try:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise InputError(f"{label} is a directory, not an image file")
            if stat.S_ISREG(info.st_mode) and info.st_size > max_input_bytes:
                raise _too_large(
                    label, f"is {info.st_size} bytes, over the limit of {max_input_bytes}"
                )
            with path.open("rb") as fh:
                # A device or pipe has no size: read one byte past the limit to detect it.
                data = fh.read(max_input_bytes + 1)
        except FileNotFoundError:
            raise InputError(f"no such file: {label}", code="input.not_found") from None
        except OSError as exc:
            raise InputError(f"cannot read {label}: {exc.strerror or exc}") from exc
        if len(data) > max_input_bytes:
            raise _too_large(label, f"is over the limit of {max_input_bytes} bytes")
        return data, label
    raise OptionsError(
        f"source must be a path, bytes or a numpy array, got {type(source).__name__}"
    )


# --- structure checks on the raw bytes, before Pillow parses anything ----------------------


_NOT_FF = re.compile(rb"[^\xff]")


def _check_jpeg(data: bytes, label: str) -> None:
    # Entropy-coded data never holds FF DA (a data FF is followed by 00 or RSTn), so this
    # counts the SOS markers, plus any that embedded thumbnails or metadata happen to hold.
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise _too_large(
            label,
            f"is a JPEG with {scans} scans, over the limit of {MAX_JPEG_SCANS}: progressive "
            "decoding costs pixels x scans",
        )
    # Pillow reads the markers before the first scan, and any junk between them, one byte
    # or one segment at a time in Python.
    pos, end, units = 2, len(data), 0
    while pos < end and units <= MAX_HEADER_UNITS:
        if data[pos] != 0xFF:
            nxt = data.find(b"\xff", pos)
            units += (nxt if nxt >= 0 else end) - pos
            if nxt < 0:
                break
            pos = nxt
        found = _NOT_FF.search(data, pos)
        if found is None:
            break
        units += found.start() - pos - 1
        marker, pos = data[found.start()], found.start() + 1
        units += 1
        if marker in (0xDA, 0xD9):  # start of scan, end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7 or marker == 0x00:
            continue
        if pos + 2 > end:
            break
        pos += int.from_bytes(data[pos : pos + 2], "big")
    if units > MAX_HEADER_UNITS:
        raise _too_large(
            label,
            f"is a JPEG with over {MAX_HEADER_UNITS} marker segments or junk bytes before its "
            "image data",
        )


def _check_png(data: bytes, label: str) -> None:
    pos, end, chunks = 8, len(data), 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise _too_large(label, f"is a PNG with over {MAX_PNG_CHUNKS} chunks")
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")


def _skip_sub_blocks(data: bytes, pos: int, budget: int) -> tuple[int, int]:
    """Skip a GIF sub-block chain; return the position after it and the blocks walked."""
    end, blocks = len(data), 0
    while pos < end and blocks < budget:
        size = data[pos]
        pos += size + 1
        blocks += 1
        if size == 0:
            break
    return pos, blocks


def _gif_frames(data: bytes, label: str) -> int:
    """Check the blocks Pillow parses in Python, and count the frames (image descriptors)."""
    end = len(data)
    if end < 13:
        return 1
    pos = 13
    if data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    frames, walked = 0, 0
    while pos < end and frames < FRAME_COUNT_LIMIT and walked < _GIF_COUNT_BUDGET:
        kind = data[pos]
        if kind == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif kind == 0x2C:  # image descriptor, local colour table, LZW code size
            if pos + 10 > end:
                break
            flags = data[pos + 9]
            pos += 11 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
            frames += 1
        else:  # trailer (0x3B) or garbage: Pillow stops here too
            break
        budget = (MAX_HEADER_UNITS + 1 if frames == 0 else _GIF_COUNT_BUDGET) - walked
        pos, blocks = _skip_sub_blocks(data, pos, budget)
        walked += blocks
        if frames == 0 and walked > MAX_HEADER_UNITS:
            raise _too_large(
                label,
                f"is a GIF with over {MAX_HEADER_UNITS} extension blocks before its first image",
            )
    return max(frames, 1)


def _tiff_layout(data: bytes) -> tuple[str, bool, int] | None:
    """Byte order, BigTIFF or not, and first IFD offset of TIFF-structured bytes."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return None
    order = "<" if data[:2] == b"II" else ">"
    if data[2:4] in (b"+\x00", b"\x00+"):  # BigTIFF: 8-byte offsets and counts
        if len(data) < 16:
            return None
        return order, True, struct.unpack_from(order + "Q", data, 8)[0]
    return order, False, struct.unpack_from(order + "I", data, 4)[0]


def _ifd_entries(data: bytes, offset: int, order: str, big: bool) -> int | None:
    size = 8 if big else 2
    if offset <= 0 or offset + size > len(data):
        return None
    count: int = struct.unpack_from(order + ("Q" if big else "H"), data, offset)[0]
    return count


def _tiff_frames(data: bytes, label: str) -> int:
    """Check the first IFD (size, strips, EXIF and GPS IFDs) and count the IFDs (pages)."""
    return max(len(tiff_ifds(data, label, check=1)), 1)


def tiff_ifds(data: bytes, label: str, *, check: int) -> list[int]:
    """Offsets of a TIFF's IFDs (its pages), up to :data:`FRAME_COUNT_LIMIT`.

    The first ``check`` IFDs are checked as the first always is (entries, strips, EXIF and
    GPS IFDs), raising ``input.too_large``; the chain stops at a loop or a bad offset.
    """
    layout = _tiff_layout(data)
    if layout is None:
        return []
    order, big, offset = layout
    head, entry, value_fmt = (8, 20, "Q") if big else (2, 12, "I")
    link = struct.calcsize(value_fmt)
    seen: set[int] = set()
    offsets: list[int] = []
    while len(offsets) < FRAME_COUNT_LIMIT and offset not in seen:
        entries = _ifd_entries(data, offset, order, big)
        if entries is None:
            break
        seen.add(offset)
        if len(offsets) < check:
            _check_ifd(data, label, offset, entries, order, big)
        offsets.append(offset)
        at = offset + head + entries * entry
        if at + link > len(data):
            break
        offset = struct.unpack_from(order + value_fmt, data, at)[0]
    return offsets


def _check_ifd(data: bytes, label: str, offset: int, entries: int, order: str, big: bool) -> None:
    # Pillow parses the first IFD entry by entry in Python, builds one tile per strip, and
    # while loading also parses the EXIF and GPS IFDs that the first IFD points to.
    head, entry, value_fmt = (8, 20, "Q") if big else (2, 12, "I")
    link = struct.calcsize(value_fmt)
    if entries > MAX_HEADER_UNITS:
        raise _too_large(label, f"is a TIFF with an IFD of {entries} entries, over the limit")
    for k in range(entries):
        at = offset + head + k * entry
        if at + entry > len(data):
            break
        tag = struct.unpack_from(order + "H", data, at)[0]
        count = struct.unpack_from(order + value_fmt, data, at + 4)[0]
        # StripOffsets, StripByteCounts, TileOffsets, TileByteCounts
        if tag in (273, 279, 324, 325) and count > MAX_TIFF_STRIPS:
            raise _too_large(
                label,
                f"is a TIFF with {count} strips or tiles, over the limit of {MAX_TIFF_STRIPS}",
            )
        if tag in (0x8769, 0x8825) and count == 1:  # EXIF IFD, GPS IFD
            sub = struct.unpack_from(order + value_fmt, data, at + 4 + link)[0]
            sub_entries = _ifd_entries(data, sub, order, big) or 0
            if sub_entries > MAX_HEADER_UNITS:
                raise _too_large(label, f"is a TIFF with a metadata IFD of {sub_entries} entries")


def _exif_is_small(blob: bytes) -> bool:
    """Whether an EXIF block's first IFD is small enough for Pillow to parse it quickly.

    EXIF in PNG, WebP or a JPEG XL box has no 64 KiB cap, and may even be a BigTIFF with
    up to 2**64 entries, each parsed in Python.
    """
    body = blob[6:] if blob.startswith(b"Exif\x00\x00") else blob
    layout = _tiff_layout(body)
    if layout is None:
        return True
    order, big, offset = layout
    return (_ifd_entries(body, offset, order, big) or 0) <= MAX_HEADER_UNITS


def _check_jp2(data: bytes, label: str) -> None:
    # Pillow walks the top-level boxes up to the header box, then the header's children.
    pos, end, boxes = 0, len(data), 0
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if length == 1:
            if pos + 16 > end:
                return
            length, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif length == 0:
            length = end - pos
        if length < head or kind == b"jp2c":
            return
        boxes += 1
        if boxes > MAX_HEADER_UNITS:
            raise _too_large(label, f"is a JPEG 2000 file with over {MAX_HEADER_UNITS} boxes")
        pos += head if kind in (b"jp2h", b"res ") else length


_PPM_SKIP = re.compile(rb"(?:[ \t\n\r\v\f]|#[^\r\n]*)*")
_PPM_TOKEN = re.compile(rb"[^ \t\n\r\v\f#]+")


def _check_ppm(data: bytes, label: str) -> None:
    window = min(len(data), _PPM_HEADER_WINDOW)
    pos = 2
    for _ in range(2 if data[1:2] in (b"1", b"4") else 3):
        pos = _PPM_SKIP.match(data, pos, window).end()  # type: ignore[union-attr]
        token = _PPM_TOKEN.match(data, pos, window)
        if token is None:
            if window < len(data):
                raise _too_large(label, f"is a PPM with a header over {window} bytes")
            return
        pos = token.end()


def _check_bmp(data: bytes, label: str) -> None:
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    pixels = abs(width) * abs(height)
    if compression in (1, 2) and pixels > MAX_RLE_BMP_PIXELS:
        raise _too_large(
            label,
            f"is an RLE-compressed BMP of {pixels} pixels; Pillow decodes RLE in Python, so "
            f"such BMPs are limited to {MAX_RLE_BMP_PIXELS} pixels",
        )


def _preflight(data: bytes, label: str) -> int | None:
    """Refuse layouts that are slow or memory-hungry to parse; count frames where cheap."""
    if data.startswith(b"\xff\xd8"):
        _check_jpeg(data, label)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png(data, label)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_frames(data, label)
    elif data[:4] in _TIFF_MAGICS:
        return _tiff_frames(data, label)
    elif data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        _check_jp2(data, label)
    elif data[:1] == b"P" and data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"f", b"F"):
        _check_ppm(data, label)
    elif data.startswith(b"BM"):
        _check_bmp(data, label)
    return None


# --- metadata --------------------------------------------------------------------------------


def _declared_dpi(im: Any, use_exif: bool) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if dpi is not None and im.format == "TIFF" and _EXIF_XRES not in im.tag_v2:
        dpi = None  # Pillow reports (1, 1) for a TIFF with no resolution tags at all
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


def _metadata(im: Any, label: str) -> tuple[int, tuple[float, float] | None]:
    """EXIF orientation and declared DPI; corrupt metadata is ignored, not fatal."""
    blob = im.info.get("exif")
    use_exif = not isinstance(blob, bytes) or _exif_is_small(blob)
    if not use_exif:
        log.debug("%s: ignoring an EXIF block with an oversized IFD", label)
    try:
        orientation = _orientation(im) if use_exif else 1
    except _DECODE_ERRORS as exc:
        log.debug("%s: ignoring unreadable EXIF orientation: %s", label, exc)
        orientation = 1
    try:
        dpi = _declared_dpi(im, use_exif)
    except _DECODE_ERRORS as exc:
        log.debug("%s: ignoring unreadable DPI: %s", label, exc)
        dpi = None
    return orientation, dpi


def _count_frames(im: Any, counted: int | None) -> int:
    if counted is not None:
        return min(counted, FRAME_COUNT_LIMIT)
    # WebP, APNG and MPO declare their frame count in a header; nothing is decoded.
    try:
        frames = int(getattr(im, "n_frames", 1) or 1)
    except _DECODE_ERRORS:
        frames = 1
    return max(1, min(frames, FRAME_COUNT_LIMIT))


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


def _to_uint8(im: Any, label: str = "the image") -> NDArray[np.uint8]:
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


def _from_array(image: NDArray[Any]) -> NDArray[np.uint8]:
    check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    if image.ndim == 3 and image.shape[2] == 4:
        return _flatten_alpha(image)
    return image


def _decode(
    data: bytes, label: str, max_pixels: int
) -> tuple[NDArray[np.uint8], str | None, str, tuple[float, float] | None, int, int]:
    from PIL import Image

    counted = _preflight(data, label)
    im = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    width, height = im.size
    if width * height > max_pixels:
        raise _too_large(
            label,
            f"is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "raise max_pixels if this is expected",
        )
    if width < 1 or height < 1:
        raise InputError(f"{label} has no pixels ({width}x{height})", code="input.empty")
    im.load()
    mode, fmt = im.mode, im.format
    orientation, dpi = _metadata(im, label)
    pixels = _to_uint8(im, label)
    frames = _count_frames(im, counted)
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise InputError(
            f"{label} decoded to an unexpected shape {pixels.shape} (mode {mode!r})",
            code="input.unsupported",
        )
    return pixels, fmt, mode, dpi, orientation, frames


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
            kind = _image_kind(data)
            if kind is not None:
                raise InputError(
                    f"{label} looks like a {kind} image but is corrupt or truncated"
                ) from exc
            raise InputError(
                f"{label} is not a supported image; it looks like {_describe(data)} "
                f"(supported formats: {', '.join(SUPPORTED_FORMATS)}, and PDF documents)",
                code="input.unsupported",
            ) from exc
        except MemoryError as exc:
            raise InputError(
                f"{label} needs more memory to decode than is available; lower max_pixels "
                "or give the process more memory",
                code="input.too_large",
            ) from exc
        except _DECODE_ERRORS as exc:
            raise InputError(
                f"{label} is corrupt or truncated ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            for warning in caught:
                if not issubclass(warning.category, Image.DecompressionBombWarning):
                    log.debug("%s: Pillow warned: %s", label, warning.message)


def load_image(
    source: Source,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> LoadedImage:
    """Decode ``source`` into an upright grayscale or RGB ``uint8`` image.

    Only the first frame or page of a multi-frame file is decoded. Accepted formats are
    :data:`SUPPORTED_FORMATS`; see the module documentation for every limit and its cost.

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
    for name, value in (("max_pixels", max_pixels), ("max_input_bytes", max_input_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
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

    data, label = _read_source(source, max_input_bytes)
    return decode_bytes(data, label, max_pixels=max_pixels)


def decode_bytes(data: bytes, label: str, *, max_pixels: int) -> LoadedImage:
    """:func:`load_image` for bytes already read (``label`` names them in messages)."""
    if not data:
        raise InputError(f"{label} is empty (0 bytes)", code="input.empty")

    with decoding(label, data):
        pixels, fmt, mode, dpi, orientation, frames = _decode(data, label, max_pixels)
    pixels = apply_orientation(pixels, orientation)
    digest = hashlib.sha256(data).hexdigest()
    return LoadedImage(pixels, fmt, mode, dpi, orientation, frames, len(data), digest, data)
