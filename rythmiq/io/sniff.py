"""What the bytes are: the format told by their magic number, before anything parses them.

:func:`is_pdf` sends a document to the PDF reader, :func:`container` tells the preflight which
structure checks apply, and :func:`unidentified` builds the error for bytes that no allowed
Pillow plugin opens: ``input.unreadable`` for a corrupt file of a supported format, else
``input.unsupported`` naming what the file appears to be (a ZIP archive, an HTML page...).
"""

from __future__ import annotations

import re

from rythmiq._errors import InputError

__all__ = [
    "OPEN_FORMATS",
    "SUPPORTED_FORMATS",
    "TIFF_MAGICS",
    "container",
    "describe",
    "image_kind",
    "is_pdf",
    "unidentified",
]

# Pillow format names that are opened; the master extensions in rythmiq.layout match them.
SUPPORTED_FORMATS = ("BMP", "GIF", "JPEG", "JPEG2000", "MPO", "PNG", "PPM", "TIFF", "WEBP")
# What Image.open may try: only these plugins, never EPS & co. MPO opens as JPEG.
OPEN_FORMATS = tuple(f for f in SUPPORTED_FORMATS if f != "MPO")

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
_JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# Pillow also accepts the two byte-swapped classic magics.
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"MM*\x00", b"II\x00*")
_PPM_KINDS = (b"1", b"2", b"3", b"4", b"5", b"6", b"f", b"F")

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
    (_JPEG_MAGIC, "JPEG"),
    (_PNG_MAGIC, "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (_JP2_MAGIC, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_PPM_MAGIC = re.compile(rb"P[1-6][ \t\n\r\v\f]")
_BMP_HEADER_SIZES = frozenset(n.to_bytes(4, "little") for n in (12, 40, 52, 56, 64, 108, 124))


def is_pdf(data: bytes) -> bool:
    """Whether ``data`` is a PDF: ``%PDF-`` within its first KiB, as PDF readers accept it."""
    return b"%PDF-" in data[:1024]


def container(data: bytes) -> str | None:
    """The image container the magic number names, for the structure checks.

    One of ``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"TIFF"``, ``"JPEG2000"``, ``"PPM"`` (also
    PGM, PBM and PFM) and ``"BMP"``, or ``None`` (no checks: WebP, or not an image).
    """
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data[:6] in _GIF_MAGICS:
        return "GIF"
    if data[:4] in TIFF_MAGICS:
        return "TIFF"
    if data.startswith(_JP2_MAGIC):
        return "JPEG2000"
    if data[:1] == b"P" and data[1:2] in _PPM_KINDS:
        return "PPM"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def describe(data: bytes) -> str:
    """What a file that is no supported image appears to be: ``"a PDF document"``..."""
    head = data[:64].lstrip()
    for magic, name in _SIGNATURES:
        if head.startswith(magic) or (magic.startswith(b"ftyp") and data[4:12] == magic):
            return name
    try:
        data[:256].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "an unrecognised binary file"


def image_kind(data: bytes) -> str | None:
    """The supported image format a file's (strong) magic number claims, or ``None``."""
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


def unidentified(label: str, data: bytes) -> InputError:
    """The error for bytes that no allowed Pillow plugin would open."""
    kind = image_kind(data)
    if kind is not None:
        return InputError(f"{label} looks like a {kind} image but is corrupt or truncated")
    return InputError(
        f"{label} is not a supported image; it looks like {describe(data)} "
        f"(supported formats: {', '.join(SUPPORTED_FORMATS)}, and PDF documents)",
        code="input.unsupported",
    )
