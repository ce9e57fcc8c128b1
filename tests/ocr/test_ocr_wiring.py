"""The engine option through ProcessOptions, the payload, the CLI, process_many and the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _helpers import PAGE_LINES

import rythmiq
from rythmiq import OptionsError, PayloadError, ProcessOptions
from rythmiq.metrics import word_f1
from rythmiq.ocr import EngineConfig

pytest.importorskip("rapidocr", reason="rythmiq[onnx] is not installed")


def test_engine_option_reaches_the_engine_config():
    options = ProcessOptions(engine="onnx", threads=1)
    config = options.engine_config()
    assert config.engine == "onnx" and config.det_model is None
    resolved = config.resolved()
    assert resolved.det_model == "PP-OCRv6_det_small" and resolved.rec_model == "PP-OCRv6_rec_small"
    assert ProcessOptions().engine_config().resolved().det_model == "PP-OCRv6_det_small"
    paddle = ProcessOptions(engine="paddle").engine_config().resolved()
    assert paddle.det_model == "PP-OCRv5_mobile_det"
    assert ProcessOptions.from_dict(options.to_dict()) == options
    with pytest.raises(OptionsError):
        ProcessOptions(engine="tesseract")
    assert EngineConfig(engine="onnx", threads=1).resolved() == config.resolved()


def _payload(options):
    return {
        "version": 1,
        "job_id": "j",
        "user_id": "u",
        "document_id": "d",
        "input": "input/a.png",
        "output": "file:///tmp/x",
        "options": options,
    }


def test_payload_runtime_option():
    from rythmiq.payload import parse_payload

    parsed = parse_payload(json.dumps(_payload({"runtime": "onnxruntime"})))
    assert parsed.options.runtime == "onnxruntime"
    assert parse_payload(json.dumps(_payload({}))).options.engine == "onnx"
    for bad in ("tensorrt", 3):
        with pytest.raises(PayloadError):
            parse_payload(json.dumps(_payload({"runtime": bad})))
    with pytest.raises(PayloadError, match="runtime"):
        parse_payload(json.dumps(_payload({"engine": "paddle", "runtime": "openvino"})))


def test_payload_engine_option():
    from rythmiq.payload import parse_payload

    body = _payload({"engine": "onnx", "det_model": None})
    assert parse_payload(json.dumps(body)).options.engine == "onnx"
    body["options"]["engine"] = "tesseract"
    with pytest.raises(PayloadError):
        parse_payload(json.dumps(body))


@pytest.mark.integration
def test_process_with_the_onnx_engine_reads_the_page(page_png):
    result = rythmiq.process(page_png, options=ProcessOptions(engine="onnx", threads=1))
    assert result.ocr is not None and result.ocr.engine.startswith("onnx:PP-OCRv6_det_small")
    assert word_f1(result.ocr.text, "\n".join(PAGE_LINES)) >= 0.9
    assert result.pages[0].orientation is not None and result.pages[0].orientation.rotation == 0


@pytest.mark.integration
def test_cli_engine_onnx_json(page_png, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYTHMIQ_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    run = subprocess.run(
        [sys.executable, "-m", "rythmiq", "process", str(page_png), "--engine", "onnx", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["pages"][0]["ocr"]["engine"].startswith("onnx:")
    assert word_f1(result["text"], "\n".join(PAGE_LINES)) >= 0.9


@pytest.mark.integration
def test_process_many_workers_use_the_onnx_engine(page_png):
    data = page_png.read_bytes()
    options = ProcessOptions(engine="onnx", threads=1, rotate=False)
    items = list(rythmiq.process_many([data, data], options=options, workers=2, ordered=True))
    assert [i.ok for i in items] == [True, True]
    assert all(i.result is not None and i.result.ocr.engine.startswith("onnx:") for i in items)
