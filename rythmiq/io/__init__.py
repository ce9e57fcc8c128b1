"""Untrusted input in, checked pages out: the loading edge of rythmiq.

A path, bytes, or an array becomes a :class:`LoadedImage` (:func:`load_image`) or a
:class:`LoadedDocument` (:func:`load_document`), or an :class:`~rythmiq.InputError`, within
bounded time and memory. Data moves one way through the modules, each importing only those
before it::

    limits     check_limits: every limit's value, checked once (also for ProcessOptions)
    pages      what comes out: LoadedImage, LoadedDocument, LoadedPage
    source     the bytes of a path or buffer, read within max_input_bytes
    sniff      the format, from the magic number
    preflight  structure checks on the raw bytes, and the frame / page count
    raster     Pillow opens the bytes once and decodes the first frame
    tiff, pdf  the other pages of a TIFF, the pages of a PDF
    load       the entry points: source -> sniff -> preflight -> a reader -> pages

Every limit is checked before the pixels it guards are decoded. No module reads a private
name of another; the names below are what the rest of rythmiq uses.
"""

from rythmiq.io.limits import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TOTAL_PIXELS,
    DEFAULT_PDF_DPI,
    MAX_PDF_DPI,
    MIN_PDF_DPI,
    Limits,
    check_limits,
)
from rythmiq.io.load import load_document, load_image
from rythmiq.io.pages import LoadedDocument, LoadedImage, LoadedPage
from rythmiq.io.raster import array_pixels, to_uint8
from rythmiq.io.sniff import SUPPORTED_FORMATS
from rythmiq.io.source import Source

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_TOTAL_PIXELS",
    "DEFAULT_PDF_DPI",
    "MAX_PDF_DPI",
    "MIN_PDF_DPI",
    "SUPPORTED_FORMATS",
    "Limits",
    "LoadedDocument",
    "LoadedImage",
    "LoadedPage",
    "Source",
    "array_pixels",
    "check_limits",
    "load_document",
    "load_image",
    "to_uint8",
]
