"""One contract for every OCR engine (PaddleOCR and ONNX), plus ONNX model resolution.

The contract tests run the real models (marked ``integration``); the ONNX half skips when
rapidocr is not installed. Model resolution and :class:`EngineConfig` are tested without a
model.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import PAGE_LINES, iou, needs_paddle, needs_rapidocr, text_layout

from rythmiq import ModelError, OcrError, OptionsError
from rythmiq.metrics import word_f1
from rythmiq.ocr import (
    BUNDLED_MODELS_ENV,
    DEFAULT_DET_MODEL,
    DEFAULT_REC_MODEL,
    MODEL_DIR_ENV,
    ONNX_CLS_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    THREADS_ENV,
    EngineConfig,
    OcrEngine,
    OcrLine,
    OcrResult,
    OnnxEngine,
    PaddleEngine,
    clear_engine_cache,
    default_engine,
    resolve_model,
)

ENGINES = [
    pytest.param("paddle", marks=[pytest.mark.integration, needs_paddle]),
    pytest.param("onnx", marks=[pytest.mark.integration, needs_rapidocr]),
    pytest.param(
        "onnx-onnxruntime",
        marks=[
            pytest.mark.integration,
            needs_rapidocr,
            pytest.mark.skipif(
                importlib.util.find_spec("onnxruntime") is None, reason="needs onnxruntime"
            ),
        ],
    ),
]


def make(kind: str) -> OcrEngine:
    if kind == "onnx":
        return OnnxEngine(EngineConfig(engine="onnx", threads=1))
    if kind == "onnx-onnxruntime":
        return OnnxEngine(EngineConfig(engine="onnx", threads=1, runtime="onnxruntime"))
    return PaddleEngine(EngineConfig(engine="paddle", threads=1))


@pytest.fixture(scope="module", params=ENGINES)
def ocr(request):
    engine = make(request.param)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def page_result(ocr, page):
    return ocr.recognize(page)


def shoelace(box) -> float:
    """Twice the signed area; positive for clockwise points in image (y-down) coordinates."""
    return sum(box[i][0] * box[(i + 1) % 4][1] - box[(i + 1) % 4][0] * box[i][1] for i in range(4))


# --------------------------------------------------------------------------- the contract


def test_output_types(ocr, page, page_result):
    assert isinstance(ocr, OcrEngine)
    assert isinstance(page_result, OcrResult)
    assert (page_result.width, page_result.height) == (page.shape[1], page.shape[0])
    assert page_result.lines
    for line in page_result.lines:
        assert isinstance(line, OcrLine)
        assert isinstance(line.text, str) and line.text.strip()
        assert type(line.confidence) is float and 0.0 <= line.confidence <= 1.0
        assert len(line.box) == 4
        assert all(type(v) is float for point in line.box for v in point)


def test_boxes_are_clockwise_quads_inside_the_image_where_lines_were_drawn(page_result):
    w, h = page_result.width, page_result.height
    for line in page_result.lines:
        assert all(0 <= x <= w and 0 <= y <= h for x, y in line.box), line
        assert shoelace(line.box) > 0, line  # clockwise on screen
        # The first point is the top-left corner.
        assert min(range(4), key=lambda i: line.box[i][0] + line.box[i][1]) == 0, line
    for text, drawn in text_layout():
        best = max(page_result.lines, key=lambda ln: iou(ln.bbox, drawn))
        assert iou(best.bbox, drawn) > 0.5, (text, best)


def test_lines_come_in_reading_order(page_result):
    assert len(page_result.lines) == len(PAGE_LINES)
    for line, expected in zip(page_result.lines, PAGE_LINES, strict=True):
        assert word_f1(line.text, expected) >= 0.8, (line.text, expected)
    tops = [line.bbox[1] for line in page_result.lines]
    assert tops == sorted(tops)


def test_text_of_a_rendered_page(page_result):
    assert word_f1(page_result.text, "\n".join(PAGE_LINES)) >= 0.9, page_result.text
    assert page_result.confidence >= 0.8


def test_white_page_is_empty(ocr):
    result = ocr.recognize(np.full((400, 300, 3), 255, np.uint8))
    assert result.lines == () and result.text == "" and result.confidence == 0.0
    assert (result.width, result.height) == (300, 400)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 3), (1, 300), (300, 1, 3), (40, 2000, 3)])
def test_tiny_and_thin_images_do_not_crash(ocr, shape):
    result = ocr.recognize(np.full(shape, 255, np.uint8))
    assert (result.height, result.width) == shape[:2]
    for line in result.lines:
        assert all(0 <= x <= shape[1] and 0 <= y <= shape[0] for x, y in line.box)


def test_grayscale_reads_like_rgb(ocr, page, page_result):
    gray = np.ascontiguousarray(page[..., 1])  # the page is black on white: all channels equal
    result = ocr.recognize(gray)
    assert result.text == page_result.text
    assert (result.width, result.height) == (page_result.width, page_result.height)


def test_name_format(ocr, page_result):
    kind, models = ocr.name.split("@")[0].split(":", 1)
    defaults = {"paddle": (DEFAULT_DET_MODEL, DEFAULT_REC_MODEL)}
    defaults["onnx"] = (ONNX_DET_MODEL, ONNX_REC_MODEL)
    assert models == "+".join(defaults[kind])
    assert re.fullmatch(
        r"paddle:[\w.-]+\+[\w.-]+|onnx:[\w.-]+\+[\w.-]+@(openvino|onnxruntime)", ocr.name
    )
    assert page_result.engine == ocr.name


@pytest.mark.parametrize("kind", ENGINES)
def test_closed_engine_raises(kind):
    with make(kind) as engine:
        engine.recognize(np.full((64, 64), 255, np.uint8))
    engine.close()  # twice is harmless
    with pytest.raises(OcrError, match="closed") as exc:
        engine.recognize(np.full((64, 64), 255, np.uint8))
    assert exc.value.code == "ocr.closed"


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


# --------------------------------------------------------------------------- ONNX models


def _onnx(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really onnx")
    return path


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    monkeypatch.delenv(BUNDLED_MODELS_ENV, raising=False)
    return monkeypatch


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


def test_resolve_model_checks_the_engine_and_name():
    with pytest.raises(OptionsError, match="engine"):
        resolve_model(ONNX_DET_MODEL, engine="tesseract")
    with pytest.raises(OptionsError):
        resolve_model("../x", engine="onnx")


# --------------------------------------------------------------------------- EngineConfig


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


def test_engine_classes_refuse_the_other_engines_config():
    with pytest.raises(OptionsError, match="onnx"):
        OnnxEngine(EngineConfig(engine="paddle", threads=1))
    with pytest.raises(OptionsError, match="paddle"):
        PaddleEngine(EngineConfig(engine="onnx", threads=1))


def test_onnx_engine_without_rapidocr_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # makes `import rapidocr` fail
    with pytest.raises(ModelError, match=re.escape("needs rapidocr")) as exc:
        OnnxEngine(EngineConfig(engine="onnx", threads=1))
    assert exc.value.code == "model.missing_dependency"
    assert "pip install rythmiq" in exc.value.message
