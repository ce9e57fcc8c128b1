"""Every setting of :func:`rythmiq.process` in one immutable object, checked once.

:class:`ProcessOptions` is built by the Python API, the CLI and the payload parser alike, and
its ``__post_init__`` is the one place an option value is checked. The engine's own settings
are checked by :class:`rythmiq.ocr.EngineConfig`, which :meth:`ProcessOptions.engine_config`
builds; the input limits are the loaders' defaults.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from rythmiq._errors import OptionsError
from rythmiq._public import public
from rythmiq._registry import DEFAULT_ENGINE, EngineName, Runtime
from rythmiq._util import check_field_types, positive_int
from rythmiq.io import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TOTAL_PIXELS,
    DEFAULT_PDF_DPI,
    check_limits,
)
from rythmiq.layout import (
    MAX_PAGE_NUMBER,
    OUTPUT_FORMATS,
    EncryptPolicy,
    OutputFormat,
    encrypted_kinds,
)
from rythmiq.normalize import DEFAULT_MAX_OUTPUT_PIXELS, PAGE_SIZES, PageSize
from rythmiq.ocr import EngineConfig
from rythmiq.quality import DEFAULT_THRESHOLD

__all__ = ["ProcessOptions", "QualityPolicy"]

QualityPolicy = Literal["continue", "skip_ocr"]
# The limits, checked by io.check_limits and positive_int, which also take an integral float
# (1e8) as JSON Schema does.
_INPUT_LIMITS = ("max_pixels", "max_input_bytes", "max_pages", "max_total_pixels")
_LIMITS = (*_INPUT_LIMITS, "max_output_pixels")


@public
@dataclass(frozen=True)
class ProcessOptions:
    """Every setting of :func:`process`, in one immutable object.

    Attributes:
        threshold: Quality pass/fail gate in ``[0, 1]``.
        on_quality_fail: ``"continue"`` (run OCR anyway and flag it in ``quality.passed``) or
            ``"skip_ocr"``.
        box: ``(width, height)`` the normalized image is fitted into; ``None`` keeps the size.
            The default is A4 at 300 dpi, the usual OCR resolution: 10 pt text is then about
            40 px tall, comfortably above what PP-OCRv5 needs, while a 12 MP phone photo
            shrinks to under 9 MP and detection stays fast. The box turns with the page.
        upscale: Allow enlarging images smaller than ``box``.
        target_dpi: Resample to this DPI before fitting into ``box``; ``None`` keeps it.
        assumed_page: Page size used to infer a missing DPI (see ``normalize.PAGE_SIZES``).
        max_bytes: Byte budget of the normalized JPEG; ``None`` encodes once at
            ``jpeg_quality``.
        jpeg_quality: Quality when there is no budget, and the upper bound of the search.
        min_jpeg_quality: Lower bound of the budget search before the image is shrunk.
        preview_size: Long side of the preview JPEG.
        ocr: Run OCR at all.
        engine: OCR engine: ``"onnx"`` (the default: PP-OCRv6 small through RapidOCR) or
            ``"paddle"`` (PaddleOCR, PP-OCRv5 mobile; ``pip install "rythmiq[paddle]"``).
            See :mod:`rythmiq.ocr`.
        runtime: What runs the onnx engine's models: ``"auto"`` (the default; OpenVINO when
            installed, else ONNX Runtime), ``"openvino"`` or ``"onnxruntime"``. The paddle
            engine takes only ``"auto"``.
        det_model: Detection model name; ``None`` is the engine's default.
        rec_model: Recognition model name; ``None`` is the engine's default.
        det_model_dir: Explicit detection model directory.
        rec_model_dir: Explicit recognition model directory.
        threads: OCR threads; ``None`` means ``$RYTHMIQ_THREADS`` or the usable cores.
        max_pixels: Refuse larger inputs before decoding them.
        max_input_bytes: Refuse encoded inputs over this many bytes before reading more of
            them (200 MiB by default; not applied to arrays).
        max_pages: Refuse documents (PDF, multi-page TIFF) with more pages.
        max_total_pixels: Refuse documents whose pages have more pixels together (2 Gpx,
            about 230 A4 pages at 300 dpi, by default). ``max_pixels`` applies to each page.
        pdf_dpi: DPI PDF pages are rendered at; a scanned page is rendered at its own
            image's resolution instead (50-600 dpi).
        rotate: Detect pages turned by 90, 180 or 270 degrees and turn them upright before
            normalization and OCR (see :mod:`rythmiq.orientation`). Runs only with OCR.
        deskew: Also measure a small skew (up to 10 degrees) and straighten the page.
        outputs: What a store receives besides the images and ``result.json``: any of
            ``"txt"`` (plain-text sidecar, the default), ``"hocr"`` and ``"pdf"`` (a
            searchable PDF of the normalized pages with an invisible text layer).
        encrypt: What a store receives encrypted (see ``docs/storage.md``): ``"master"``
            (the default) encrypts only the master, the original file. ``"all"`` also
            encrypts every artifact that holds the document's content, each under its own
            context: the normalized images, ``text.txt``, ``text.hocr`` and
            ``searchable.pdf`` (stored as ``NAME.enc``); ``result.json`` then keeps only
            counts of the OCR text, not the text. ``"all+preview"`` encrypts the preview too.
        max_output_pixels: The most pixels a normalized image may have (100 Mpx by default,
            ``max_pixels``'s default). A ``box`` with more pixels is refused here, so with a
            box (fitted images are never larger than it) the bound holds for every page. With
            ``box=None``, a page that ``target_dpi`` would make larger is refused
            (``input.output_too_large``) when its size is planned, before it is resized.
    """

    threshold: float = DEFAULT_THRESHOLD
    on_quality_fail: QualityPolicy = "continue"
    box: tuple[int, int] | None = (2480, 3508)
    upscale: bool = False
    target_dpi: float | None = None
    assumed_page: PageSize | None = "a4"
    max_bytes: int | None = None
    jpeg_quality: int = 90
    min_jpeg_quality: int = 30
    preview_size: int = 1024
    ocr: bool = True
    engine: EngineName = DEFAULT_ENGINE
    det_model: str | None = None
    rec_model: str | None = None
    det_model_dir: str | None = None
    rec_model_dir: str | None = None
    threads: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
    max_pages: int = DEFAULT_MAX_PAGES
    max_total_pixels: int = DEFAULT_MAX_TOTAL_PIXELS
    pdf_dpi: float = DEFAULT_PDF_DPI
    rotate: bool = True
    deskew: bool = True
    outputs: tuple[OutputFormat, ...] = ("txt",)
    runtime: Runtime = "auto"
    encrypt: EncryptPolicy = "master"
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS

    def __post_init__(self) -> None:
        check_field_types(self, skip=_LIMITS)  # a value of the wrong type: OptionsError
        if not 0.0 <= self.threshold <= 1.0:
            raise OptionsError(f"threshold must be within [0, 1], got {self.threshold}")
        if self.on_quality_fail not in ("continue", "skip_ocr"):
            raise OptionsError(
                f"on_quality_fail must be 'continue' or 'skip_ocr', got {self.on_quality_fail!r}"
            )
        if self.box is not None:
            if len(self.box) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 16 for v in self.box
            ):
                raise OptionsError(f"box must be (width, height) integers >= 16, got {self.box}")
            object.__setattr__(self, "box", tuple(self.box))
        if self.target_dpi is not None and not 10 <= self.target_dpi <= 2400:
            raise OptionsError(f"target_dpi must be within 10-2400, got {self.target_dpi}")
        if self.assumed_page is not None and self.assumed_page not in PAGE_SIZES:
            raise OptionsError(
                f"assumed_page must be one of {sorted(PAGE_SIZES)} or None, "
                f"got {self.assumed_page!r}"
            )
        if self.max_bytes is not None and self.max_bytes < 1024:
            raise OptionsError(f"max_bytes must be >= 1024, got {self.max_bytes}")
        if not 1 <= self.min_jpeg_quality <= self.jpeg_quality <= 100:
            raise OptionsError(
                "need 1 <= min_jpeg_quality <= jpeg_quality <= 100, got "
                f"{self.min_jpeg_quality}, {self.jpeg_quality}"
            )
        if self.preview_size < 16:
            raise OptionsError(f"preview_size must be >= 16, got {self.preview_size}")
        self.engine_config()  # EngineConfig checks the engine's settings
        if isinstance(self.outputs, str) or not isinstance(self.outputs, (tuple, list)):
            raise OptionsError(f"outputs must be a list of {OUTPUT_FORMATS}, got {self.outputs!r}")
        unknown = [o for o in self.outputs if o not in OUTPUT_FORMATS]
        if unknown:
            raise OptionsError(f"unknown output(s) {unknown}; choose from {OUTPUT_FORMATS}")
        # One order, no repeats: the artifacts are written in this order.
        object.__setattr__(self, "outputs", tuple(o for o in OUTPUT_FORMATS if o in self.outputs))
        encrypted_kinds(self.encrypt)  # one of ENCRYPT_POLICIES, else OptionsError
        for name in ("rotate", "deskew"):
            if not isinstance(getattr(self, name), bool):
                raise OptionsError(f"{name} must be true or false, got {getattr(self, name)!r}")
        limits = check_limits(
            max_pixels=self.max_pixels,
            max_input_bytes=self.max_input_bytes,
            max_pages=self.max_pages,
            max_total_pixels=self.max_total_pixels,
            pdf_dpi=self.pdf_dpi,
            integral_floats=True,  # JSON Schema counts 1e8 as an integer
            max_page_number=MAX_PAGE_NUMBER,
        )
        for name in _INPUT_LIMITS:
            object.__setattr__(self, name, getattr(limits, name))
        self._check_output_pixels()

    def _check_output_pixels(self) -> None:
        """``max_output_pixels`` is a positive integer, and the box fits in it."""
        limit: object = self.max_output_pixels
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # JSON Schema counts 1e8 as an integer
        object.__setattr__(self, "max_output_pixels", positive_int(limit, "max_output_pixels"))
        if self.box is not None and self.box[0] * self.box[1] > self.max_output_pixels:
            w, h = self.box
            raise OptionsError(
                f"box {w}x{h} is {w * h} pixels, over max_output_pixels={self.max_output_pixels}; "
                "give a smaller box or raise max_output_pixels"
            )

    def engine_config(self) -> EngineConfig:
        """The :class:`EngineConfig` these options ask for (checked by it)."""
        return EngineConfig.from_options(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = asdict(self)
        d["box"] = list(self.box) if self.box else None
        d["outputs"] = list(self.outputs)
        return d

    def fingerprint(self) -> str:
        """SHA-256 (hex) of :meth:`to_dict` as canonical JSON (sorted keys, no spaces).

        Stored as ``options_sha256`` in each ``result.json``, so a resumed job can tell
        whether a stored document was made with the options it runs with now.
        """
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessOptions:
        """Build options from a dict, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionsError(f"unknown option(s): {', '.join(unknown)}")
        kwargs = dict(data)
        if isinstance(kwargs.get("box"), list):
            kwargs["box"] = tuple(kwargs["box"])
        if isinstance(kwargs.get("outputs"), list):
            kwargs["outputs"] = tuple(kwargs["outputs"])
        return cls(**kwargs)
