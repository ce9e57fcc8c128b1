"""The per-document pipeline: load, score, normalize, OCR. ``rythmiq.process`` lives here."""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import OptionsError
from rythmiq._registry import DEFAULT_ENGINE
from rythmiq.io import (
    DEFAULT_MAX_INPUT_BYTES,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TOTAL_PIXELS,
    DEFAULT_PDF_DPI,
    MAX_PDF_DPI,
    MIN_PDF_DPI,
    LoadedDocument,
    LoadedPage,
    Source,
    load_document,
)
from rythmiq.layout import MAX_PAGE_NUMBER, OUTPUT_FORMATS, Ids, master_extension
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
    EngineConfig,
    OcrEngine,
    OcrResult,
    default_engine,
    resolve_threads,
)
from rythmiq.quality import DEFAULT_THRESHOLD, score_quality
from rythmiq.results import (
    STAGES,
    NormalizedImage,
    PageResult,
    Preview,
    ProcessResult,
    StageTiming,
    Timings,
)

if TYPE_CHECKING:
    from rythmiq.keyring import Keyring
    from rythmiq.orientation import Orientation
    from rythmiq.storage import Artifact, Store

__all__ = [
    "OUTPUT_FORMATS",
    "NormalizedImage",
    "PageResult",
    "Preview",
    "ProcessOptions",
    "ProcessResult",
    "StageTiming",
    "Timings",
    "process",
]

QualityPolicy = Literal["continue", "skip_ocr"]
# Skew below this many degrees is measured and recorded but not corrected: PP-OCRv5 reads
# lines that little off level just as well, and resampling blurs small print (levelling a
# measured 0.3 degrees cost two dev receipts 0.04 word-F1; benchmarks/bench_orientation.py).
DESKEW_THRESHOLD = 1.0


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
    engine: str = DEFAULT_ENGINE
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
    outputs: tuple[str, ...] = ("txt",)
    runtime: str = "auto"

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
        self.engine_config()  # validates engine and runtime
        if isinstance(self.outputs, str) or not isinstance(self.outputs, (tuple, list)):
            raise OptionsError(f"outputs must be a list of {OUTPUT_FORMATS}, got {self.outputs!r}")
        unknown = [o for o in self.outputs if o not in OUTPUT_FORMATS]
        if unknown:
            raise OptionsError(f"unknown output(s) {unknown}; choose from {OUTPUT_FORMATS}")
        # One order, no repeats: the artifacts are written in this order.
        object.__setattr__(self, "outputs", tuple(o for o in OUTPUT_FORMATS if o in self.outputs))
        for name in ("rotate", "deskew"):
            if not isinstance(getattr(self, name), bool):
                raise OptionsError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if (
            isinstance(self.pdf_dpi, bool)
            or not isinstance(self.pdf_dpi, (int, float))
            or not MIN_PDF_DPI <= self.pdf_dpi <= MAX_PDF_DPI
        ):
            raise OptionsError(
                f"pdf_dpi must be within {MIN_PDF_DPI:g}-{MAX_PDF_DPI:g}, got {self.pdf_dpi!r}"
            )
        for name in ("max_pixels", "max_input_bytes", "max_pages", "max_total_pixels"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON Schema counts 1e8 as an integer
                object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_pages > MAX_PAGE_NUMBER:
            raise OptionsError(f"max_pages must be at most {MAX_PAGE_NUMBER}, got {self.max_pages}")

    def engine_config(self) -> EngineConfig:
        """The :class:`EngineConfig` these options ask for."""
        return EngineConfig(
            engine=self.engine,
            det_model=self.det_model,
            rec_model=self.rec_model,
            det_model_dir=self.det_model_dir,
            rec_model_dir=self.rec_model_dir,
            threads=self.threads,
            runtime=self.runtime,
        )

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

    def add(self, timings: Timings) -> None:
        """Add a page's stages (all but ``total``) to this clock's."""
        for name in STAGES[:-1]:
            t, mine = getattr(timings, name), self.stages.get(name, StageTiming(0.0, 0.0))
            self.stages[name] = StageTiming(mine.wall_s + t.wall_s, mine.cpu_s + t.cpu_s)

    def timings(self) -> Timings:
        zero = StageTiming(0.0, 0.0)
        return Timings(**{n: self.stages.get(n, zero) for n in STAGES})


def _normalize(
    pixels: NDArray[np.uint8],
    dpi: DpiInfo,
    orientation: int,
    options: ProcessOptions,
    turned: tuple[str, ...] = (),
) -> tuple[NDArray[np.uint8], NormalizedImage, Preview]:
    corrections: list[str] = []
    if orientation != 1:
        corrections.append("exif_orientation")
    corrections.extend(turned)
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
    """Check, turn upright, normalize and OCR one document: an image, a PDF or a TIFF.

    Every page is handled in turn (see :class:`PageResult`); a single image is a one-page
    document.

    Args:
        source: A file path, the encoded bytes of an image or PDF, or a ``uint8`` numpy
            array in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` **RGB**
            (not OpenCV's BGR).
        options: A :class:`ProcessOptions`; the defaults when ``None``.
        engine: The OCR engine to use. When ``None`` the shared default engine for
            ``options.engine_config()`` is used (loaded once per process and configuration;
            see :func:`rythmiq.ocr.clear_engine_cache`).
        store: Where to write the artifacts (see :mod:`rythmiq.layout`): the encrypted
            master, each page's normalized image and preview, the ``options.outputs`` (OCR
            text, hOCR, searchable PDF), and ``result.json`` last. Nothing is written without
            a store, and nothing at all when any page fails.
        ids: The :class:`~rythmiq.layout.Ids` that place the artifacts; required with a store.
        keyring: Keyring for the master; with a store and no keyring,
            :func:`rythmiq.keyring.load_keyring` finds one (it never creates keys).
        on_written: Called after each artifact is written.

    Returns:
        A :class:`ProcessResult`. OCR runs on each page's normalized, upright pixels, before
        JPEG encoding, so the boxes are in pixel coordinates of that page's ``image`` and
        nothing is decoded twice.

    Raises:
        InputError: The source cannot be read as an image or PDF, is password-protected, or
            is over a limit (bytes, pixels, pages, total pixels).
        OptionsError: An option is invalid.
        ModelError: The OCR models cannot be loaded.
        OcrError: The OCR engine failed on this image.
        StorageError: A URL source or an artifact could not be read or written.
        CryptoError: No keyring was found, or the master could not be encrypted.

    ``source`` may also be a URL (``s3://bucket/input/scan.jpg``, ``memory://...``) read
    through fsspec with the same environment settings as stores.
    """
    opts = _checked_options(options)
    if store is not None:
        keyring = _store_keyring(ids, keyring)
    result, document = _read(source, opts, engine)
    if store is None:
        return result
    assert ids is not None and keyring is not None  # checked above
    return _stored(result, document, source, store, ids, keyring, opts, on_written)


def _checked_options(options: ProcessOptions | None) -> ProcessOptions:
    opts = options if options is not None else ProcessOptions()
    if not isinstance(opts, ProcessOptions):
        raise OptionsError(f"options must be a ProcessOptions, got {type(opts).__name__}")
    return opts


def _store_keyring(ids: Ids | None, keyring: Keyring | None) -> Keyring:
    """Check a store's ids before any work; the keyring to use (found, never created)."""
    if not isinstance(ids, Ids):
        raise OptionsError("ids=Ids(user_id, job_id, document_id) is required with a store")
    if keyring is None:
        from rythmiq.keyring import load_keyring

        keyring = load_keyring().keyring
    return keyring


def _open(source: Source, opts: ProcessOptions) -> LoadedDocument:
    """Step "open": fetch a URL source, then sniff and check the document, decoding nothing."""
    if isinstance(source, str) and "://" in source and not source.startswith("file://"):
        from rythmiq.storage import read_url

        source = read_url(source, max_bytes=opts.max_input_bytes)
    return load_document(
        source,
        max_pixels=opts.max_pixels,
        max_input_bytes=opts.max_input_bytes,
        max_pages=opts.max_pages,
        max_total_pixels=opts.max_total_pixels,
        pdf_dpi=opts.pdf_dpi,
    )


def _read(
    source: Source, opts: ProcessOptions, engine: OcrEngine | None
) -> tuple[ProcessResult, LoadedDocument]:
    """Open the document, then score, turn, normalize and read each page in turn."""
    clock = _Clock()
    pages: list[PageResult] = []
    engines: list[OcrEngine] = [engine] if engine is not None else []

    def get_engine() -> OcrEngine:
        if not engines:
            engines.append(default_engine(opts.engine_config()))
        return engines[0]

    with clock.stage("total"):
        with clock.stage("open"):
            document = _open(source, opts)
        decoded = document.pages()
        for _ in range(document.page_count):
            page_clock = _Clock()
            with page_clock.stage("total"):
                with page_clock.stage("load"):
                    page = next(decoded)
                done = _process_page(page, opts, page_clock, get_engine)
            pages.append(replace(done, timings=page_clock.timings()))
            clock.add(pages[-1].timings)
    # Opening the document counts as loading it.
    opened = clock.stages.pop("open")
    load = clock.stages["load"]
    clock.stages["load"] = StageTiming(load.wall_s + opened.wall_s, load.cpu_s + opened.cpu_s)
    result = ProcessResult(
        pages=tuple(pages),
        timings=clock.timings(),
        source_sha256=document.sha256,
        source_format=document.format,
    )
    return result, document


def _stored(
    result: ProcessResult,
    document: LoadedDocument,
    source: Source,
    store: Store,
    ids: Ids,
    keyring: Keyring,
    opts: ProcessOptions,
    on_written: Callable[[Artifact], None] | None,
) -> ProcessResult:
    """Step "store": the master (the file as given, or an array's lossless PNG) and the
    artifacts, through the one store stage; the result gains its ids and artifacts."""
    from rythmiq.persist import store_artifacts

    if document.encoded:
        master, ext = document.encoded, master_extension(document.format)
    else:  # an array: the master is its lossless PNG
        assert isinstance(source, np.ndarray)
        master, ext = _png(np.asarray(_first_pixels(source))), "png"
    result = replace(result, ids=ids)
    artifacts = store_artifacts(
        result,
        store,
        ids,
        master=master,
        master_ext=ext,
        keyring=keyring,
        on_written=on_written,
        outputs=opts.outputs,
        options_sha256=opts.fingerprint(),
    )
    return replace(result, artifacts=artifacts)


def _first_pixels(source: NDArray[Any]) -> NDArray[np.uint8]:
    from rythmiq.io import array_pixels as _from_array

    return _from_array(source)


def _process_page(
    page: LoadedPage,
    opts: ProcessOptions,
    clock: _Clock,
    get_engine: Callable[[], OcrEngine],
) -> PageResult:
    """Score, turn upright, normalize and OCR one page, timing each stage on ``clock``."""
    pixels = page.pixels
    with clock.stage("quality"):
        report = score_quality(pixels, threshold=opts.threshold)
    skipped: str | None = None
    if not opts.ocr:
        skipped = "disabled"
    elif not report.passed and opts.on_quality_fail == "skip_ocr":
        skipped = "quality"
    orientation: Orientation | None = None
    turned: tuple[str, ...] = ()
    engine: OcrEngine | None = None
    if skipped is None:
        with clock.stage("engine"):  # loading the models is not orientation or OCR time
            engine = get_engine()
    if engine is not None and opts.rotate:
        from rythmiq.orientation import apply_orientation as turn_upright
        from rythmiq.orientation import detect_orientation

        with clock.stage("orient"):
            orientation = detect_orientation(pixels, engine, detect_skew=opts.deskew)
            pixels = turn_upright(pixels, orientation, deskew_threshold=DESKEW_THRESHOLD)
        if orientation.rotation:
            turned += (f"rotated_{orientation.rotation}",)
        if abs(orientation.skew) >= DESKEW_THRESHOLD:
            turned += ("deskewed",)
    with clock.stage("normalize"):
        h, w = pixels.shape[:2]
        dpi = resolve_dpi(page.declared_dpi, w, h, page=opts.assumed_page)
        normalized, image, preview = _normalize(pixels, dpi, page.orientation, opts, turned)
    ocr: OcrResult | None = None
    if engine is not None:
        with clock.stage("ocr"):
            ocr = engine.recognize(normalized)
    return PageResult(
        index=page.index,
        quality=report,
        image=image,
        preview=preview,
        ocr=ocr,
        timings=clock.timings(),  # the caller replaces it once the page's total is known
        ocr_skipped_reason=skipped,
        orientation=orientation,
        render_dpi=page.render_dpi,
    )


def _png(pixels: NDArray[np.uint8]) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()
