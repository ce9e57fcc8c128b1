"""rythmiq.ocr.registry: engines made from the registry table, the shared engine cache and the
fork, and the install hint of a missing library."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest
from _helpers import PAGE_LINES, needs_rapidocr, render_page

import rythmiq
from rythmiq import ModelError, ProcessOptions
from rythmiq._registry import ENGINES
from rythmiq.metrics import word_f1
from rythmiq.ocr import (
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    THREADS_ENV,
    EngineConfig,
    OnnxEngine,
    PaddleEngine,
    clear_engine_cache,
    create_engine,
    default_engine,
    registry,
)
from rythmiq.ocr._library import LibraryEngine

# --------------------------------------------------------------------------- the table


def test_every_registry_entry_names_an_engine_class():
    assert sorted(registry._CLASSES) == sorted(spec.cls for spec in ENGINES.values())
    for name, spec in ENGINES.items():
        cls = registry._CLASSES[spec.cls]
        assert cls._spec is spec and cls._default_config().engine == name


def test_create_engine_makes_the_class_the_registry_names(monkeypatch):
    made = []

    class Recorder:
        def __init__(self, config):
            made.append(config)

    monkeypatch.setitem(registry._CLASSES, ENGINES["onnx"].cls, Recorder)
    assert isinstance(create_engine(EngineConfig(threads=1)), Recorder)
    assert made == [EngineConfig(threads=1).resolved()]


def test_a_subclass_of_an_engine_serves_the_same_engine():
    class Variant(OnnxEngine):  # e.g. a benchmark's variant
        pass

    assert Variant._spec is ENGINES["onnx"] and Variant._default_config().engine == "onnx"
    with pytest.raises(TypeError, match="Unlisted"):

        class Unlisted(LibraryEngine):
            pass


# --------------------------------------------------------------------------- the cache


@pytest.mark.integration
@needs_rapidocr
def test_default_engine_dispatches_on_the_engine_name(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    clear_engine_cache()
    try:
        engine = default_engine(EngineConfig(engine="onnx", threads=1))
        assert isinstance(engine, OnnxEngine)
        spelled_out = EngineConfig(
            engine="onnx", det_model=ONNX_DET_MODEL, rec_model=ONNX_REC_MODEL, threads=1
        )
        assert default_engine(spelled_out) is engine
    finally:
        clear_engine_cache()


@pytest.mark.integration
@needs_rapidocr
def test_a_forked_child_neither_hangs_nor_uses_the_parents_engines(page):
    """Regression: the child of a fork hung destroying the parent's cached OpenVINO engine."""
    import gc
    import warnings

    from rythmiq import OcrError
    from rythmiq.ocr import clear_engine_cache, default_engine

    cached = default_engine(EngineConfig(threads=1))
    cached.recognize(page)
    mine = OnnxEngine(EngineConfig(threads=1))
    mine.recognize(page)
    # What earlier tests left as garbage (a closed PaddleEngine's pipeline in a reference
    # cycle) is freed here, not by the child's gc.collect(): that would destroy a Paddle
    # predictor in the child, which crashes it. The parent's live engines are the subject.
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never return into pytest
        code = 1
        try:
            try:
                mine.recognize(page)
                code = 2
            except OcrError as exc:
                code = 3 if "forked" in exc.message and exc.code == "ocr.closed" else 4
            if code == 3:
                del mine, cached
                clear_engine_cache()
                gc.collect()
                with OnnxEngine(EngineConfig(threads=1)) as fresh:
                    text = fresh.recognize(page).text
                code = 0 if word_f1(text, "\n".join(PAGE_LINES)) >= 0.9 else 5
        finally:
            os._exit(code)
    deadline = time.monotonic() + 180
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.2)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mine.recognize(page).lines  # the parent's engine is untouched
    mine.close()
    clear_engine_cache()


# --------------------------------------------------------------------------- install hints


def test_paddle_engine_without_the_extra_gives_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "paddleocr", None)  # makes `import paddleocr` fail
    for make in (
        lambda: PaddleEngine(EngineConfig(engine="paddle", threads=1)),
        lambda: rythmiq.process(render_page(), options=ProcessOptions(engine="paddle")),
    ):
        with pytest.raises(ModelError) as exc:
            make()
        assert exc.value.code == "model.missing_dependency"
        assert 'pip install "rythmiq[paddle]"' in exc.value.message


def test_onnx_engine_without_rapidocr_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # makes `import rapidocr` fail
    with pytest.raises(ModelError, match=re.escape("needs rapidocr")) as exc:
        OnnxEngine(EngineConfig(engine="onnx", threads=1))
    assert exc.value.code == "model.missing_dependency"
    assert "pip install rythmiq" in exc.value.message
