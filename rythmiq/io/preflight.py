"""Structure checks on the raw bytes, before Pillow parses anything; frames counted cheaply.

Pillow parses headers, markers, chunks and blocks one at a time in Python, and a few layouts
make decoding cost grow with something other than the pixel count. :func:`check_structure`
scans the raw bytes of the format :func:`rythmiq.io.sniff.container` names and refuses, with
``input.too_large``:

- a JPEG with more than :data:`MAX_JPEG_SCANS` scans (SOS markers): progressive decoding
  costs pixels x scans;
- a JPEG with more than :data:`MAX_HEADER_UNITS` marker segments or junk/fill bytes before
  its first scan;
- a PNG with more than :data:`MAX_PNG_CHUNKS` chunks;
- a GIF with more than :data:`MAX_HEADER_UNITS` extension sub-blocks before its first image;
- a TIFF IFD with more than :data:`MAX_HEADER_UNITS` entries, more than
  :data:`MAX_TIFF_STRIPS` strips or tiles, or an EXIF/GPS IFD of more than
  :data:`MAX_HEADER_UNITS` entries (the first IFD for an image, every page's for a document);
- a JPEG 2000 file with more than :data:`MAX_HEADER_UNITS` boxes before its codestream, and a
  PPM/PGM header longer than 64 KiB;
- an RLE-compressed BMP over :data:`MAX_RLE_BMP_PIXELS` pixels (Pillow decodes RLE in
  Python).

Within these limits decoding is linear in the pixels; lower ``max_pixels`` to bound time and
memory further. What each layout costs without these limits, and what decoding costs within
them: see docs/benchmarks.md.

**Frames** are counted from the structure, never by decoding or seeking frames: the TIFF IFD
chain (walked once, by :func:`tiff_ifds`) and the GIF block chain here, and the count a WebP,
APNG or MPO header declares (read by Pillow, clamped by :func:`clamp_frames`). Counts stop at
:data:`FRAME_COUNT_LIMIT`; a GIF whose blocks are too many to walk cheaply reports the frames
counted so far.
"""

from __future__ import annotations

import re
import struct

from rythmiq.io.limits import too_large

__all__ = [
    "FRAME_COUNT_LIMIT",
    "MAX_HEADER_UNITS",
    "MAX_JPEG_SCANS",
    "MAX_PNG_CHUNKS",
    "MAX_RLE_BMP_PIXELS",
    "MAX_TIFF_STRIPS",
    "check_structure",
    "clamp_frames",
    "exif_is_small",
    "tiff_ifds",
]

FRAME_COUNT_LIMIT = 1024
MAX_JPEG_SCANS = 100  # libjpeg writes 6-10 for a progressive JPEG, mozjpeg about 10-20
MAX_HEADER_UNITS = 1 << 16
MAX_PNG_CHUNKS = 1 << 18  # 2 GiB of IDAT in 8 KiB chunks
MAX_TIFF_STRIPS = 1 << 18
MAX_RLE_BMP_PIXELS = 1 << 24
_PPM_HEADER_WINDOW = 1 << 16
# Walking GIF blocks to count frames stops after this many sub-blocks.
_GIF_COUNT_BUDGET = 1 << 20


def check_structure(data: bytes, label: str, kind: str | None, *, ifds: int = 1) -> int | None:
    """Refuse layouts that are slow or memory-hungry to parse; count frames where cheap.

    Args:
        data: The encoded bytes.
        label: Names them in messages.
        kind: Their container, from :func:`rythmiq.io.sniff.container`.
        ifds: How many TIFF IFDs (pages) to check as the first one: 1 for an image, one
            more than ``max_pages`` for a document.

    Returns:
        The number of frames of a GIF or TIFF (at least 1), counted from its structure;
        ``None`` for the other formats, whose header declares it.
    """
    if kind == "GIF":
        return _gif_frames(data, label)
    if kind == "TIFF":
        return max(len(tiff_ifds(data, label, check=ifds)), 1)
    check = _CHECKS.get(kind or "")
    if check is not None:
        check(data, label)
    return None


def clamp_frames(frames: int) -> int:
    """A frame count within 1-:data:`FRAME_COUNT_LIMIT`."""
    return max(1, min(frames, FRAME_COUNT_LIMIT))


# --- the checks, one per format -----------------------------------------------------------

_NOT_FF = re.compile(rb"[^\xff]")


def _check_jpeg(data: bytes, label: str) -> None:
    # Entropy-coded data never holds FF DA (a data FF is followed by 00 or RSTn), so this
    # counts the SOS markers, plus any that embedded thumbnails or metadata happen to hold.
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise too_large(
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
        raise too_large(
            label,
            f"is a JPEG with over {MAX_HEADER_UNITS} marker segments or junk bytes before its "
            "image data",
        )


def _check_png(data: bytes, label: str) -> None:
    pos, end, chunks = 8, len(data), 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise too_large(label, f"is a PNG with over {MAX_PNG_CHUNKS} chunks")
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
            raise too_large(
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
        raise too_large(label, f"is a TIFF with an IFD of {entries} entries, over the limit")
    for k in range(entries):
        at = offset + head + k * entry
        if at + entry > len(data):
            break
        tag = struct.unpack_from(order + "H", data, at)[0]
        count = struct.unpack_from(order + value_fmt, data, at + 4)[0]
        # StripOffsets, StripByteCounts, TileOffsets, TileByteCounts
        if tag in (273, 279, 324, 325) and count > MAX_TIFF_STRIPS:
            raise too_large(
                label,
                f"is a TIFF with {count} strips or tiles, over the limit of {MAX_TIFF_STRIPS}",
            )
        if tag in (0x8769, 0x8825) and count == 1:  # EXIF IFD, GPS IFD
            sub = struct.unpack_from(order + value_fmt, data, at + 4 + link)[0]
            sub_entries = _ifd_entries(data, sub, order, big) or 0
            if sub_entries > MAX_HEADER_UNITS:
                raise too_large(label, f"is a TIFF with a metadata IFD of {sub_entries} entries")


def exif_is_small(blob: bytes) -> bool:
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
            raise too_large(label, f"is a JPEG 2000 file with over {MAX_HEADER_UNITS} boxes")
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
                raise too_large(label, f"is a PPM with a header over {window} bytes")
            return
        pos = token.end()


def _check_bmp(data: bytes, label: str) -> None:
    if len(data) < 34 or int.from_bytes(data[14:18], "little") < 40:
        return
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    pixels = abs(width) * abs(height)
    if compression in (1, 2) and pixels > MAX_RLE_BMP_PIXELS:
        raise too_large(
            label,
            f"is an RLE-compressed BMP of {pixels} pixels; Pillow decodes RLE in Python, so "
            f"such BMPs are limited to {MAX_RLE_BMP_PIXELS} pixels",
        )


_CHECKS = {
    "JPEG": _check_jpeg,
    "PNG": _check_png,
    "JPEG2000": _check_jp2,
    "PPM": _check_ppm,
    "BMP": _check_bmp,
}
