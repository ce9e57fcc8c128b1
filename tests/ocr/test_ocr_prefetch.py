"""rythmiq.ocr.models.prefetch_models, the ``models`` commands, and the switch that keeps a
baked image on its own models."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, needs_paddle, needs_rapidocr, render_page
from PIL import Image

from rythmiq._errors import ModelError, OptionsError
from rythmiq.metrics import word_f1
from rythmiq.ocr import (
    DEFAULT_DET_MODEL,
    DEFAULT_REC_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    EngineConfig,
    OnnxEngine,
    ResolvedModel,
    prefetch_models,
    resolve_model,
)

MODELS = (DEFAULT_DET_MODEL, DEFAULT_REC_MODEL)
ONNX_MODELS = (ONNX_DET_MODEL, ONNX_REC_MODEL)
ONNX_FILES = sorted(f"{name}.onnx" for name in ONNX_MODELS)
# Every proxy points at a closed loopback port: a model hub "download" fails at once, and
# nothing leaves the machine.
OFFLINE = {
    name: "http://127.0.0.1:9"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
} | {"NO_PROXY": "", "no_proxy": ""}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def prefetched(tmp_path_factory):
    dest = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("RYTHMIQ_MODEL_DIR", "RYTHMIQ_BUNDLED_MODELS"):
            mp.delenv(name, raising=False)
        det, rec = prefetch_models(dest, engine="paddle")
    return dest, det, rec


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RYTHMIQ_", "PADDLE_PDX_"))}
    env.update(extra)
    return env


@needs_paddle
def test_prefetch_copies_both_bundled_models(prefetched, clean_env):
    dest, det, rec = prefetched
    assert (det.name, rec.name) == MODELS
    for model in (det, rec):
        assert model.source == "explicit" and Path(model.path) == dest / model.name
        bundled = Path(resolve_model(model.name, engine="paddle").path)
        for name in ("inference.json", "inference.pdiparams", "inference.yml"):
            assert _digest(Path(model.path) / name) == _digest(bundled / name)
        # Readable by other users: an image bakes models as root and runs as another user.
        assert Path(model.path).stat().st_mode & 0o055 == 0o055
        # The download cache's hidden files are not copied.
        assert not any(p.name.startswith(".") for p in Path(model.path).iterdir())
    # No temporary folders are left behind.
    assert sorted(p.name for p in dest.iterdir()) == sorted(MODELS)


@needs_paddle
def test_prefetch_again_replaces_and_into_its_own_source_is_a_no_op(tmp_path, clean_env):
    first = prefetch_models(tmp_path, engine="paddle")
    (tmp_path / DEFAULT_DET_MODEL / "stale.txt").write_text("old copy")
    again = prefetch_models(tmp_path, engine="paddle")
    assert again == first
    assert not (tmp_path / DEFAULT_DET_MODEL / "stale.txt").exists()
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(tmp_path))
    assert resolve_model(DEFAULT_DET_MODEL, engine="paddle").source == "env"
    assert prefetch_models(tmp_path, engine="paddle") == first
    assert (tmp_path / DEFAULT_DET_MODEL / "inference.pdiparams").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MODELS)


@needs_paddle
def test_bundled_switch_off_resolves_from_the_model_dir(prefetched, clean_env):
    dest = prefetched[0]
    clean_env.setenv("RYTHMIQ_BUNDLED_MODELS", "0")
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(dest))
    for name in MODELS:
        assert resolve_model(name, engine="paddle") == ResolvedModel(name, str(dest / name), "env")


@needs_paddle
@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_bundled_switch_off_without_a_model_dir_means_download(value, clean_env):
    assert resolve_model(DEFAULT_DET_MODEL, engine="paddle").source == "bundled"
    clean_env.setenv("RYTHMIQ_BUNDLED_MODELS", value)
    for name in MODELS:
        m = resolve_model(name, engine="paddle")
        assert (m.source, m.path) == ("download", None)


@needs_paddle
@pytest.mark.parametrize("value", ["1", "", "yes"])
def test_bundled_switch_on(value, clean_env):
    clean_env.setenv("RYTHMIQ_BUNDLED_MODELS", value)
    assert resolve_model(DEFAULT_REC_MODEL, engine="paddle").source == "bundled"


def run(*args, env, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        **kw,
    )


@needs_paddle
def test_prefetch_command(tmp_path):
    out = run("models", "prefetch", "--engine", "paddle", "--dest", str(tmp_path / "m"), env=_env())
    assert out.returncode == 0, out.stderr
    assert f"RYTHMIQ_MODEL_DIR={tmp_path / 'm'}" in out.stdout
    for name in MODELS:
        assert (tmp_path / "m" / name / "inference.pdiparams").is_file()
    listed = run(
        "models",
        "list",
        "--engine",
        "paddle",
        "--json",
        env=_env(RYTHMIQ_MODEL_DIR=str(tmp_path / "m"), RYTHMIQ_BUNDLED_MODELS="0"),
    )
    d = json.loads(listed.stdout)
    assert d["engine"] == "paddle"
    assert [d[r]["source"] for r in ("det", "rec")] == ["env", "env"]


@needs_paddle
def test_prefetch_of_a_hub_model_offline_fails_with_the_model_exit_code(tmp_path):
    dest = tmp_path / "m"
    out = run(
        "models",
        "prefetch",
        "--engine",
        "paddle",
        "--dest",
        str(dest),
        "--det-model",
        "PP-OCRv5_server_det",
        env=_env(**OFFLINE),
    )
    assert out.returncode == 6, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("rythmiq: error [model.load_failed] could not download ")
    assert "PP-OCRv5_server_det" in line and "RYTHMIQ_MODEL_DIR" in line
    assert out.stdout == ""
    # Nothing half-done: no model folder and no download cache.
    assert list(dest.iterdir()) == []


@needs_paddle
@pytest.mark.integration
def test_process_uses_the_prefetched_models_only(prefetched, tmp_path):
    dest = prefetched[0]
    page = tmp_path / "page.png"
    Image.fromarray(render_page()).save(page, dpi=(200, 200))
    env = _env(RYTHMIQ_BUNDLED_MODELS="0", RYTHMIQ_MODEL_DIR=str(dest), **OFFLINE)
    out = run("process", "--engine", "paddle", "--json", "--threads", "2", str(page), env=env)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["page_count"] == 1
    assert word_f1(d["pages"][0]["ocr"]["text"], "\n".join(PAGE_LINES)) >= 0.95
    # The control: the same run without the prefetched folder has no model at all.
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run(
        "process",
        "--engine",
        "paddle",
        "--json",
        str(page),
        env={**env, "RYTHMIQ_MODEL_DIR": str(empty)},
    )
    assert out.returncode == 6 and "model.load_failed" in out.stderr


@needs_paddle
def test_prefetch_with_the_paddle_model_names_spelled_out(tmp_path, clean_env):
    spelled = prefetch_models(
        tmp_path, det_model=DEFAULT_DET_MODEL, rec_model=DEFAULT_REC_MODEL, engine="paddle"
    )
    assert [(m.name, Path(m.path).name, m.source) for m in spelled] == [
        (name, name, "explicit") for name in MODELS
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MODELS)


# --------------------------------------------------------------------------- ONNX models


def _bundled_onnx(name: str) -> Path:
    m = resolve_model(name, engine="onnx")
    assert m.source == "bundled" and m.path is not None
    return Path(m.path)


@needs_rapidocr
def test_prefetch_onnx_copies_both_bundled_files(tmp_path, clean_env):
    dest = tmp_path / "m"
    det, rec = prefetch_models(dest, engine="onnx")
    assert (det.name, rec.name) == ONNX_MODELS
    for model in (det, rec):
        target = dest / f"{model.name}.onnx"
        assert model == ResolvedModel(model.name, str(target), "explicit")
        assert target.is_file() and not target.is_symlink()
        assert _digest(target) == _digest(_bundled_onnx(model.name))
        # Readable by other users: an image bakes models as root and runs as another user.
        assert target.stat().st_mode & 0o777 == 0o644
    # No temporary files are left behind.
    assert sorted(p.name for p in dest.iterdir()) == ONNX_FILES


@needs_rapidocr
def test_prefetched_onnx_models_resolve_from_the_model_dir_only(tmp_path, clean_env):
    dest = tmp_path / "m"
    prefetch_models(dest, engine="onnx")
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(dest))
    clean_env.setenv("RYTHMIQ_BUNDLED_MODELS", "0")
    for name in ONNX_MODELS:
        assert resolve_model(name, engine="onnx") == ResolvedModel(
            name, str(dest / f"{name}.onnx"), "env"
        )
    # The control: the same settings without the prefetched files find nothing.
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(tmp_path / "empty"))
    with pytest.raises(ModelError) as exc:
        resolve_model(ONNX_DET_MODEL, engine="onnx")
    assert exc.value.code == "model.not_found"


@pytest.mark.integration
@needs_rapidocr
def test_onnx_engine_reads_a_page_with_the_prefetched_models(tmp_path, clean_env):
    dest = tmp_path / "m"
    prefetch_models(dest, engine="onnx")
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(dest))
    clean_env.setenv("RYTHMIQ_BUNDLED_MODELS", "0")
    with OnnxEngine(EngineConfig(engine="onnx", threads=1)) as engine:
        assert (engine.det.source, engine.rec.source) == ("env", "env")
        assert [engine.det.path, engine.rec.path] == [str(dest / f) for f in ONNX_FILES]
        result = engine.recognize(render_page())
    assert word_f1(result.text, "\n".join(PAGE_LINES)) >= 0.9


@needs_rapidocr
def test_prefetch_onnx_again_replaces_and_into_its_own_source_is_a_no_op(tmp_path, clean_env):
    first = prefetch_models(tmp_path, engine="onnx")
    det_file = tmp_path / f"{ONNX_DET_MODEL}.onnx"
    det_file.write_bytes(b"a broken copy")
    assert prefetch_models(tmp_path, engine="onnx") == first
    for name in ONNX_MODELS:
        assert _digest(tmp_path / f"{name}.onnx") == _digest(_bundled_onnx(name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ONNX_FILES
    # Resolved from dest itself: the files are left as they are (same inode, not rewritten).
    inodes = {f: (tmp_path / f).stat().st_ino for f in ONNX_FILES}
    clean_env.setenv("RYTHMIQ_MODEL_DIR", str(tmp_path))
    assert resolve_model(ONNX_DET_MODEL, engine="onnx").source == "env"
    assert prefetch_models(tmp_path, engine="onnx") == first
    assert {f: (tmp_path / f).stat().st_ino for f in ONNX_FILES} == inodes
    assert sorted(p.name for p in tmp_path.iterdir()) == ONNX_FILES


@pytest.mark.parametrize("role", ["det_model", "rec_model"])
def test_prefetch_of_a_missing_onnx_model_writes_nothing(role, tmp_path, clean_env):
    dest = tmp_path / "m"
    with pytest.raises(ModelError, match="no-such-model") as exc:
        prefetch_models(dest, engine="onnx", **{role: "no-such-model"})
    assert exc.value.code == "model.not_found"
    assert not dest.exists()
    # The same with dest already there: still nothing in it.
    dest.mkdir()
    with pytest.raises(ModelError):
        prefetch_models(dest, engine="onnx", **{role: "no-such-model"})
    assert list(dest.iterdir()) == []


def test_prefetch_with_an_unknown_engine_is_an_options_error(tmp_path, clean_env):
    with pytest.raises(OptionsError, match="tesseract") as exc:
        prefetch_models(tmp_path / "m", engine="tesseract")
    assert exc.value.code == "options.invalid"
    assert not (tmp_path / "m").exists()


@needs_rapidocr
def test_models_list_and_prefetch_commands_for_onnx(tmp_path):
    listed = run("models", "list", "--engine", "onnx", "--json", env=_env())
    assert listed.returncode == 0, listed.stderr
    d = json.loads(listed.stdout)
    assert d["engine"] == "onnx"
    assert [(d[r]["name"], d[r]["source"]) for r in ("det", "rec")] == [
        (name, "bundled") for name in ONNX_MODELS
    ]
    dest = tmp_path / "m"
    out = run("models", "prefetch", "--engine", "onnx", "--dest", str(dest), env=_env())
    assert out.returncode == 0, out.stderr
    (hint,) = [line for line in out.stdout.splitlines() if line.startswith("use them with:")]
    assert f"RYTHMIQ_MODEL_DIR={dest} RYTHMIQ_BUNDLED_MODELS=0" in hint
    assert "rythmiq process PAGE" in hint and "--engine" not in hint
    assert sorted(p.name for p in dest.iterdir()) == ONNX_FILES
    for role in ("det", "rec"):
        copied = dest / f"{d[role]['name']}.onnx"
        assert _digest(copied) == _digest(Path(d[role]["path"]))
    env = _env(RYTHMIQ_MODEL_DIR=str(dest), RYTHMIQ_BUNDLED_MODELS="0")
    listed = run("models", "list", "--engine", "onnx", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert rows == [
        [role, name, "env", str(dest / f"{name}.onnx")]
        for role, name in zip(("det", "rec"), ONNX_MODELS, strict=True)
    ]


def test_models_commands_for_a_missing_onnx_model_exit_with_the_model_code(tmp_path):
    env = _env(RYTHMIQ_BUNDLED_MODELS="0", RYTHMIQ_MODEL_DIR=str(tmp_path / "empty"))
    listed = run("models", "list", "--engine", "onnx", "--json", env=env)
    assert listed.returncode == 6 and listed.stdout == ""
    (line,) = listed.stderr.splitlines()
    assert line.startswith(f"rythmiq: error [model.not_found] ONNX model {ONNX_DET_MODEL} ")
    assert "never downloaded" in line
    dest = tmp_path / "m"
    out = run("models", "prefetch", "--engine", "onnx", "--dest", str(dest), env=env)
    assert out.returncode == 6 and "[model.not_found]" in out.stderr and out.stdout == ""
    assert not dest.exists()
