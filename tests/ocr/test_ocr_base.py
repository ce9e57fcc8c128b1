"""rythmiq.ocr.base: the result types and the reading order (no model)."""

from __future__ import annotations

import pytest

from rythmiq.ocr import OcrLine, OcrResult, sort_reading_order


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
