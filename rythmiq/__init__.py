"""rythmiq: document image quality scoring, normalization and OCR.

    import rythmiq
    result = rythmiq.process("scan.jpg")
    print(result.quality.score, result.quality.passed, result.ocr.text)

Importing rythmiq is cheap: PaddleOCR, paddle, OpenCV and s3fs load only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rythmiq._errors import (
    BatchError,
    BundleError,
    CryptoError,
    ExitCode,
    InputError,
    ModelError,
    OcrError,
    OptionsError,
    PayloadError,
    RythmiqError,
    StorageError,
)
from rythmiq._version import __version__

if TYPE_CHECKING:
    from rythmiq._process import ProcessOptions, process
    from rythmiq.batch import BatchProgress, BatchResult, process_many
    from rythmiq.crypto import EncryptionContext
    from rythmiq.io import LoadedDocument, LoadedImage, LoadedPage, load_document, load_image
    from rythmiq.keyring import Keyring, load_keyring
    from rythmiq.layout import Ids
    from rythmiq.ocr import (
        EngineConfig,
        OcrEngine,
        OcrLine,
        OcrResult,
        OnnxEngine,
        PaddleEngine,
        clear_engine_cache,
        default_engine,
    )
    from rythmiq.quality import QualityReport, score_quality
    from rythmiq.results import (
        NormalizedImage,
        PageResult,
        Preview,
        ProcessResult,
        StageTiming,
        Timings,
    )
    from rythmiq.storage import Artifact, Store

# Public names that live in modules needing numpy: imported on first access, so that
# `import rythmiq` costs only a few milliseconds (measured in benchmarks/bench_core.py).
_LAZY = {
    "BatchProgress": "rythmiq.batch",
    "BatchResult": "rythmiq.batch",
    "process_many": "rythmiq.batch",
    "LoadedImage": "rythmiq.io",
    "load_image": "rythmiq.io",
    "LoadedDocument": "rythmiq.io",
    "LoadedPage": "rythmiq.io",
    "load_document": "rythmiq.io",
    "NormalizedImage": "rythmiq.results",
    "PageResult": "rythmiq.results",
    "Preview": "rythmiq.results",
    "ProcessOptions": "rythmiq._process",
    "ProcessResult": "rythmiq.results",
    "StageTiming": "rythmiq.results",
    "Timings": "rythmiq.results",
    "process": "rythmiq._process",
    "EngineConfig": "rythmiq.ocr",
    "OcrEngine": "rythmiq.ocr",
    "OcrLine": "rythmiq.ocr",
    "OcrResult": "rythmiq.ocr",
    "OnnxEngine": "rythmiq.ocr",
    "PaddleEngine": "rythmiq.ocr",
    "clear_engine_cache": "rythmiq.ocr",
    "default_engine": "rythmiq.ocr",
    "QualityReport": "rythmiq.quality",
    "score_quality": "rythmiq.quality",
    "EncryptionContext": "rythmiq.crypto",
    "Keyring": "rythmiq.keyring",
    "load_keyring": "rythmiq.keyring",
    "Ids": "rythmiq.layout",
    "Artifact": "rythmiq.storage",
    "Store": "rythmiq.storage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rythmiq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "Artifact",
    "BatchError",
    "BatchProgress",
    "BatchResult",
    "BundleError",
    "CryptoError",
    "EncryptionContext",
    "EngineConfig",
    "ExitCode",
    "Ids",
    "InputError",
    "Keyring",
    "LoadedDocument",
    "LoadedImage",
    "LoadedPage",
    "ModelError",
    "NormalizedImage",
    "OcrEngine",
    "OcrError",
    "OcrLine",
    "OcrResult",
    "OnnxEngine",
    "OptionsError",
    "PaddleEngine",
    "PageResult",
    "PayloadError",
    "Preview",
    "ProcessOptions",
    "ProcessResult",
    "QualityReport",
    "RythmiqError",
    "StageTiming",
    "StorageError",
    "Store",
    "Timings",
    "__version__",
    "clear_engine_cache",
    "default_engine",
    "load_document",
    "load_image",
    "load_keyring",
    "process",
    "process_many",
    "score_quality",
]
