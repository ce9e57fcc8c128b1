"""The per-document pipeline, :func:`process`: open, then per page score, turn upright, normalize
and recognize; with a store, hand the result to :mod:`rythmiq.persist`."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import OptionsError
from rythmiq._public import public
from rythmiq.io import LoadedDocument, LoadedPage, Source, load_document
from rythmiq.keyring import Keyring, load_keyring
from rythmiq.layout import Ids, master_extension
from rythmiq.normalize import (
    DpiInfo,
    compress_to_budget,
    encode_jpeg,
    make_preview,
    plan_size,
    resize_exact,
    resolve_dpi,
)
from rythmiq.ocr import (
    OcrEngine,
    OcrResult,
    checked_engine,
    default_engine,
)
from rythmiq.options import ProcessOptions
from rythmiq.orientation import Orientation, detect_orientation
from rythmiq.orientation import apply_orientation as turn_upright
from rythmiq.persist import store_artifacts
from rythmiq.quality import score_quality
from rythmiq.results import (
    STAGES,
    NormalizedImage,
    PageResult,
    Preview,
    ProcessResult,
    StageTiming,
    Timings,
)
from rythmiq.storage import Artifact, Store, read_url

__all__ = ["process"]

log = logging.getLogger("rythmiq.pipeline")

# Skew below this many degrees is measured and recorded but not corrected: the engines read
# lines that little off level just as well, and resampling blurs small print (the figures are
# in docs/benchmarks.md, "Orientation").
DESKEW_THRESHOLD = 1.0


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
    # The size is planned (and checked against max_output_pixels) first; one resize then
    # goes straight to it, so no larger image is made on the way.
    plan = plan_size(
        w0,
        h0,
        dpi=dpi.dpi,
        target_dpi=options.target_dpi,
        box=options.box,
        upscale=options.upscale,
        max_pixels=options.max_output_pixels,
    )
    corrections.extend(
        name
        for name, done in (("dpi_resampled", plan.resampled), ("resized", plan.resized))
        if done
    )
    out, out_dpi = resize_exact(pixels, plan.size), plan.dpi
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


@public
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
            see :func:`rythmiq.ocr.clear_engine_cache`). Whatever the engine returns is
            checked by :func:`rythmiq.ocr.checked_result` before it is used: unusable
            output is an ``ocr.bad_output`` error, text is cleaned of lone surrogates and
            NUL, and a line whose box is not finite is dropped.
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
        OptionsError: An option is invalid, or ``engine`` is not an :class:`OcrEngine`.
        ModelError: The OCR models cannot be loaded.
        OcrError: The OCR engine failed on this image, or returned something that is not a
            usable :class:`OcrResult` (``ocr.bad_output``).
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
        keyring = load_keyring().keyring
    return keyring


def _open(source: Source, opts: ProcessOptions) -> LoadedDocument:
    """Step "open": fetch a URL source, then sniff and check the document, decoding nothing."""
    if isinstance(source, str) and "://" in source and not source.startswith("file://"):
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
    """Open the document, then score, turn, normalize and read each page in turn.

    Every engine, given or the default, is read through :func:`~rythmiq.ocr.checked_engine`:
    what it returns is checked once, here, before anything else sees it."""
    clock = _Clock()
    pages: list[PageResult] = []
    engines: list[OcrEngine] = [checked_engine(engine)] if engine is not None else []

    def get_engine() -> OcrEngine:
        if not engines:
            engines.append(checked_engine(default_engine(opts.engine_config())))
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
    if document.encoded:
        master, ext = document.encoded, master_extension(document.format)
    else:  # an array: the master is the lossless PNG of its one page, flattened once
        assert isinstance(source, np.ndarray)
        master, ext = _png(next(document.pages()).pixels), "png"
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
        encrypt=opts.encrypt,
    )
    return replace(result, artifacts=artifacts)


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
        log.debug("page %d: %g dpi, %s%s", page.index, dpi.dpi, dpi.source, _why(dpi.note))
        if page.render_dpi is not None:
            why = page.render_reason
            log.debug("page %d: rendered at %g dpi (%s)", page.index, page.render_dpi, why)
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


def _why(note: str) -> str:
    return f" ({note})" if note else ""
