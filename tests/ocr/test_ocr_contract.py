"""One contract for every OCR engine (PaddleOCR and ONNX).

The contract tests run the real models (marked ``integration``); the ONNX half skips when
rapidocr is not installed.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from _helpers import PAGE_LINES, iou, needs_paddle, needs_rapidocr, text_layout

from rythmiq import OcrError, OptionsError
from rythmiq.metrics import word_f1
from rythmiq.ocr import (
    DEFAULT_DET_MODEL,
    DEFAULT_REC_MODEL,
    ONNX_DET_MODEL,
    ONNX_REC_MODEL,
    EngineConfig,
    OcrEngine,
    OcrLine,
    OcrResult,
    OnnxEngine,
    PaddleEngine,
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


def test_engine_classes_refuse_the_other_engines_config():
    with pytest.raises(OptionsError, match="onnx"):
        OnnxEngine(EngineConfig(engine="paddle", threads=1))
    with pytest.raises(OptionsError, match="paddle"):
        PaddleEngine(EngineConfig(engine="onnx", threads=1))
