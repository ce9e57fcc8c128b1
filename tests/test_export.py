"""Searchable outputs: the text sidecar, hOCR and the PDF text layer, read back with pdfium."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pypdfium2 as pdfium
import pytest
from _helpers import PAGE_LINES, ScriptedEngine, render_page, text_layout
from PIL import Image

from rythmiq import InputError, OptionsError
from rythmiq.export import result_to_pdf, to_hocr, to_searchable_pdf, to_text
from rythmiq.ocr import OcrLine, OcrResult

W, H, DPI = 1700, 2200, 200.0
XHTML = "{http://www.w3.org/1999/xhtml}"


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _box(left: float, top: float, right: float, bottom: float) -> tuple:
    return ((left, top), (right, top), (right, bottom), (left, bottom))


def _page_ocr() -> OcrResult:
    """The rendered lines at the positions render_page drew them."""
    out = tuple(
        OcrLine(text, 0.5 + 0.05 * i, _box(*bbox)) for i, (text, bbox) in enumerate(text_layout())
    )
    return OcrResult(out, W, H, "test")


@pytest.fixture(scope="module")
def page_jpeg() -> bytes:
    return _jpeg(render_page(width=W, height=H))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _pdf_rect(bbox: tuple[float, float, float, float], dpi: float = DPI, pad: float = 1.0):
    """A pixel bbox as pdfium's (left, bottom, right, top) in points, y flipped."""
    s = 72.0 / dpi
    left, top, right, bottom = bbox
    page_h = H * s
    return left * s - pad, page_h - bottom * s - pad, right * s + pad, page_h - top * s + pad


# --------------------------------------------------------------------------- text


def test_text_sidecar_is_the_ocr_text():
    ocr = ScriptedEngine(lines=[(t, 0.9) for t in PAGE_LINES]).recognize(render_page())
    assert to_text(ocr) == ocr.text + "\n"
    assert to_text(ocr).splitlines() == PAGE_LINES
    assert to_text(OcrResult((), 10, 10)) == ""


# --------------------------------------------------------------------------- hOCR


def test_hocr_lines_bbox_and_confidence():
    ocr = _page_ocr()
    root = ET.fromstring(to_hocr([(ocr, "page-1.jpg")], title="scan <1>"))
    assert root.find(f"{XHTML}head/{XHTML}title").text == "scan <1>"
    metas = {m.get("name"): m.get("content") for m in root.iter(f"{XHTML}meta")}
    assert metas["ocr-system"].startswith("rythmiq ")
    assert "ocr_line" in metas["ocr-capabilities"]
    pages = [e for e in root.iter() if e.get("class") == "ocr_page"]
    assert len(pages) == 1
    assert 'image "page-1.jpg"' in pages[0].get("title")
    assert f"bbox 0 0 {W} {H}" in pages[0].get("title")
    lines = [e for e in root.iter() if e.get("class") == "ocr_line"]
    assert [e.text for e in lines] == PAGE_LINES
    for element, line in zip(lines, ocr.lines, strict=True):
        m = re.fullmatch(r"bbox (\d+) (\d+) (\d+) (\d+); x_wconf (\d+)", element.get("title"))
        assert m is not None
        assert [int(v) for v in m.groups()[:4]] == [round(v) for v in line.bbox]
        assert int(m.group(5)) == round(line.confidence * 100)


def test_hocr_escapes_markup_and_takes_one_result():
    bad = '<script>alert("x")</script> & co\x0c'
    ocr = OcrResult((OcrLine(bad, 1.0, _box(0, 0, 50, 10)),), 100, 20)
    doc = to_hocr(ocr)
    assert "<script>" not in doc
    root = ET.fromstring(doc)
    (line,) = [e for e in root.iter() if e.get("class") == "ocr_line"]
    assert line.text == '<script>alert("x")</script> & co'
    assert "x_wconf 100" in line.get("title")
    assert "image" not in next(e for e in root.iter() if e.get("class") == "ocr_page").get("title")


def test_hocr_multi_page():
    a, b = _page_ocr(), OcrResult((), 300, 400)
    root = ET.fromstring(to_hocr([(a, "a.jpg"), (b, None)]))
    pages = [e for e in root.iter() if e.get("class") == "ocr_page"]
    assert [("bbox 0 0 300 400" in p.get("title")) for p in pages] == [False, True]


@pytest.mark.parametrize("bad", [[], "x", [(1, None)], [(OcrResult((), 1, 1), 5)], None])
def test_hocr_bad_input(bad):
    with pytest.raises(OptionsError):
        to_hocr(bad)


# --------------------------------------------------------------------------- PDF


def test_pdf_round_trip_text_size_and_placement(page_jpeg):
    ocr = _page_ocr()
    data = to_searchable_pdf([(page_jpeg, ocr, DPI)])
    assert data.startswith(b"%PDF-")
    assert page_jpeg in data  # embedded as is, not re-encoded
    doc = pdfium.PdfDocument(data)
    try:
        assert len(doc) == 1
        page = doc[0]
        assert page.get_size() == pytest.approx((W / DPI * 72, H / DPI * 72), abs=0.01)
        textpage = page.get_textpage()
        text = _norm(textpage.get_text_range())
        for line in PAGE_LINES:
            assert line in text
        for line in ocr.lines:
            # Everything inside the line's box is that line, and nothing else.
            left, bottom, right, top = _pdf_rect(line.bbox)
            got = textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top)
            assert _norm(got) == line.text
            # The match of a search lies on the line's box, first to last character.
            searcher = textpage.search(line.text, match_case=True)
            index, count = searcher.get_next()
            first, last = textpage.get_charbox(index), textpage.get_charbox(index + count - 1)
            assert first[0] == pytest.approx(left + 1, abs=4)
            assert last[2] == pytest.approx(right - 1, abs=4)
            assert bottom - 2 <= min(first[1], last[1]) and max(first[3], last[3]) <= top + 2
    finally:
        doc.close()


def test_pdf_multi_page_and_dpi(page_jpeg):
    small = _jpeg(render_page(["second page"], width=600, height=800))
    ocr2 = OcrResult((OcrLine("second page", 0.8, _box(120, 128, 340, 168)),), 600, 800)
    doc = pdfium.PdfDocument(to_searchable_pdf([(page_jpeg, _page_ocr(), DPI), (small, ocr2, 100)]))
    try:
        assert len(doc) == 2
        assert doc[1].get_size() == pytest.approx((600 / 100 * 72, 800 / 100 * 72), abs=0.01)
        assert _norm(doc[1].get_textpage().get_text_range()) == "second page"
        assert "second page" not in doc[0].get_textpage().get_text_range()
    finally:
        doc.close()


def test_pdf_scales_boxes_when_result_size_differs(page_jpeg):
    half = tuple(OcrLine(t, 0.9, _box(*(v / 2 for v in bbox))) for t, bbox in text_layout()[:1])
    data = to_searchable_pdf([(page_jpeg, OcrResult(half, W // 2, H // 2), DPI)])
    doc = pdfium.PdfDocument(data)
    try:
        textpage = doc[0].get_textpage()
        left, bottom, right, top = _pdf_rect(text_layout()[0][1])
        got = textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top)
        assert _norm(got) == PAGE_LINES[0]
    finally:
        doc.close()


def test_pdf_unicode_text_is_searchable_or_replaced(page_jpeg):
    ocr = OcrResult((OcrLine("Überweisung Ωμέγα 東京", 0.9, _box(120, 128, 900, 168)),), W, H)
    doc = pdfium.PdfDocument(to_searchable_pdf([(page_jpeg, ocr, DPI)]))
    try:
        text = _norm(doc[0].get_textpage().get_text_range())
    finally:
        doc.close()
    assert text.startswith("Überweisung ")
    # CJK has no glyph in DejaVu Sans (and Greek none in the Latin-1 fallback): written as '?'.
    assert text.endswith("??")
    assert "Ωμέγα" in text or "?????" in text


def test_result_to_pdf(page_jpeg):
    from rythmiq import process

    engine = ScriptedEngine(lines=[("hello world", 0.9)])
    result = process(render_page(), engine=engine)
    doc = pdfium.PdfDocument(result_to_pdf(result))
    try:
        assert len(doc) == 1
        size = (
            result.image.width / result.image.dpi * 72,
            result.image.height / result.image.dpi * 72,
        )
        assert doc[0].get_size() == pytest.approx(size, abs=0.01)
        assert _norm(doc[0].get_textpage().get_text_range()) == "hello world"
    finally:
        doc.close()


@pytest.mark.parametrize(
    "bad",
    [
        [],
        b"not pages",
        [(b"x", None, 200)],
        [("str", OcrResult((), 1, 1), 200)],
        [(b"\xff\xd8", OcrResult((), 1, 1), 0)],
        [(b"\xff\xd8", OcrResult((), 1, 1), float("nan"))],
        [(b"\xff\xd8", OcrResult((), 1, 1), True)],
        [(b"\xff\xd8", OcrResult((), 1, 1))],
    ],
)
def test_pdf_bad_options(bad):
    with pytest.raises(OptionsError):
        to_searchable_pdf(bad)


def test_pdf_bad_image():
    ocr = OcrResult((), 1, 1)
    with pytest.raises(InputError, match=r"input\.unreadable"):
        to_searchable_pdf([(b"garbage", ocr, 200)])
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    with pytest.raises(InputError, match=r"input\.unsupported"):
        to_searchable_pdf([(png.getvalue(), ocr, 200)])


def test_result_to_pdf_bad_input():
    with pytest.raises(OptionsError):
        result_to_pdf(_page_ocr())


# ------------------------------------- hostile results: the writers never crash (issue 18, 9)


def _hostile_result() -> OcrResult:
    nan, inf = float("nan"), float("inf")
    lines = (
        OcrLine("lone \ud800 half\x00", 0.9, _box(10, 10, 300, 40)),
        OcrLine("nan box", 0.9, ((nan, 50), (300, 50), (300, 80), (10, 80))),
        OcrLine("inf box", 0.9, _box(10, 90, inf, 120)),
        OcrLine("huge box", nan, _box(-1e300, 130, 1e300, 1e300)),
    )
    return OcrResult(lines, 400, 300, "hostile")


def test_the_writers_write_a_hostile_result():
    ocr = _hostile_result()
    assert to_text(ocr).encode("utf-8") == "lone \ufffd half\ufffd\nhuge box\n".encode()
    root = ET.fromstring(to_hocr(ocr))
    spans = [e for e in root.iter() if e.get("class") == "ocr_line"]
    assert [e.text for e in spans] == ["lone \ufffd half\ufffd", "huge box"]
    assert spans[1].get("title") == "bbox 0 130 400 300; x_wconf 0"
    jpeg = _jpeg(np.full((300, 400, 3), 255, np.uint8))
    doc = pdfium.PdfDocument(to_searchable_pdf([(jpeg, ocr, 100.0)]))
    try:
        assert "huge box" in doc[0].get_textpage().get_text_range()
    finally:
        doc.close()


def test_the_writers_refuse_a_result_of_the_wrong_shape():
    from rythmiq import OcrError

    bad = OcrResult((OcrLine(None, 0.9, _box(0, 0, 1, 1)),), 10, 10)
    for write in (to_text, to_hocr, lambda r: to_searchable_pdf([(b"", r, 100.0)])):
        with pytest.raises(OcrError) as exc:
            write(bad)
        assert exc.value.code == "ocr.bad_output"


def test_hostile_results_through_the_writers():
    from _helpers import hostile_lines
    from hypothesis import HealthCheck, given, settings

    from rythmiq.ocr import checked_result

    jpeg = _jpeg(np.full((30, 50, 3), 200, np.uint8))

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(lines=hostile_lines())
    def run(lines):
        ocr = OcrResult(tuple(OcrLine(t, c, b) for t, c, b in lines), 50, 30, "x\ud800")
        checked = checked_result(ocr, source="test")
        for given_ in (ocr, checked):  # raw (the writers check it) and checked
            to_text(given_).encode("utf-8")
            ET.fromstring(to_hocr([(given_, "page \x1b.jpg")], title="t\x00"))
            assert to_searchable_pdf([(jpeg, given_, 72.0)]).startswith(b"%PDF-")

    run()
