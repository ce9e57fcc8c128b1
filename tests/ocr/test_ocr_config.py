"""rythmiq.ocr.config: EngineConfig, its checks and defaults, the runtime option and the thread
count (no model)."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import pytest

from rythmiq import ModelError, OptionsError, ProcessOptions
from rythmiq._registry import RUNTIMES, resolve_runtime
from rythmiq._system import usable_cpus
from rythmiq.ocr import (
    DEFAULT_DET_MODEL,
    DEFAULT_REC_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    THREADS_ENV,
    EngineConfig,
    resolve_threads,
)

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("openvino",)}


# --------------------------------------------------------------------------- threads


def test_threads_option_env_and_default(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads() == usable_cpus() >= 1
    assert resolve_threads() <= len(os.sched_getaffinity(0))
    assert resolve_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resolve_threads() == 2
    assert EngineConfig().resolved().threads == 2
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(OptionsError, match=THREADS_ENV):
        resolve_threads()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(OptionsError):
            resolve_threads(bad)


@pytest.mark.parametrize("threads", [0, -1, True, 1.5, "2"])
def test_threads_are_checked_when_the_config_is_built(threads):
    with pytest.raises(OptionsError, match=r"threads must be an integer >= 1") as exc:
        EngineConfig(threads=threads)
    assert exc.value.code == "options.invalid"
    with pytest.raises(OptionsError, match="threads"):
        ProcessOptions(threads=threads)


def test_from_options_takes_the_fields_the_options_carry():
    options = ProcessOptions(engine="paddle", det_model="my_det", threads=2)
    assert EngineConfig.from_options(options) == options.engine_config()
    partial = SimpleNamespace(engine="onnx", rec_batch_size=3, unrelated=True)
    assert EngineConfig.from_options(partial) == EngineConfig(rec_batch_size=3)
    with pytest.raises(OptionsError, match="threads"):
        EngineConfig.from_options(SimpleNamespace(threads=0))


# --------------------------------------------------------------------------- the checks


@pytest.mark.parametrize("engine", ["", "Paddle", "tesseract", None])
def test_engine_name_is_validated(engine):
    with pytest.raises(OptionsError, match="engine"):
        EngineConfig(engine=engine)


@pytest.mark.parametrize(
    "field, value",
    [
        ("det_limit_side_len", 16),
        ("det_limit_side_len", True),
        ("rec_batch_size", 0),
        ("rec_batch_size", 2.0),
    ],
)
def test_speed_settings_are_validated(field, value):
    with pytest.raises(OptionsError, match=field):
        EngineConfig(**{field: value})


# --------------------------------------------------------------------------- defaults, cache key


def test_engine_config_is_a_hashable_cache_key(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    a = EngineConfig().resolved()
    b = EngineConfig(threads=usable_cpus()).resolved()
    assert a == b and hash(a) == hash(b)
    assert EngineConfig(threads=1) != EngineConfig(threads=2)


def test_resolved_fills_each_engines_defaults(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "3")
    paddle = EngineConfig(engine="paddle").resolved()
    assert (paddle.det_model, paddle.rec_model) == (DEFAULT_DET_MODEL, DEFAULT_REC_MODEL)
    assert paddle.runtime == "auto"
    onnx = EngineConfig().resolved()
    assert onnx.engine == "onnx" and onnx.runtime in ("openvino", "onnxruntime")
    assert (onnx.det_model, onnx.rec_model) == (ONNX_DET_MODEL, ONNX_REC_MODEL)
    for config in (paddle, onnx):
        assert config.threads == 3
        assert isinstance(config.det_limit_side_len, int) and config.det_limit_side_len >= 32
        assert isinstance(config.rec_batch_size, int) and config.rec_batch_size >= 1
        assert config.resolved() == config
    custom = EngineConfig(engine="onnx", rec_model="my_rec", rec_batch_size=2).resolved()
    assert (custom.det_model, custom.rec_model, custom.rec_batch_size) == (
        ONNX_DET_MODEL,
        "my_rec",
        2,
    )


def test_equal_effective_configs_share_a_cache_key(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    implicit = EngineConfig(engine="onnx", threads=1).resolved()
    explicit = EngineConfig(
        engine="onnx",
        det_model=ONNX_DET_MODEL,
        rec_model=ONNX_REC_MODEL,
        threads=1,
        det_limit_side_len=implicit.det_limit_side_len,
        rec_batch_size=implicit.rec_batch_size,
    ).resolved()
    assert implicit == explicit and hash(implicit) == hash(explicit)
    assert EngineConfig(threads=1).resolved() == implicit  # onnx is the default
    assert EngineConfig(threads=1, runtime=implicit.runtime).resolved() == implicit
    assert EngineConfig(engine="paddle", threads=1).resolved() != implicit
    assert (
        EngineConfig(engine="paddle", threads=1).resolved()
        == EngineConfig(
            engine="paddle", det_model=DEFAULT_DET_MODEL, rec_model=DEFAULT_REC_MODEL, threads=1
        ).resolved()
    )


# --------------------------------------------------------------------------- the runtime option


def test_runtime_option_reaches_the_engine_config():
    for runtime in RUNTIMES:
        options = ProcessOptions(runtime=runtime, threads=1)
        assert options.engine_config().runtime == runtime
        assert ProcessOptions.from_dict(options.to_dict()) == options
    assert EngineConfig(runtime="onnxruntime").resolved().runtime == "onnxruntime"
    auto = EngineConfig().resolved().runtime
    assert auto == ("openvino" if HAVE["openvino"] else "onnxruntime")


@pytest.mark.parametrize("runtime", ["", "OpenVINO", "tensorrt", None, 1])
def test_unknown_runtime_is_an_options_error(runtime):
    with pytest.raises(OptionsError, match="runtime") as exc:
        ProcessOptions(runtime=runtime)
    assert exc.value.code == "options.invalid"
    with pytest.raises(OptionsError, match="runtime"):
        EngineConfig(runtime=runtime)


def test_a_runtime_for_the_paddle_engine_is_refused():
    with pytest.raises(OptionsError, match="applies to the onnx engine"):
        ProcessOptions(engine="paddle", runtime="openvino")
    assert ProcessOptions(engine="paddle").engine_config().resolved().runtime == "auto"


def test_auto_without_any_runtime_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("openvino", "onnxruntime") else real(name, *a),
    )
    with pytest.raises(ModelError, match="pip install openvino") as exc:
        resolve_runtime("auto")
    assert exc.value.code == "model.missing_dependency"
