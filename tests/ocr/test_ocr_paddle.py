"""Real PaddleOCR with the bundled PP-OCRv5 weights (marked `integration`; CI runs it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from _helpers import DEV, PAGE_LINES, dev_rows, iou, needs_paddle, render_page, text_layout
from PIL import Image

from rythmiq import ProcessOptions, process
from rythmiq.metrics import word_f1
from rythmiq.ocr import (
    EngineConfig,
    PaddleEngine,
    clear_engine_cache,
    default_engine,
)

pytestmark = [pytest.mark.integration, needs_paddle]


@pytest.fixture(scope="module")
def paddle():
    with PaddleEngine(EngineConfig(engine="paddle")) as engine:
        yield engine


def test_rendered_page_text_and_boxes(paddle, page):
    result = paddle.recognize(page)
    truth = "\n".join(PAGE_LINES)
    assert word_f1(result.text, truth) >= 0.95, result.text
    assert result.text.splitlines()[0].startswith("Quarterly")  # reading order
    assert (result.width, result.height) == (page.shape[1], page.shape[0])
    assert 0.8 <= result.confidence <= 1.0
    # Every drawn line is found where it was drawn.
    for text, drawn in text_layout():
        best = max(result.lines, key=lambda ln: iou(ln.bbox, drawn))
        assert iou(best.bbox, drawn) >= 0.5, (text, best)
        assert word_f1(best.text, text) >= 0.8


def test_grayscale_input_reads_the_same(paddle, page):
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    assert word_f1(paddle.recognize(gray).text, "\n".join(PAGE_LINES)) >= 0.95


def test_blank_page_gives_empty_result(paddle):
    result = paddle.recognize(np.full((400, 300, 3), 255, np.uint8))
    assert result.lines == () and result.text == "" and result.confidence == 0.0


def test_process_end_to_end_with_default_engine(tmp_path):
    clear_engine_cache()
    src = tmp_path / "page.jpg"
    Image.fromarray(render_page()).save(src, "JPEG", quality=90)
    # Force a resize so the boxes must refer to the normalized image.
    options = ProcessOptions(box=(1275, 1650))
    result = process(src, options=options)
    assert result.quality.passed
    assert (result.image.width, result.image.height) == (1275, 1650)
    assert word_f1(result.ocr.text, "\n".join(PAGE_LINES)) >= 0.95
    scale = 1275 / 1700
    for text, drawn in text_layout():
        drawn = tuple(v * scale for v in drawn)
        assert max(iou(ln.bbox, drawn) for ln in result.ocr.lines) >= 0.5, text
    # The default engine is cached per configuration and clearable.
    engine = default_engine(options.engine_config())
    assert default_engine(options.engine_config()) is engine
    clear_engine_cache()
    assert default_engine(options.engine_config()) is not engine
    clear_engine_cache()


def test_closed_engine_refuses_work():
    from rythmiq import OcrError

    engine = PaddleEngine(EngineConfig(engine="paddle", threads=1))
    engine.close()
    engine.close()
    with pytest.raises(OcrError, match="closed"):
        engine.recognize(np.zeros((50, 50), np.uint8))


def _engine_error_in_a_fresh_process(model_field: str, name: str) -> dict:
    """The ``ModelError`` dict of ``PaddleEngine`` built with ``model_field=name`` in a fresh
    process without the hub check disabled (offline, PaddleOCR finds no hub)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_PDX", "RYTHMIQ"))}
    code = (
        "from rythmiq.ocr import PaddleEngine, EngineConfig\n"
        "from rythmiq import ModelError\n"
        "import json\n"
        "try:\n"
        f"    PaddleEngine(EngineConfig(engine='paddle', {model_field}={name!r}, threads=1))\n"
        "except ModelError as e:\n"
        "    print(json.dumps(e.to_dict()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_model_that_needs_a_hub_fails_with_a_hint():
    err = _engine_error_in_a_fresh_process("det_model", "PP-OCRv5_server_det")
    assert err["code"] == "model.load_failed"
    assert "RYTHMIQ_MODEL_DIR" in err["message"] and err["exit_code"] == 6


@pytest.mark.parametrize("field", ["det_model", "rec_model"])
def test_a_model_paddleocr_does_not_know_is_named_as_unknown(field):
    # A known model that needs the hub is "load_failed, offline?" (above); a name PaddleOCR
    # has never heard of was blamed on the network too. Now it is named, and no hub is tried.
    err = _engine_error_in_a_fresh_process(field, "PP-OCRv9_nonesuch")
    assert err["code"] == "model.not_found", err
    assert err["message"].startswith("unknown model 'PP-OCRv9_nonesuch': PaddleOCR has no model")
    assert "download" in err["message"] and "offline" not in err["message"]


@pytest.mark.devdata
def test_dev_receipt_matches_raw_paddleocr(paddle):
    row = next(r for r in dev_rows("ocr") if r["image"] == "sroie_181.jpg")
    path = DEV / "ocr" / row["image"]
    ours = process(path, engine=paddle)
    bgr = cv2.imread(str(path))
    raw = paddle._ocr.predict(bgr)[0]
    raw_f1 = word_f1("\n".join(raw["rec_texts"]), row["text"])
    our_f1 = word_f1(ours.ocr.text, row["text"])
    assert our_f1 >= 0.85
    assert abs(our_f1 - raw_f1) <= 0.03, (our_f1, raw_f1)


def test_jpeg_bytes_of_result_decode(tmp_path, paddle):
    result = process(render_page(), engine=paddle, options=ProcessOptions(max_bytes=150_000))
    assert len(result.image.data) <= 150_000
    im = Image.open(io.BytesIO(result.image.data))
    assert im.size == (result.image.width, result.image.height)
