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


# ------------------------------------------- checked_result: what an engine returns (issue 18)


def test_checked_result_cleans_text_and_keeps_what_is_sound():
    from rythmiq.ocr import checked_result, clean_text

    sound = line("plain \x07 text\twith controls", 0, 0, 5, 5, 0.5)
    pair = OcrLine("\ud83d\ude00 \ud800 lone\x00", 1.0, sound.box)  # a UTF-16 pair, a lone half
    out = checked_result(OcrResult((sound, pair), 10, 10, "e\udcff"), source="test")
    assert [ln.text for ln in out.lines] == [
        "plain \x07 text\twith controls",
        "😀 \ufffd lone\ufffd",
    ]
    assert out.engine == "e\ufffd" and out.lines[0] == sound
    for ln in out.lines:
        ln.text.encode("utf-8")  # every writer can store it
    assert checked_result(out, source="test") == out  # idempotent
    assert clean_text("ok") == "ok"


def test_checked_result_clamps_confidence_and_clips_or_drops_boxes(caplog):
    from rythmiq.ocr import checked_result

    nan, inf = float("nan"), float("inf")
    lines = (
        OcrLine("nan conf", nan, line("", 0, 0, 5, 5).box),
        OcrLine("big conf", 7, line("", 0, 0, 5, 5).box),
        OcrLine("huge box", -1.5, ((-1e308, -5), (1e308, 0), (10**30, 1e300), (0, 1e300))),
        OcrLine("nan box", 0.9, ((nan, 0), (5, 0), (5, 5), (0, 5))),
        OcrLine("inf box", 0.9, ((0, 0), (inf, 0), (5, 5), (0, 5))),
        OcrLine("int overflow", 0.9, ((0, 0), (10**400, 0), (5, 5), (0, 5))),
    )
    with caplog.at_level("WARNING", logger="rythmiq.ocr"):
        out = checked_result(OcrResult(lines, 40, 20), source="test")
    assert [(ln.text, ln.confidence) for ln in out.lines] == [
        ("nan conf", 0.0),
        ("big conf", 1.0),
        ("huge box", 0.0),
    ]
    assert out.lines[2].box == ((0.0, 0.0), (40.0, 0.0), (40.0, 20.0), (0.0, 20.0))
    assert "dropped 3 line(s)" in caplog.text


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"text": "x"}, "dict, not an OcrResult"),
        (None, "NoneType, not an OcrResult"),
        (OcrResult((), 0, 10), "width must be a positive integer"),
        (OcrResult((), 10.0, 10), "width must be a positive integer"),
        (OcrResult((), 10, True), "height must be a positive integer"),
        (OcrResult((), 10, 10, engine=3), "engine is int"),
        (OcrResult("abc", 10, 10), "lines is str"),
        (OcrResult(("abc",), 10, 10), "line 1 is str, not an OcrLine"),
        (OcrResult((OcrLine(b"x", 1.0, line("", 0, 0, 1, 1).box),), 10, 10), "text is bytes"),
        (OcrResult((OcrLine("x", "0.9", line("", 0, 0, 1, 1).box),), 10, 10), "confidence is str"),
        (OcrResult((OcrLine("x", 0.9, ((0, 0), (1, 1))),), 10, 10), "box has 2 items, not 4"),
        (OcrResult((OcrLine("x", 0.9, "abcd"),), 10, 10), "box is str"),
        (OcrResult((OcrLine("x", 0.9, ((0, 0, 0),) * 4),), 10, 10), "has 3 items, not 2"),
    ],
)
def test_checked_result_refuses_what_is_no_result(answer, says):
    from rythmiq import OcrError
    from rythmiq.ocr import checked_result

    with pytest.raises(OcrError) as exc:
        checked_result(answer, source="the OCR engine 'x'")
    assert exc.value.code == "ocr.bad_output"
    assert "the OCR engine 'x'" in exc.value.message and says in exc.value.message


def test_checked_result_takes_numpy_numbers_and_checks_the_image_size():
    import numpy as np

    from rythmiq import OcrError
    from rythmiq.ocr import checked_result

    box = np.array([[0, 0], [5, 0], [5, 5], [0, 5]], dtype=np.float32)
    r = OcrResult((OcrLine("x", np.float32(0.5), box),), np.int64(10), np.int64(20))
    out = checked_result(r, source="t", size=(10, 20))
    assert out.width == 10 and type(out.width) is int
    assert out.lines[0].box == ((0.0, 0.0), (5.0, 0.0), (5.0, 5.0), (0.0, 5.0))
    with pytest.raises(OcrError, match="for a 10x20 image, given 20x10"):
        checked_result(r, source="t", size=(20, 10))
