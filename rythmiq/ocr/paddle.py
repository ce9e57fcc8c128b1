"""The PaddleOCR engine, :class:`PaddleEngine` (PP-OCRv5 mobile by default; the
``rythmiq[paddle]`` extra), and the child side of a PaddleOCR model download.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rythmiq._errors import ModelError, OptionsError, RythmiqError
from rythmiq._liblog import adopt_library_loggers
from rythmiq._public import public
from rythmiq._registry import missing_dependency
from rythmiq.ocr._library import LibraryEngine, bgr
from rythmiq.ocr._paddle_onnx import is_onnx_model_dir
from rythmiq.ocr.config import MODEL_DIR_ENV, EngineConfig
from rythmiq.ocr.models import materialize, resolve_model

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["PaddleEngine"]

_yaml_lock = threading.Lock()


@contextlib.contextmanager
def _libyaml_loader() -> Iterator[None]:
    """Let PaddleX parse model configs with libyaml while a pipeline is built.

    PaddleX reads each model's ``inference.yml`` with PyYAML's pure-Python ``FullLoader``; the
    recognizer's file holds a character list of many thousand entries, and parsing it is a
    large part of the engine's start-up (see ``docs/benchmarks.md``). ``CFullLoader`` is the
    same loader (same constructor and resolver) on libyaml's C parser. The swap is scoped to
    engine creation and serialised.
    """
    import yaml

    c_loader = getattr(yaml, "CFullLoader", None)
    if c_loader is None:  # PyYAML built without libyaml
        yield
        return
    with _yaml_lock:
        original = yaml.FullLoader
        yaml.FullLoader = c_loader
        try:
            yield
        finally:
            yaml.FullLoader = original


@public
@dataclass
class PaddleEngine(LibraryEngine):
    """PaddleOCR (PP-OCRv5 by default) behind the :class:`OcrEngine` interface; installed
    with ``pip install "rythmiq[paddle]"``.

    Loading takes a few seconds, so create one engine and reuse it; it is thread-safe (calls
    are serialised) and must be closed, or used as a context manager::

        with PaddleEngine(EngineConfig(engine="paddle", threads=1)) as engine:
            result = engine.recognize(rgb_array)

    Raises:
        ModelError: ``model.missing_dependency`` when paddleocr/paddlepaddle are missing
            (the message gives the install line),
            ``model.not_found`` for an explicit directory without a model, and
            ``model.load_failed`` when PaddleOCR cannot build the pipeline (for example a hub
            download with no network).
    """

    config: EngineConfig = field(default_factory=lambda: PaddleEngine._default_config())

    _library: ClassVar[str] = "PaddleOCR"
    _onnx: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        config = self._resolve_config()
        assert config.det_model is not None and config.rec_model is not None
        engine = self._spec.name
        self.det, self.rec = (
            materialize(resolve_model(name, folder, engine=engine))
            for name, folder in (
                (config.det_model, config.det_model_dir),
                (config.rec_model, config.rec_model_dir),
            )
        )
        det_onnx, rec_onnx = (
            m.path is not None and is_onnx_model_dir(Path(m.path)) for m in (self.det, self.rec)
        )
        if det_onnx != rec_onnx:
            raise OptionsError(
                f"{self.det.name} and {self.rec.name} need different PaddleOCR engines (one is "
                "an ONNX model, the other a Paddle one); use PP-OCRv6_small_det with "
                "PP-OCRv6_small_rec"
            )
        self._onnx = det_onnx
        if self.det.path is not None and self.rec.path is not None:
            # Read by paddlex at import: stops it probing model hubs that may be unreachable.
            os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        # Before the import: PaddleX adds its colour handler only to a logger without one.
        adopt_library_loggers()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import paddle  # noqa: F401
                from paddleocr import PaddleOCR
        except ImportError as exc:
            raise missing_dependency(self._spec, exc) from exc
        try:
            with warnings.catch_warnings(), _libyaml_loader():
                warnings.simplefilter("ignore")
                self._ocr = PaddleOCR(**self._paddle_kwargs())
        except Exception as exc:
            raise self._load_failed(exc) from exc

    def _unknown_model(self, exc: BaseException) -> str | None:
        """The model name PaddleX does not know, when its registry refused one (its
        ``UnknownModelError``, somewhere in ``exc``'s chain): no download could help."""
        seen: BaseException | None = exc
        while seen is not None:
            if type(seen).__name__ == "UnknownModelError" or "No engine bindings" in str(seen):
                text = str(seen)
                for model in (self.det, self.rec):
                    if repr(model.name) in text or f'"{model.name}"' in text:
                        return model.name
                return next((m.name for m in (self.det, self.rec) if m.source == "download"), None)
            seen = seen.__cause__ or seen.__context__
        return None

    def _load_failed(self, exc: Exception) -> ModelError:
        unknown = self._unknown_model(exc)
        if unknown is not None:
            return ModelError(
                f"unknown model {unknown!r}: PaddleOCR has no model of that name, so there is "
                "nothing to download; its text models are named like PP-OCRv5_mobile_det, "
                "PP-OCRv5_server_det, PP-OCRv5_mobile_rec; or pass the "
                "directory of your own model",
                code="model.not_found",
            )
        hint = ""
        if "download" in (self.det.source, self.rec.source):
            hint = (
                f" No local copy was found, so PaddleOCR tried to download it; offline, "
                f"put the model under ${MODEL_DIR_ENV}/<name>/ or pass a model directory."
            )
        return ModelError(
            f"could not load OCR models {self.det.name} + {self.rec.name}: "
            f"{type(exc).__name__}: {str(exc).rstrip('.')}.{hint}",
            code="model.load_failed",
        )

    def _paddle_kwargs(self) -> dict[str, Any]:
        runtime: dict[str, Any]
        if self._onnx:
            # PaddleX's onnxruntime engine; cpu_threads and enable_mkldnn do not apply to it.
            runtime = {
                "engine": "onnxruntime",
                "engine_config": {
                    "intra_op_num_threads": self.config.threads,
                    "inter_op_num_threads": 1,
                },
            }
        else:
            runtime = {
                "cpu_threads": self.config.threads,
                "enable_mkldnn": self.config.enable_mkldnn,
            }
        return {
            "text_detection_model_name": self.det.name,
            "text_detection_model_dir": self.det.path,
            "text_recognition_model_name": self.rec.name,
            "text_recognition_model_dir": self.rec.path,
            # Their models are not bundled; enabling them would trigger downloads.
            "use_doc_orientation_classify": False,
            "use_doc_unwarping": False,
            "use_textline_orientation": False,
            # PaddleOCR's own default ("min" 64, capped at 4000) detects at full resolution.
            "text_det_limit_side_len": self.config.det_limit_side_len,
            "text_det_limit_type": "max",
            "text_recognition_batch_size": self.config.rec_batch_size,
            "device": "cpu",
            **runtime,
        }

    def _library_input(self, image: NDArray[np.uint8]) -> Any:
        return bgr(image)

    def _read(self, image: Any) -> list[tuple[Any, Any, Any]]:
        return [
            item
            for page in self._ocr.predict(image)
            for item in zip(page["rec_texts"], page["rec_scores"], page["rec_polys"], strict=True)
        ]


def _download_child(argv: list[str]) -> int:
    """Child side of :func:`rythmiq.ocr._download.hub_download`: load the engine (which
    downloads what it lacks), report an error as JSON, exit."""
    report, det, det_dir, rec, rec_dir = argv
    config = replace(
        PaddleEngine._default_config(),
        det_model=det,
        rec_model=rec,
        det_model_dir=det_dir or None,
        rec_model_dir=rec_dir or None,
        threads=1,
    )
    try:
        PaddleEngine(config).close()
    except RythmiqError as exc:
        Path(report).write_text(json.dumps({"error": exc.to_dict()}))
        return int(exc.exit_code)
    return 0
