"""What processing a document gives back: the result types of :func:`rythmiq.process`.

Plain frozen dataclasses with their JSON forms (``to_dict``, the stored ``result.json``) and
reprs. They sit below the pipeline (``rythmiq.pipeline``), the writers (``rythmiq.export``)
and the drawing (``rythmiq.viz``), which all read them; only the notebook display
(``_repr_html_``) reaches up, lazily, to ``rythmiq._html``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rythmiq._errors import OptionsError
from rythmiq._public import public
from rythmiq._util import format_bytes, short_repr
from rythmiq.layout import Ids
from rythmiq.ocr import OcrResult
from rythmiq.orientation import Orientation
from rythmiq.quality import QualityReport
from rythmiq.storage import Artifact

__all__ = [
    "STAGES",
    "NormalizedImage",
    "PageResult",
    "Preview",
    "ProcessResult",
    "StageTiming",
    "Timings",
]

#: The timed stages, in order (see :class:`Timings`).
STAGES = ("load", "quality", "engine", "orient", "normalize", "ocr", "total")


@public
@dataclass(frozen=True)
class NormalizedImage:
    """The normalized image, encoded as JPEG, and what normalization did.

    Attributes:
        data: The JPEG bytes (DPI written in its JFIF header).
        width: Pixel width.
        height: Pixel height.
        dpi: DPI of the output.
        dpi_source: Where the input DPI came from: ``"metadata"``, ``"inferred"``, ``"default"``.
        declared_dpi: The DPI the file declared, if any.
        orientation: EXIF orientation that was applied (1 = none).
        original_size: ``(width, height)`` of the upright input.
        jpeg_quality: Quality of the encode.
        encodes: JPEG encodes spent (the byte-budget search can take several).
        fits_budget: Whether the JPEG met ``max_bytes`` (always true without a budget).
        corrections: What was changed, e.g. ``("exif_orientation", "dpi_inferred",
            "resized", "budget_downscaled")``.
    """

    data: bytes = field(repr=False)
    width: int
    height: int
    dpi: float
    dpi_source: str
    declared_dpi: tuple[float, float] | None
    orientation: int
    original_size: tuple[int, int]
    jpeg_quality: int
    encodes: int
    fits_budget: bool
    corrections: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the bytes are replaced by their size and SHA-256."""
        return {
            "width": self.width,
            "height": self.height,
            "dpi": self.dpi,
            "dpi_source": self.dpi_source,
            "declared_dpi": list(self.declared_dpi) if self.declared_dpi else None,
            "orientation": self.orientation,
            "original_size": list(self.original_size),
            "jpeg_quality": self.jpeg_quality,
            "encodes": self.encodes,
            "fits_budget": self.fits_budget,
            "corrections": list(self.corrections),
            "bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }

    def __repr__(self) -> str:
        return (
            f"NormalizedImage({self.width}x{self.height} @{self.dpi:g}dpi, "
            f"JPEG q{self.jpeg_quality}, {format_bytes(len(self.data))})"
        )


@public
@dataclass(frozen=True)
class Preview:
    """A small JPEG for display."""

    data: bytes = field(repr=False)
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: size and SHA-256 instead of the bytes."""
        return {
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }

    def __repr__(self) -> str:
        return f"Preview({self.width}x{self.height}, {format_bytes(len(self.data))})"


@public
@dataclass(frozen=True)
class StageTiming:
    """Wall-clock and CPU seconds (user + system, all threads) of one stage."""

    wall_s: float
    cpu_s: float

    __repr__ = short_repr


@public
@dataclass(frozen=True)
class Timings:
    """Per-stage timings. A stage that did not run has zero time.

    For a document, each stage is the sum over its pages (``load`` also counts opening the
    document) and ``total`` is the whole call. ``engine`` is the time spent getting the OCR
    engine: loading its models the first time a process needs them (on the first page that
    is read), about zero once it is loaded or when one is passed in. It is never counted in
    ``orient`` or ``ocr``.
    """

    load: StageTiming
    quality: StageTiming
    normalize: StageTiming
    ocr: StageTiming
    total: StageTiming
    orient: StageTiming = StageTiming(0.0, 0.0)
    engine: StageTiming = StageTiming(0.0, 0.0)

    def __repr__(self) -> str:
        stages = ", ".join(f"{n}={getattr(self, n).wall_s:.3g}" for n in STAGES if n != "total")
        return (
            f"Timings(total={self.total.wall_s:.3g} s wall/{self.total.cpu_s:.3g} s CPU; "
            f"wall s: {stages})"
        )

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{stage: {"wall_s", "cpu_s"}}``, rounded to microseconds."""
        return {
            name: {"wall_s": round(t.wall_s, 6), "cpu_s": round(t.cpu_s, 6)}
            for name, t in ((n, getattr(self, n)) for n in STAGES)
        }


def _page_summary(page: PageResult, timings: Timings) -> str:
    """The one-line summary of a page in the reprs: quality, image, OCR and the time."""
    q, img = page.quality, page.image
    if page.ocr is not None:
        n = len(page.ocr.lines)
        ocr = f"{n} line{'s' if n != 1 else ''}"
    else:
        ocr = f"skipped ({str(page.ocr_skipped_reason)[:20]})"
    turned = "" if page.orientation is None else f", rotation={page.orientation.rotation}"
    return (
        f"quality={q.score:.2f} {'PASS' if q.passed else 'FAIL'}, "
        f"image={img.width}x{img.height} @{img.dpi:g}dpi {format_bytes(len(img.data))}, "
        f"ocr={ocr}{turned}, {timings.total.wall_s:.2f} s"
    )


@public
@dataclass(frozen=True)
class PageResult:
    """What :func:`process` learned about one page of a document.

    Attributes:
        index: 0-based page number.
        quality: The quality verdict on the page as loaded (before it was turned upright).
        image: The normalized, upright page.
        preview: Its preview JPEG.
        ocr: OCR text and lines, boxes in pixel coordinates of :attr:`image`; ``None`` when
            OCR was off or skipped by the quality policy.
        timings: Wall and CPU seconds per stage for this page.
        ocr_skipped_reason: Why ``ocr`` is ``None``: ``"disabled"`` or ``"quality"``.
        orientation: The rotation and skew that were detected and corrected, ``None`` when
            detection did not run (OCR or ``rotate`` off).
        render_dpi: For a PDF page, the DPI it was rendered at.
    """

    index: int
    quality: QualityReport
    image: NormalizedImage
    preview: Preview
    ocr: OcrResult | None
    timings: Timings
    ocr_skipped_reason: str | None = None
    orientation: Orientation | None = None
    render_dpi: float | None = None

    def __repr__(self) -> str:
        return f"PageResult(index={self.index}, {_page_summary(self, self.timings)})"

    def to_dict(self, *, content: bool = True) -> dict[str, Any]:
        """A JSON-safe dict: plain types only, no bytes (sizes and hashes instead).

        Args:
            content: Include the OCR text and lines. Without them (what ``result.json``
                stores under ``encrypt="all"``) ``ocr`` keeps the engine, the confidence,
                the size and two counts, ``line_count`` and ``text_length``; its ``text``
                and ``lines`` are ``None``.
        """
        ocr: dict[str, Any] | None = None
        if self.ocr is not None:
            ocr = self.ocr.to_dict()
            if not content:
                ocr.update(text=None, lines=None)
                ocr.update(line_count=len(self.ocr.lines), text_length=len(self.ocr.text))
        return {
            "index": self.index,
            "quality": self.quality.to_dict(),
            "image": self.image.to_dict(),
            "preview": self.preview.to_dict(),
            "ocr": ocr,
            "ocr_skipped_reason": self.ocr_skipped_reason,
            "orientation": self.orientation.to_dict() if self.orientation is not None else None,
            "render_dpi": self.render_dpi,
            "timings": self.timings.to_dict(),
        }


@public
@dataclass(frozen=True)
class ProcessResult:
    """Everything :func:`process` learned about one document (an image, a PDF, a TIFF).

    A single image is a one-page document. :attr:`quality`, :attr:`image`, :attr:`preview`,
    :attr:`ocr` and :attr:`ocr_skipped_reason` are those of the **first page**, the whole
    result for an image; for a multi-page document use :attr:`pages`, :attr:`text` and
    :attr:`passed`.

    Attributes:
        pages: One :class:`PageResult` per page, in order.
        timings: Wall and CPU seconds per stage, summed over the pages.
        source_sha256: SHA-256 of the encoded input (of the pixels for an array input).
        ids: The ids the artifacts were stored under, when a store was given.
        artifacts: The stored artifacts (URL, size, SHA-256), ``result.json`` last; empty
            when no store was given.
        source_format: ``"PDF"`` or Pillow's name for the input's format (``"JPEG"``...),
            ``None`` for an array.
    """

    pages: tuple[PageResult, ...]
    timings: Timings
    source_sha256: str = ""
    ids: Ids | None = None
    artifacts: tuple[Artifact, ...] = ()
    source_format: str | None = None

    def __post_init__(self) -> None:
        if not self.pages:
            raise OptionsError("a ProcessResult needs at least one page")

    @property
    def page_count(self) -> int:
        """Number of pages."""
        return len(self.pages)

    @property
    def quality(self) -> QualityReport:
        """The first page's quality report."""
        return self.pages[0].quality

    @property
    def image(self) -> NormalizedImage:
        """The first page's normalized image."""
        return self.pages[0].image

    @property
    def preview(self) -> Preview:
        """The first page's preview."""
        return self.pages[0].preview

    @property
    def ocr(self) -> OcrResult | None:
        """The first page's OCR result (see :attr:`text` for the whole document)."""
        return self.pages[0].ocr

    @property
    def ocr_skipped_reason(self) -> str | None:
        """Why the first page has no OCR result."""
        return self.pages[0].ocr_skipped_reason

    @property
    def passed(self) -> bool:
        """Whether every page passed the quality gate."""
        return all(p.quality.passed for p in self.pages)

    @property
    def text(self) -> str | None:
        """The document's text, pages separated by a form feed (``\\f``), as pdftotext does;
        ``None`` when no page was OCR'd (a skipped page contributes an empty string)."""
        if all(p.ocr is None for p in self.pages):
            return None
        return "\f".join(p.ocr.text if p.ocr is not None else "" for p in self.pages)

    def to_dict(self, *, content: bool = True) -> dict[str, Any]:
        """A JSON-safe dict (the stored ``result.json``): document summary, then the pages.

        Args:
            content: Include the OCR text (``text``, and each page's text and lines). Off,
                ``text`` is ``None`` and the pages keep only counts (see
                :meth:`PageResult.to_dict`): the form ``result.json`` has when the text is
                stored encrypted (``encrypt="all"``).
        """
        scores = [p.quality.score for p in self.pages]
        return {
            "page_count": self.page_count,
            "passed": self.passed,
            "min_quality": min(scores),
            "text": self.text if content else None,
            "pages": [p.to_dict(content=content) for p in self.pages],
            "timings": self.timings.to_dict(),
            "source_sha256": self.source_sha256,
            "ids": self.ids.to_dict() if self.ids is not None else None,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "source_format": self.source_format,
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text; keyword arguments go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        pages = f"{self.page_count} pages, page 1: " if self.page_count > 1 else ""
        return f"ProcessResult({pages}{_page_summary(self.pages[0], self.timings)})"

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: thumbnail with OCR boxes, quality, image, text, timings."""
        from rythmiq._html import process_result_html  # upward, lazy: notebook display only

        return process_result_html(self)
