"""The default engine, :class:`OnnxEngine`: PP-OCRv6 small through RapidOCR on OpenVINO or
ONNX Runtime, with what it does around the library: the content crop (:func:`content_box`)
and the recognition-width padding (:data:`REC_WIDTH_STEP`).
"""

from __future__ import annotations

import importlib
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import ModelError, OcrError
from rythmiq._liblog import adopt_library_loggers
from rythmiq._public import public
from rythmiq._registry import RUNTIME_INSTALL, missing_dependency
from rythmiq._util import check_image
from rythmiq.ocr._library import LibraryEngine, bgr
from rythmiq.ocr.config import EngineConfig
from rythmiq.ocr.models import resolve_model

__all__ = ["REC_WIDTH_STEP", "OnnxEngine", "content_box"]

#: Recognition inputs are padded to a multiple of this many pixels wide.
REC_WIDTH_STEP = 32

#: Long side of the thumbnail :func:`content_box` looks at.
_CONTENT_THUMB = 512
#: A thumbnail pixel is content when it differs from the page's background by this much.
_CONTENT_CONTRAST = 48
#: Margin kept around the content, as a fraction of the image's long side.
_CONTENT_MARGIN = 0.02
#: Crop only when the content box leaves out at least this fraction of the image.
_CONTENT_MIN_SAVING = 0.2

_rapidocr_lock = threading.Lock()


@public
@dataclass
class OnnxEngine(LibraryEngine):
    """The default engine: RapidOCR (PP-OCRv6 small by default) on OpenVINO or ONNX Runtime,
    behind :class:`OcrEngine`.

    The models are ``.onnx`` files found by :func:`resolve_model` with ``engine="onnx"``; by
    default the ones inside the rapidocr wheel, so nothing is ever downloaded. Create one
    engine and reuse it; it is thread-safe (calls are serialised) and must be closed, or used
    as a context manager::

        with OnnxEngine(EngineConfig(threads=1)) as engine:
            result = engine.recognize(rgb_array)

    ``config.runtime`` picks what runs the models (:data:`RUNTIMES`). OpenVINO runs with
    ``INFERENCE_NUM_THREADS = threads``, one stream, the latency hint and no CPU pinning (a
    pool's workers would otherwise all pin the same cores); ONNX Runtime runs with
    ``intra_op_num_threads = threads`` and one inter-op thread. Lines
    are read without RapidOCR's 180-degree line classifier: pages are turned upright before
    OCR (:mod:`rythmiq.orientation`), and on the dev receipts the classifier cost more time
    and read no better. Lines RapidOCR scores under 0.5 are dropped, as RapidOCR does by
    default. Detection sees the page at 960 px, short lines are padded to 64 px for
    recognition, and ONNX Runtime's CPU memory arena is on (see :class:`EngineConfig`; the
    measurements are in ``docs/benchmarks.md``).

    Raises:
        OptionsError: ``config.engine`` is not ``"onnx"``.
        ModelError: ``model.missing_dependency`` when rapidocr or the runtime is missing,
            ``model.not_found`` when a model file cannot be found, and ``model.load_failed``
            when the runtime cannot load one.
    """

    config: EngineConfig = field(default_factory=lambda: OnnxEngine._default_config())

    _library: ClassVar[str] = "RapidOCR"
    # Detect on the part of the image that holds anything (content_box) instead of all of it.
    _crop_to_content: ClassVar[bool] = True

    def __post_init__(self) -> None:
        asked = self.config.runtime
        config = self._resolve_config()
        assert config.det_model is not None and config.rec_model is not None
        adopt_library_loggers()  # before the import, which adds RapidOCR's handler
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise missing_dependency(self._spec, exc) from exc
        try:
            importlib.import_module(config.runtime)
        except ImportError as exc:
            raise ModelError(
                f"runtime={config.runtime!r} is not installed: {RUNTIME_INSTALL[config.runtime]}"
                + (" (or runtime='auto')" if asked != "auto" else ""),
                code="model.missing_dependency",
            ) from exc
        engine = self._spec.name
        self.det = resolve_model(config.det_model, config.det_model_dir, engine=engine)
        self.rec = resolve_model(config.rec_model, config.rec_model_dir, engine=engine)
        try:
            # RapidOCR sets its (process-wide) logger's level from the params; serialised so
            # two engines built at once do not interleave that.
            with _rapidocr_lock:
                ocr = RapidOCR(params=self._rapidocr_params())
                adopt_library_loggers()
                # RapidOCR loads models on first use; load them now so a bad file fails here.
                for loader in ("_load_det_model", "_load_rec_model"):
                    getattr(ocr, loader, lambda: None)()
                _quantize_rec_widths(getattr(ocr, "text_rec", None))
        except Exception as exc:
            raise ModelError(
                f"could not load ONNX models {self.det.path} + {self.rec.path}: "
                f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[-1]}",
                code="model.load_failed",
            ) from exc
        self._ocr = ocr

    def _rapidocr_params(self) -> dict[str, Any]:
        threads = self.config.threads
        assert threads is not None
        # RapidOCR ignores a thread count above os.cpu_count() (and then lets ONNX Runtime
        # use every core), so never ask for more.
        threads = min(threads, os.cpu_count() or threads)
        params: dict[str, Any] = {
            # INFO reaches rythmiq.lib.rapidocr (adopt_library_loggers), shown with --debug.
            "Global.log_level": "info",
            "Global.use_cls": False,
            # No whole-page shrink: detection is limited by Det.limit_side_len below, and
            # the lines are cropped from the full-resolution page for recognition.
            "Global.max_side_len": 1_000_000,
            "Det.model_path": self.det.path,
            "Det.limit_side_len": self.config.det_limit_side_len,
            "Det.limit_type": "max",
            "Rec.model_path": self.rec.path,
            "Rec.rec_batch_num": self.config.rec_batch_size,
            # Pad short lines to 64 px wide, not PaddleOCR's 320: a receipt is mostly short
            # lines (a price, a quantity), and recognition time grows with the padded width;
            # 320 -> 160 -> 64 held word-F1 on the dev pages in less time (bench_engine_settings.py
            # onnx-w320 onnx-w160 onnx-w96 onnx onnx-w48; the figures: docs/benchmarks.md).
            "Rec.rec_img_shape": [3, 48, 64],
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # RapidOCR turns ONNX Runtime's CPU memory arena off; with it on, every line's
            # tensors are not allocated afresh, which saves time most on a receipt of many
            # short lines. It keeps its high-water mark, so peak RSS grows, still well under
            # the Paddle engine's (bench_engine_settings.py onnx-noarena onnx; docs/benchmarks.md).
            "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
        }
        if self.config.runtime == "openvino":
            from rapidocr import EngineType

            params.update(
                {
                    "Det.engine_type": EngineType.OPENVINO,
                    "Rec.engine_type": EngineType.OPENVINO,
                    "EngineConfig.openvino.inference_num_threads": threads,
                    # One stream of one request: a page is one call at a time, and more
                    # streams would split (or multiply) the threads asked for.
                    "EngineConfig.openvino.num_streams": 1,
                    "EngineConfig.openvino.performance_hint": "LATENCY",
                    # Pinning puts every worker process of a pool on the same first cores.
                    "EngineConfig.openvino.enable_cpu_pinning": False,
                }
            )
        return params

    def read_lines(self, images: Sequence[NDArray[np.uint8]]) -> list[tuple[str, float]]:
        """Recognition only: read each image as one text line, without detection.

        For callers that already cut the lines out, such as :mod:`rythmiq.orientation`:
        it reads its few line crops this way instead of detecting them again. Returns
        ``(text, confidence)`` per image, in order; a line RapidOCR scores under its text
        threshold (0.5) comes back as ``("", 0.0)``, as :meth:`recognize` would drop it.
        """
        from rapidocr.ch_ppocr_rec import TextRecInput

        for image in images:
            check_image(image)
        prepared = [bgr(image) for image in images]  # the recognizer needs 3 channels
        self._check_open()
        if not prepared:
            return []
        try:
            with self._lock:
                if self._ocr is None:
                    raise OcrError("engine is closed", code="ocr.closed")
                out = self._ocr.text_rec(TextRecInput(img=prepared))
                threshold = float(self._ocr.text_score)
        except OcrError:
            raise
        except Exception as exc:
            raise OcrError(f"{self._library} failed: {type(exc).__name__}: {exc}") from exc
        return [
            (str(text), float(score)) if float(score) >= threshold else ("", 0.0)
            for text, score in zip(out.txts, out.scores, strict=True)
        ]

    def _crop(self, image: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
        return content_box(image) if self._crop_to_content else None

    def _library_input(self, image: NDArray[np.uint8]) -> Any:
        import cv2

        # RapidOCR takes a 3-channel array as BGR as it is and turns a 2-D one into BGR
        # itself: convert RGB once here, and pass grayscale through.
        if image.ndim == 2 or image.shape[2] == 1:
            return np.ascontiguousarray(image.reshape(image.shape[:2]))
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def _read(self, image: Any) -> list[tuple[Any, Any, Any]]:
        out = self._ocr(image)
        # An empty page comes back without txts (or as a detection-only output).
        txts = getattr(out, "txts", None)
        if txts is None or out.boxes is None:
            return []
        return list(zip(txts, out.scores, out.boxes, strict=True))


def content_box(image: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of ``image`` that holds anything but its background.

    The background is the median grey of a thumbnail; content is whatever differs from it by
    :data:`_CONTENT_CONTRAST` levels, dark ink on paper and light print on dark alike. The
    box gets a margin of 2% of the long side, and is the whole image unless it saves at
    least a fifth of the area, or when nothing stands out.

    Why: the detector sees the image scaled to ``det_limit_side_len``. One line of print on
    a large, otherwise empty page is then a few pixels tall and is not found; cropping the
    empty paper away first keeps it at a readable size, and costs one thumbnail.
    """
    import cv2

    h, w = image.shape[:2]
    whole = (0, 0, w, h)
    scale = min(1.0, _CONTENT_THUMB / max(h, w))
    if scale >= 1.0 or min(h, w) < 32:
        return whole  # small already: detection sees it at full size
    gray = image if image.ndim == 2 else image[..., 1]  # green: close to luma, no conversion
    thumb = cv2.resize(
        np.ascontiguousarray(gray.reshape(h, w)),
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    background = float(np.median(thumb))
    mask = np.abs(thumb.astype(np.int16) - background) > _CONTENT_CONTRAST
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return whole
    margin = _CONTENT_MARGIN * max(h, w)
    x0 = max(0, int(cols[0] / scale - margin))
    y0 = max(0, int(rows[0] / scale - margin))
    x1 = min(w, int((cols[-1] + 1) / scale + margin) + 1)
    y1 = min(h, int((rows[-1] + 1) / scale + margin) + 1)
    if (x1 - x0) * (y1 - y0) > (1 - _CONTENT_MIN_SAVING) * w * h:
        return whole
    return (x0, y0, x1, y1)


def _quantize_rec_widths(recognizer: Any) -> None:
    """Pad RapidOCR's recognition inputs to a multiple of :data:`REC_WIDTH_STEP` pixels.

    RapidOCR pads each batch to the width its widest line needs, so nearly every line is a
    new input shape. OpenVINO and ONNX Runtime keep per-shape kernels and buffers; with
    widths rounded up to 32 px most lines reuse one, at a few columns of padding, in less
    time at the same word-F1 on the dev pages (``benchmarks/bench_default_engine.py``
    variant ``v-width1``; see ``docs/benchmarks.md``). The pixels, the aspect-ratio resize
    and the normalisation to ``[-1, 1]`` are RapidOCR's own. Left alone if RapidOCR's
    recognizer does not look as expected (another version).
    """
    shape = getattr(recognizer, "rec_image_shape", None)
    if shape is None or not callable(getattr(recognizer, "resize_norm_img", None)):
        return

    def resize_norm_img(img: NDArray[np.uint8], max_wh_ratio: float) -> NDArray[np.float32]:
        import cv2

        channels, height = int(shape[0]), int(shape[1])
        h, w = img.shape[:2]
        batch_width = int(height * max_wh_ratio)
        resized_w = max(1, min(math.ceil(height * w / h), batch_width))
        width = -(-batch_width // REC_WIDTH_STEP) * REC_WIDTH_STEP
        out = np.zeros((channels, height, width), np.float32)
        resized = cv2.resize(img, (resized_w, height)).astype(np.float32)
        out[:, :, :resized_w] = resized.transpose(2, 0, 1) * np.float32(2 / 255) - 1
        return out

    recognizer.resize_norm_img = resize_norm_img
