"""The default engine (PP-OCRv6 on OpenVINO or ONNX Runtime) end to end: the registry's
default everywhere, the CLI's runtime option, engine-load timing and quiet library logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, ScriptedEngine, needs_rapidocr, render_page
from PIL import Image

import rythmiq
from rythmiq import ProcessOptions
from rythmiq._liblog import adopt_library_logger
from rythmiq._registry import DEFAULT_ENGINE, ENGINES, RUNTIMES
from rythmiq.metrics import word_f1
from rythmiq.ocr import EngineConfig

ROOT = Path(__file__).resolve().parents[2]
HAVE = {
    name: __import__("importlib.util").util.find_spec(name) is not None
    for name in ("onnxruntime", "paddleocr")
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RYTHMIQ_", "PADDLE_PDX_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the default


def test_the_default_everywhere_is_the_onnx_engine():
    assert DEFAULT_ENGINE == "onnx" == next(iter(ENGINES))
    assert EngineConfig().engine == "onnx" and ProcessOptions().engine == "onnx"
    assert ProcessOptions().runtime == "auto"
    schema = json.loads((ROOT / "rythmiq/schemas/payload-v1.json").read_text())
    props = schema["$defs"]["options"]["properties"]
    # The schema's lists are the registry's, in its order.
    assert props["engine"]["enum"] == list(ENGINES)
    assert props["runtime"]["enum"] == list(RUNTIMES)


def test_cli_engine_choices_come_from_the_registry(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rythmiq", "process", "--help"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "[onnx|paddle]" in out.stdout and "[auto|openvino|onnxruntime]" in out.stdout


@pytest.mark.integration
@needs_rapidocr
@pytest.mark.skipif(not HAVE["onnxruntime"], reason="onnxruntime is not installed")
def test_cli_runtime_option_reaches_the_engine(page_png, tmp_path):
    args = [str(page_png), "--json", "--runtime", "onnxruntime", "--threads", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "rythmiq", "process", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["pages"][0]["ocr"]["engine"].endswith("@onnxruntime")
    assert word_f1(result["text"], "\n".join(PAGE_LINES)) >= 0.9
    bad = subprocess.run(
        [sys.executable, "-m", "rythmiq", "process", str(page_png), "--runtime", "tensorrt"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert bad.returncode == 2 and "tensorrt" in bad.stderr


# --------------------------------------------------------------------------- engine-load timing


def test_loading_the_engine_is_timed_on_its_own_stage(monkeypatch):
    import rythmiq.pipeline as pipeline

    def slow_default_engine(config):
        time.sleep(0.4)  # what loading models costs, on the first page that is read
        return ScriptedEngine()

    monkeypatch.setattr(pipeline, "default_engine", slow_default_engine)
    result = rythmiq.process(render_page(), options=ProcessOptions(threads=1))
    t = result.timings
    assert t.engine.wall_s >= 0.4
    assert t.orient.wall_s < 0.4 and t.ocr.wall_s < 0.4
    assert result.pages[0].timings.engine.wall_s >= 0.4
    assert "engine" in t.to_dict()
    # A passed-in engine costs no engine time, and OCR off loads none at all.
    given = rythmiq.process(render_page(), engine=ScriptedEngine())
    assert given.timings.engine.wall_s < 0.05
    off = rythmiq.process(render_page(), options=ProcessOptions(ocr=False))
    assert off.timings.engine.wall_s == 0.0


@pytest.mark.integration
@needs_rapidocr
def test_the_real_first_load_shows_in_engine_not_orient(page_png):
    from rythmiq.ocr import clear_engine_cache

    clear_engine_cache()
    try:
        first = rythmiq.process(page_png, options=ProcessOptions(threads=1))
        again = rythmiq.process(page_png, options=ProcessOptions(threads=1))
    finally:
        clear_engine_cache()
    assert first.timings.engine.wall_s > 10 * max(again.timings.engine.wall_s, 1e-3)
    assert again.timings.engine.wall_s < 0.01


# --------------------------------------------------------------------------- quiet logs


def test_library_loggers_are_routed_through_rythmiq(caplog):
    lib = logging.getLogger("rythmiq-test-library")
    stray = logging.StreamHandler(sys.stderr)
    lib.addHandler(stray)
    adopt_library_logger("rythmiq-test-library", "testlib")
    adopt_library_logger("rythmiq-test-library", "testlib")  # idempotent
    assert stray not in lib.handlers and len(lib.handlers) == 1 and not lib.propagate
    with caplog.at_level(logging.INFO, logger="rythmiq"):
        lib.info("\x1b[32mCreating model: %s\x1b[0m", "('PP-OCRv5_mobile_det', None)")
    (record,) = [r for r in caplog.records if r.name == "rythmiq.lib.testlib"]
    assert record.getMessage() == "Creating model: ('PP-OCRv5_mobile_det', None)"
    assert record.levelno == logging.INFO
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rythmiq"):
        lib.info("not shown at WARNING")
    assert not [r for r in caplog.records if r.name.startswith("rythmiq.lib")]


def _cli_stderr(args, tmp_path, timeout=600, *, debug=False):
    run = subprocess.run(
        [sys.executable, "-m", "rythmiq", *(["--debug"] if debug else []), "process", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(tmp_path),
    )
    assert run.returncode == 0, run.stderr
    return run.stderr


@pytest.mark.integration
@needs_rapidocr
def test_a_default_cli_run_prints_nothing_on_stderr(page_png, tmp_path):
    assert _cli_stderr([str(page_png), "--threads", "1"], tmp_path) == ""
    blank = tmp_path / "blank.png"  # RapidOCR warns "The text detection result is empty"
    Image.new("RGB", (400, 300), "white").save(blank)
    assert _cli_stderr([str(blank), "--threads", "1"], tmp_path) == ""


@pytest.mark.integration
@needs_rapidocr
def test_debug_shows_library_lines_through_rythmiq_without_colour(page_png, tmp_path):
    stderr = _cli_stderr([str(page_png), "--threads", "1"], tmp_path, debug=True)
    lines = [ln for ln in stderr.splitlines() if "rythmiq.lib.rapidocr" in ln]
    assert lines, stderr
    assert all(ln.startswith("rythmiq: ") for ln in stderr.splitlines() if ln.strip())
    assert "\x1b[" not in stderr


@pytest.mark.integration
@pytest.mark.skipif(not HAVE["paddleocr"], reason="needs rythmiq[paddle]")
def test_a_paddle_cli_run_prints_no_paddlex_lines(page_png, tmp_path):
    stderr = _cli_stderr([str(page_png), "--engine", "paddle", "--threads", "1"], tmp_path)
    assert "Creating model" not in stderr and "\x1b[" not in stderr
    assert all(ln.startswith("rythmiq: ") for ln in stderr.splitlines() if ln.strip()), stderr
