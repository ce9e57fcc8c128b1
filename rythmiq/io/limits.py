"""The input limits: their defaults, the one check of their values, and the errors they raise.

:func:`check_limits` is the only place a limit's value is checked. The loaders
(:func:`rythmiq.io.load_image`, :func:`rythmiq.io.load_document`) call it on their arguments
and :class:`rythmiq.ProcessOptions` on its fields, so a bad limit is the same
:class:`~rythmiq.OptionsError` wherever it comes from. The limits themselves are applied
where the input is read (:mod:`rythmiq.io.source`), parsed (:mod:`rythmiq.io.preflight`) and
decoded (the readers), always before a page is decoded; the ``input.too_large`` errors they
raise are built here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rythmiq._errors import InputError, OptionsError
from rythmiq._util import positive_int

__all__ = [
    "DEFAULT_MAX_INPUT_BYTES",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_TOTAL_PIXELS",
    "DEFAULT_PDF_DPI",
    "MAX_PDF_DPI",
    "MIN_PDF_DPI",
    "Limits",
    "check_limits",
    "too_large",
    "too_many_pages",
    "too_many_pixels",
]

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_INPUT_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_PAGES = 200
# 2 Gpx: about 230 A4 pages at 300 dpi. Only one page is decoded at a time; this bounds time.
DEFAULT_MAX_TOTAL_PIXELS = 2_000_000_000
DEFAULT_PDF_DPI = 300.0
MIN_PDF_DPI = 50.0
MAX_PDF_DPI = 600.0

_INTEGER_LIMITS = ("max_pixels", "max_input_bytes", "max_pages", "max_total_pixels")


@dataclass(frozen=True)
class Limits:
    """Checked input limits, as :func:`check_limits` returns them.

    Attributes:
        max_pixels: Largest image or page, in pixels (checked from headers / page sizes).
        max_input_bytes: Largest encoded input, in bytes.
        max_pages: Most pages a document may have.
        max_total_pixels: Most pixels all pages of a document may have together.
        pdf_dpi: DPI PDF pages are rendered at, as given (an ``int`` stays an ``int``).
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    max_pages: int = DEFAULT_MAX_PAGES
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS
    pdf_dpi: float = DEFAULT_PDF_DPI


def check_limits(
    *,
    max_pixels: object = DEFAULT_MAX_PIXELS,
    max_input_bytes: object = DEFAULT_MAX_INPUT_BYTES,
    max_pages: object = DEFAULT_MAX_PAGES,
    max_total_pixels: object = DEFAULT_MAX_TOTAL_PIXELS,
    pdf_dpi: object = DEFAULT_PDF_DPI,
    integral_floats: bool = False,
    max_page_number: int | None = None,
) -> Limits:
    """Check the input limits once, in this order, and return them normalized.

    Args:
        max_pixels: An integer >= 1.
        max_input_bytes: An integer >= 1.
        max_pages: An integer >= 1 (and at most ``max_page_number``, when given).
        max_total_pixels: An integer >= 1.
        pdf_dpi: A number within :data:`MIN_PDF_DPI`-:data:`MAX_PDF_DPI` (not a ``bool``);
            returned unchanged.
        integral_floats: Also accept a float with an integral value for the four integer
            limits, returned as an ``int`` (JSON Schema counts ``1e8`` as an integer). The
            loaders leave this off; options parsed from JSON turn it on.
        max_page_number: When given, ``max_pages`` may not exceed it (the highest page
            number an object key can carry).

    Raises:
        OptionsError: ``"{name} must be an integer >= 1, got {value!r}"``, ``"pdf_dpi must
            be within 50-600, got {value!r}"`` or ``"max_pages must be at most {n}, got
            {value}"``.
    """
    given = {
        "max_pixels": max_pixels,
        "max_input_bytes": max_input_bytes,
        "max_pages": max_pages,
        "max_total_pixels": max_total_pixels,
    }
    ints: dict[str, int] = {}
    for name in _INTEGER_LIMITS:
        value = given[name]
        if integral_floats and isinstance(value, float) and value.is_integer():
            value = int(value)
        ints[name] = positive_int(value, name)
    if (
        isinstance(pdf_dpi, bool)
        or not isinstance(pdf_dpi, (int, float))
        or not MIN_PDF_DPI <= pdf_dpi <= MAX_PDF_DPI
    ):
        raise OptionsError(
            f"pdf_dpi must be within {MIN_PDF_DPI:g}-{MAX_PDF_DPI:g}, got {pdf_dpi!r}"
        )
    if max_page_number is not None and ints["max_pages"] > max_page_number:
        raise OptionsError(f"max_pages must be at most {max_page_number}, got {ints['max_pages']}")
    return Limits(**ints, pdf_dpi=pdf_dpi)


def too_large(label: str, what: str) -> InputError:
    """``input.too_large``: ``"{label} {what}"``."""
    return InputError(f"{label} {what}", code="input.too_large")


def too_many_pages(label: str, count: int, max_pages: int, *, counted: bool = False) -> InputError:
    """``input.too_large`` for a document over ``max_pages`` (``counted``: "at least")."""
    at_least = "at least " if counted else ""
    return too_large(
        label,
        f"has {at_least}{count} pages, over the limit of {max_pages}; raise max_pages if this "
        "is expected",
    )


def too_many_pixels(label: str, total: int, limit: int) -> InputError:
    """``input.too_large`` for a document whose pages (or a single image whose pixels) are
    more than ``max_total_pixels``."""
    return too_large(
        label,
        f"has {total} pixels in all its pages, over the max_total_pixels limit of {limit}; "
        "raise max_total_pixels if this is expected",
    )
