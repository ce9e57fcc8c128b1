"""The default engine (PP-OCRv6 on OpenVINO or ONNX Runtime): runtimes, the runtime option,
the paddle extra, engine-load timing, quiet logs, the content crop and the width padding."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import PAGE_LINES, ScriptedEngine, needs_rapidocr, render_page
from PIL import Image, ImageDraw, ImageFont

import rythmiq
from rythmiq import ModelError, OptionsError, ProcessOptions
from rythmiq._liblog import adopt_library_logger
from rythmiq._registry import DEFAULT_ENGINE, ENGINES, RUNTIMES, resolve_runtime
from rythmiq.metrics import word_f1
from rythmiq.ocr import REC_WIDTH_STEP, EngineConfig, OnnxEngine, PaddleEngine, content_box

ROOT = Path(__file__).resolve().parents[1]
HAVE = {
    name: __import__("importlib.util").util.find_spec(name) is not None
    for name in ("openvino", "onnxruntime", "paddleocr")
}
RUNTIME_PARAMS = [
    pytest.param(
        r,
        marks=[
            needs_rapidocr,
            pytest.mark.skipif(not HAVE[r], reason=f"{r} is not installed"),
        ],
    )
    for r in ("openvino", "onnxruntime")
]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RYTHMIQ_", "PADDLE_PDX_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def page_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("default") / "page.png"
    Image.fromarray(render_page()).save(path, dpi=(200, 200))
    return path


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


# --------------------------------------------------------------------------- both runtimes


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_both_runtimes_read_a_rendered_page_alike(runtime, page):
    with OnnxEngine(EngineConfig(threads=1, runtime=runtime)) as engine:
        result = engine.recognize(page)
    assert result.engine.endswith(f"@{runtime}")
    assert word_f1(result.text, "\n".join(PAGE_LINES)) >= 0.95, result.text
    assert len(result.lines) == len(PAGE_LINES)


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_the_runtime_runs_on_exactly_the_threads_asked_for(runtime):
    with OnnxEngine(EngineConfig(threads=1, runtime=runtime)) as engine:
        for part in (engine._ocr.text_det, engine._ocr.text_rec):
            session = part.session.session
            if runtime == "openvino":
                compiled = session.get_compiled_model()
                assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
                assert int(compiled.get_property("NUM_STREAMS")) == 1
                assert str(compiled.get_property("ENABLE_CPU_PINNING")).lower() == "false"
            else:
                options = session.get_session_options()
                assert options.intra_op_num_threads == 1
                assert options.inter_op_num_threads == 1


@pytest.mark.integration
@needs_rapidocr
def test_an_explicit_runtime_that_is_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(ModelError, match="pip install openvino") as exc:
        OnnxEngine(EngineConfig(threads=1, runtime="openvino"))
    assert exc.value.code == "model.missing_dependency"


# --------------------------------------------------------------------------- the paddle extra


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


# --------------------------------------------------------------------------- content crop


def _one_line_page(width=3600, height=4800, *, at=(130, 90), size=48, ink=0, paper=255):
    page = Image.new("L", (width, height), paper)
    font = ImageFont.load_default(size=size)
    ImageDraw.Draw(page).text(at, "To simple burn running of goods lately", fill=ink, font=font)
    return np.asarray(page.convert("RGB"))


def test_content_box_keeps_the_ink_and_drops_the_empty_paper():
    page = _one_line_page()
    x0, y0, x1, y1 = content_box(page)
    ys, xs = np.nonzero(page[..., 0] < 128)
    assert x0 <= xs.min() and y0 <= ys.min() and x1 > xs.max() and y1 > ys.max()
    assert (x1 - x0) * (y1 - y0) < 0.05 * page.shape[0] * page.shape[1]
    # Light print on a dark page, and grayscale input, alike.
    inverted = content_box(_one_line_page(ink=255, paper=0))
    assert inverted == (x0, y0, x1, y1)
    assert content_box(np.ascontiguousarray(page[..., 1])) == (x0, y0, x1, y1)


@pytest.mark.parametrize(
    "image",
    [
        np.full((4800, 3600, 3), 255, np.uint8),  # nothing stands out
        np.full((20, 3000), 0, np.uint8),  # thin
        np.pad(np.full((1980, 1500), 255, np.uint8), 10),  # a scan's dark edges: all is content
        np.random.default_rng(0).integers(0, 256, (900, 700, 3), dtype=np.uint8),
    ],
)
def test_content_box_is_the_whole_image_when_cropping_saves_little(image):
    assert content_box(image) == (0, 0, image.shape[1], image.shape[0])


@pytest.mark.integration
@needs_rapidocr
def test_one_small_line_on_a_large_empty_page_is_read():
    """Regression: detection at 960 px saw this line 9 px tall and found nothing."""
    page = _one_line_page()
    with OnnxEngine(EngineConfig(threads=1)) as engine:
        result = engine.recognize(page)
    assert word_f1(result.text, "To simple burn running of goods lately") >= 0.8, result.text
    (line,) = result.lines
    ys, xs = np.nonzero(page[..., 0] < 128)
    left, top, right, bottom = line.bbox  # in the whole page's coordinates
    assert left <= xs.min() + 10 and right >= xs.max() - 10
    assert top <= ys.min() + 10 and bottom >= ys.max() - 10


# --------------------------------------------------------------------------- width padding


@pytest.mark.integration
@needs_rapidocr
def test_recognition_inputs_are_rapidocrs_own_padded_to_the_width_step():
    from rapidocr.ch_ppocr_rec.main import TextRecognizer

    with OnnxEngine(EngineConfig(threads=1)) as engine:
        rec = engine._ocr.text_rec
        rng = np.random.default_rng(1)
        for h, w, ratio in ((48, 100, 64 / 48), (31, 517, 20.0), (60, 61, 3.3), (48, 5000, 8.0)):
            crop = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            ours = rec.resize_norm_img(crop, ratio)
            theirs = TextRecognizer.resize_norm_img(rec, crop, ratio)
            assert ours.dtype == np.float32 and ours.shape[1] == theirs.shape[1] == 48
            assert ours.shape[2] % REC_WIDTH_STEP == 0
            assert theirs.shape[2] <= ours.shape[2] < theirs.shape[2] + REC_WIDTH_STEP
            np.testing.assert_allclose(ours[:, :, : theirs.shape[2]], theirs, atol=1e-6)
            assert not ours[:, :, theirs.shape[2] :].any()


# --------------------------------------------------------------------------- fork


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


# --------------------------------------------------------------------------- read_lines


@pytest.mark.integration
@needs_rapidocr
def test_read_lines_reads_cut_out_lines_without_detection():
    crops = []
    for text in PAGE_LINES[:3]:
        line = Image.new("L", (900, 48), 255)
        ImageDraw.Draw(line).text((8, 4), text, fill=0, font=ImageFont.load_default(size=36))
        crops.append(np.asarray(line))
    crops.append(np.full((48, 300), 255, np.uint8))  # nothing on it
    with OnnxEngine(EngineConfig(threads=1)) as engine:
        read = engine.read_lines(crops)
        rgb = engine.read_lines([np.stack([crops[0]] * 3, axis=-1)])
        assert engine.read_lines([]) == []
        with pytest.raises(rythmiq.InputError):
            engine.read_lines([np.zeros((4, 4), np.float32)])
    assert len(read) == 4
    for (text, confidence), expected in zip(read[:3], PAGE_LINES[:3], strict=True):
        assert word_f1(text, expected) >= 0.8 and 0.5 <= confidence <= 1.0, (text, expected)
    assert read[3][0] == ""
    assert rgb[0][0] == read[0][0]
    with pytest.raises(rythmiq.OcrError, match="closed"):
        engine.read_lines(crops[:1])
