"""OCR: result types, the engine interface and registry, model resolution, the two engines.

The default engine is ``"onnx"``: PP-OCRv6 small through RapidOCR, on OpenVINO or ONNX
Runtime (:data:`RUNTIMES`). ``"paddle"`` is PP-OCRv5 mobile through PaddleOCR, installed with
the ``rythmiq[paddle]`` extra.

Images are numpy arrays in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB,
``uint8``. Only the engines convert to OpenCV's BGR, once, right before inference.

Boxes are 4-point polygons ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))`` in pixel coordinates
of the image that was passed to :meth:`OcrEngine.recognize`, clockwise from the top-left.

Every name below is importable from ``rythmiq.ocr``; each lives in the module that owns it:

- :mod:`rythmiq.ocr.base`: :class:`OcrLine`, :class:`OcrResult`, :func:`sort_reading_order`,
  the :class:`OcrEngine` protocol, and the check of what an engine returns:
  :func:`checked_result`, :func:`checked_engine` (:class:`CheckedEngine`) and
  :func:`clean_text`.
- :mod:`rythmiq.ocr.config`: :class:`EngineConfig`, :func:`resolve_threads` and the
  environment variables.
- :mod:`rythmiq.ocr.models`: :class:`ResolvedModel`, :func:`resolve_model` and
  :func:`prefetch_models`.
- :mod:`rythmiq.ocr.registry`: :func:`create_engine`, :func:`default_engine` and
  :func:`clear_engine_cache`; the table itself, :data:`ENGINES`, is ``rythmiq._registry``'s.
- :mod:`rythmiq.ocr.onnx`: :class:`OnnxEngine` and :func:`content_box`;
  :mod:`rythmiq.ocr.paddle`: :class:`PaddleEngine`.
"""

from __future__ import annotations

from rythmiq._registry import (
    DEFAULT_DET_MODEL,
    DEFAULT_ENGINE,
    DEFAULT_REC_MODEL,
    ENGINES,
    ONNX_CLS_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    RUNTIMES,
    EngineSpec,
    resolve_runtime,
)
from rythmiq._registry import RUNTIME_INSTALL as RUNTIME_INSTALL
from rythmiq.ocr.base import Box as Box
from rythmiq.ocr.base import (
    CheckedEngine,
    OcrEngine,
    OcrLine,
    OcrResult,
    checked_engine,
    checked_result,
    clean_text,
    sort_reading_order,
)
from rythmiq.ocr.base import Point as Point
from rythmiq.ocr.config import (
    BUNDLED_MODELS_ENV,
    MODEL_DIR_ENV,
    THREADS_ENV,
    EngineConfig,
    resolve_threads,
)
from rythmiq.ocr.models import ResolvedModel, prefetch_models, resolve_model
from rythmiq.ocr.onnx import REC_WIDTH_STEP as REC_WIDTH_STEP
from rythmiq.ocr.onnx import OnnxEngine, content_box
from rythmiq.ocr.paddle import PaddleEngine
from rythmiq.ocr.registry import clear_engine_cache, create_engine, default_engine

__all__ = [
    "BUNDLED_MODELS_ENV",
    "DEFAULT_DET_MODEL",
    "DEFAULT_ENGINE",
    "DEFAULT_REC_MODEL",
    "ENGINES",
    "MODEL_DIR_ENV",
    "ONNX_CLS_MODEL",
    "ONNX_DET_MODEL",
    "ONNX_REC_MODEL",
    "RUNTIMES",
    "THREADS_ENV",
    "CheckedEngine",
    "EngineConfig",
    "EngineSpec",
    "OcrEngine",
    "OcrLine",
    "OcrResult",
    "OnnxEngine",
    "PaddleEngine",
    "ResolvedModel",
    "checked_engine",
    "checked_result",
    "clean_text",
    "clear_engine_cache",
    "content_box",
    "create_engine",
    "default_engine",
    "prefetch_models",
    "resolve_model",
    "resolve_runtime",
    "resolve_threads",
    "sort_reading_order",
]
