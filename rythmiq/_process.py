"""The per-document pipeline: load, score, normalize, OCR. ``rythmiq.process`` lives here."""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import OptionsError
from rythmiq._loading import DEFAULT_MAX_INPUT_BYTES, DEFAULT_MAX_PIXELS, Source, load_image
from rythmiq.layout import Ids, master_extension
from rythmiq.normalize import (
    PAGE_SIZES,
    DpiInfo,
    compress_to_budget,
    encode_jpeg,
    fit_size,
    make_preview,
    resample_to_dpi,
    resize_exact,
    resolve_dpi,
)
from rythmiq.ocr import (
    DEFAULT_DET_MODEL,
    DEFAULT_REC_MODEL,
    EngineConfig,
    OcrEngine,
    OcrResult,
    default_engine,
    resolve_threads,
)
from rythmiq.quality import DEFAULT_THRESHOLD, QualityReport, score_quality

if TYPE_CHECKING:
    from rythmiq.keyring import Keyring
    from rythmiq.storage import Artifact, Store

__all__ = [
    "NormalizedImage",
    "Preview",
    "ProcessOptions",
    "ProcessResult",
    "StageTiming",
    "Timings",
    "process",
]

QualityPolicy = Literal["continue", "skip_ocr"]
STAGES = ("load", "quality", "normalize", "ocr", "total")


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
        det_model: Detection model name.
        rec_model: Recognition model name.
        det_model_dir: Explicit detection model directory.
        rec_model_dir: Explicit recognition model directory.
        threads: OCR threads; ``None`` means ``$RYTHMIQ_THREADS`` or the usable cores.
        max_pixels: Refuse larger inputs before decoding them.
        max_input_bytes: Refuse encoded inputs over this many bytes before reading more of
            them (200 MiB by default; not applied to arrays).
    """

    threshold: float = DEFAULT_THRESHOLD
    on_quality_fail: QualityPolicy = "continue"
    box: tuple[int, int] | None = (2480, 3508)
    upscale: bool = False
    target_dpi: float | None = None
    assumed_page: str | None = "a4"
    max_bytes: int | None = None
    jpeg_quality: int = 90
    min_jpeg_quality: int = 30
    preview_size: int = 1024
    ocr: bool = True
    det_model: str = DEFAULT_DET_MODEL
    rec_model: str = DEFAULT_REC_MODEL
    det_model_dir: str | None = None
    rec_model_dir: str | None = None
    threads: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES

    def __post_init__(self) -> None:
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
        if self.threads is not None:
            resolve_threads(self.threads)  # validates
        for name in ("max_pixels", "max_input_bytes"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON Schema counts 1e8 as an integer
                object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")

    def engine_config(self) -> EngineConfig:
        """The :class:`EngineConfig` these options ask for."""
        return EngineConfig(
            det_model=self.det_model,
            rec_model=self.rec_model,
            det_model_dir=self.det_model_dir,
            rec_model_dir=self.rec_model_dir,
            threads=self.threads,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = asdict(self)
        d["box"] = list(self.box) if self.box else None
        return d

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
        return cls(**kwargs)


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
        from rythmiq._html import format_bytes

        return (
            f"NormalizedImage({self.width}x{self.height} @{self.dpi:g}dpi, "
            f"JPEG q{self.jpeg_quality}, {format_bytes(len(self.data))})"
        )


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
        from rythmiq._html import format_bytes

        return f"Preview({self.width}x{self.height}, {format_bytes(len(self.data))})"


@dataclass(frozen=True)
class StageTiming:
    """Wall-clock and CPU seconds (user + system, all threads) of one stage."""

    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class Timings:
    """Per-stage timings. A stage that did not run has zero time."""

    load: StageTiming
    quality: StageTiming
    normalize: StageTiming
    ocr: StageTiming
    total: StageTiming

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{stage: {"wall_s", "cpu_s"}}``, rounded to microseconds."""
        return {
            name: {"wall_s": round(t.wall_s, 6), "cpu_s": round(t.cpu_s, 6)}
            for name, t in ((n, getattr(self, n)) for n in STAGES)
        }


@dataclass(frozen=True)
class ProcessResult:
    """Everything :func:`process` learned about one document.

    Attributes:
        quality: The quality verdict on the upright input image.
        image: The normalized image.
        preview: The preview JPEG.
        ocr: OCR text and lines, with boxes in pixel coordinates of :attr:`image`; ``None``
            when OCR was off or skipped by the quality policy.
        timings: Wall and CPU seconds per stage.
        ocr_skipped_reason: Why ``ocr`` is ``None``: ``"disabled"`` or ``"quality"``.
        source_sha256: SHA-256 of the encoded input (of the pixels for an array input).
        ids: The ids the artifacts were stored under, when a store was given.
        artifacts: The stored artifacts (URL, size, SHA-256), ``result.json`` last; empty
            when no store was given.
        source_format: Pillow's name for the input's format (``"JPEG"``...), ``None`` for an
            array.
    """

    quality: QualityReport
    image: NormalizedImage
    preview: Preview
    ocr: OcrResult | None
    timings: Timings
    ocr_skipped_reason: str | None = None
    source_sha256: str = ""
    ids: Ids | None = None
    artifacts: tuple[Artifact, ...] = ()
    source_format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: plain types only, no bytes (sizes and hashes instead)."""
        return {
            "quality": self.quality.to_dict(),
            "image": self.image.to_dict(),
            "preview": self.preview.to_dict(),
            "ocr": self.ocr.to_dict() if self.ocr is not None else None,
            "ocr_skipped_reason": self.ocr_skipped_reason,
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
        from rythmiq._html import format_bytes

        q, img = self.quality, self.image
        if self.ocr is not None:
            n = len(self.ocr.lines)
            ocr = f"{n} line{'s' if n != 1 else ''}"
        else:
            ocr = f"skipped ({str(self.ocr_skipped_reason)[:20]})"
        return (
            f"ProcessResult(quality={q.score:.2f} {'PASS' if q.passed else 'FAIL'}, "
            f"image={img.width}x{img.height} @{img.dpi:g}dpi {format_bytes(len(img.data))}, "
            f"ocr={ocr}, {self.timings.total.wall_s:.2f} s)"
        )

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: thumbnail with OCR boxes, quality, image, text, timings."""
        from rythmiq._html import process_result_html

        return process_result_html(self)


class _Clock:
    """Collects wall and CPU (user + system, whole process) seconds per stage."""

    def __init__(self) -> None:
        self.stages: dict[str, StageTiming] = {}

    @staticmethod
    def _cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), self._cpu()
        try:
            yield
        finally:
            self.stages[name] = StageTiming(time.perf_counter() - w0, self._cpu() - c0)

    def timings(self) -> Timings:
        zero = StageTiming(0.0, 0.0)
        return Timings(**{n: self.stages.get(n, zero) for n in STAGES})


def _normalize(
    pixels: NDArray[np.uint8],
    dpi: DpiInfo,
    orientation: int,
    options: ProcessOptions,
) -> tuple[NDArray[np.uint8], NormalizedImage, Preview]:
    corrections: list[str] = []
    if orientation != 1:
        corrections.append("exif_orientation")
    if dpi.source != "metadata":
        corrections.append(f"dpi_{dpi.source}")
    h0, w0 = pixels.shape[:2]
    out, out_dpi = pixels, dpi.dpi
    if options.target_dpi is not None and abs(options.target_dpi - dpi.dpi) > 0.5:
        out, out_dpi = resample_to_dpi(out, dpi.dpi, options.target_dpi)
        corrections.append("dpi_resampled")
    if options.box is not None:
        size = fit_size(out.shape[1], out.shape[0], options.box, upscale=options.upscale)
        if size != (out.shape[1], out.shape[0]):
            out_dpi *= size[0] / out.shape[1]
            out = resize_exact(out, size)
            corrections.append("resized")
    if options.max_bytes is not None:
        packed = compress_to_budget(
            out,
            options.max_bytes,
            dpi=out_dpi,
            min_quality=options.min_jpeg_quality,
            max_quality=options.jpeg_quality,
        )
        data, quality, encodes, fits = packed.data, packed.quality, packed.encodes, packed.fits
        if packed.scale != 1.0:
            corrections.append("budget_downscaled")
            out_dpi *= packed.scale
            out = packed.image
    else:
        data = encode_jpeg(out, quality=options.jpeg_quality, dpi=out_dpi)
        quality, encodes, fits = options.jpeg_quality, 1, True
    preview_data, pw, ph = make_preview(out, long_side=options.preview_size, dpi=out_dpi)
    image = NormalizedImage(
        data=data,
        width=int(out.shape[1]),
        height=int(out.shape[0]),
        dpi=round(float(out_dpi), 2),
        dpi_source=dpi.source,
        declared_dpi=dpi.declared,
        orientation=orientation,
        original_size=(int(w0), int(h0)),
        jpeg_quality=quality,
        encodes=encodes,
        fits_budget=fits,
        corrections=tuple(corrections),
    )
    return out, image, Preview(preview_data, pw, ph)


def process(
    source: Source,
    *,
    options: ProcessOptions | None = None,
    engine: OcrEngine | None = None,
    store: Store | None = None,
    ids: Ids | None = None,
    keyring: Keyring | None = None,
    on_written: Callable[[Artifact], None] | None = None,
) -> ProcessResult:
    """Check, normalize and OCR one document image.

    Args:
        source: A file path, the encoded bytes of an image, or a ``uint8`` numpy array in the
            Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` **RGB** (not OpenCV's BGR).
        options: A :class:`ProcessOptions`; the defaults when ``None``.
        engine: The OCR engine to use. When ``None`` the shared default engine for
            ``options.engine_config()`` is used (loaded once per process and configuration;
            see :func:`rythmiq.ocr.clear_engine_cache`).
        store: Where to write the artifacts (see :mod:`rythmiq.layout`): the encrypted
            master, normalized image, preview, OCR text, and ``result.json`` last. Nothing is
            written without a store.
        ids: The :class:`~rythmiq.layout.Ids` that place the artifacts; required with a store.
        keyring: Keyring for the master; with a store and no keyring,
            :func:`rythmiq.keyring.load_keyring` finds one (it never creates keys).
        on_written: Called after each artifact is written.

    Returns:
        A :class:`ProcessResult`. OCR runs on the normalized pixels, before JPEG encoding, so
        the boxes are in pixel coordinates of ``result.image`` and nothing is decoded twice.

    Raises:
        InputError: The source cannot be read as an image, or is too large.
        OptionsError: An option is invalid.
        ModelError: The OCR models cannot be loaded.
        OcrError: The OCR engine failed on this image.
        StorageError: A URL source or an artifact could not be read or written.
        CryptoError: No keyring was found, or the master could not be encrypted.

    ``source`` may also be a URL (``s3://bucket/input/scan.jpg``, ``memory://...``) read
    through fsspec with the same environment settings as stores.
    """
    opts = options if options is not None else ProcessOptions()
    if not isinstance(opts, ProcessOptions):
        raise OptionsError(f"options must be a ProcessOptions, got {type(opts).__name__}")
    if store is not None:
        if not isinstance(ids, Ids):
            raise OptionsError("ids=Ids(user_id, job_id, document_id) is required with a store")
        if keyring is None:
            from rythmiq.keyring import load_keyring

            keyring = load_keyring().keyring
    clock = _Clock()
    with clock.stage("total"):
        with clock.stage("load"):
            if isinstance(source, str) and "://" in source and not source.startswith("file://"):
                from rythmiq.storage import read_url

                source = read_url(source, max_bytes=opts.max_input_bytes)
            loaded = load_image(
                source, max_pixels=opts.max_pixels, max_input_bytes=opts.max_input_bytes
            )
        pixels = loaded.pixels
        with clock.stage("quality"):
            report = score_quality(pixels, threshold=opts.threshold)
        with clock.stage("normalize"):
            h, w = pixels.shape[:2]
            dpi = resolve_dpi(loaded.declared_dpi, w, h, page=opts.assumed_page)
            normalized, image, preview = _normalize(pixels, dpi, loaded.orientation, opts)
        ocr: OcrResult | None = None
        skipped: str | None = None
        if not opts.ocr:
            skipped = "disabled"
        elif not report.passed and opts.on_quality_fail == "skip_ocr":
            skipped = "quality"
        else:
            with clock.stage("ocr"):
                eng = engine if engine is not None else default_engine(opts.engine_config())
                ocr = eng.recognize(normalized)
    result = ProcessResult(
        quality=report,
        image=image,
        preview=preview,
        ocr=ocr,
        timings=clock.timings(),
        ocr_skipped_reason=skipped,
        source_sha256=loaded.sha256,
        source_format=loaded.format,
    )
    if store is None:
        return result
    from rythmiq.storage import store_artifacts

    assert ids is not None and keyring is not None  # checked above
    if loaded.encoded:
        master, ext = loaded.encoded, master_extension(loaded.format)
    else:  # an array: the master is its lossless PNG
        master, ext = _png(loaded.pixels), "png"
    result = replace(result, ids=ids)
    artifacts = store_artifacts(
        result,
        store,
        ids,
        master=master,
        master_ext=ext,
        keyring=keyring,
        on_written=on_written,
    )
    return replace(result, artifacts=artifacts)


def _png(pixels: NDArray[np.uint8]) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()
