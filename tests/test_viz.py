"""rythmiq.viz.draw_ocr, the notebook HTML of results, and their short reprs."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from _helpers import ScriptedEngine, render_page
from PIL import Image

import rythmiq
from rythmiq import InputError, OcrLine, OcrResult, OptionsError, ProcessOptions, process
from rythmiq.viz import (
    COLOR_HIGH,
    COLOR_LOW,
    COLOR_MEDIUM,
    CONFIDENCE_HIGH,
    CONFIDENCE_LOW,
    confidence_color,
    draw_ocr,
)

EVIL = "<script>alert(1)</script> & co"
LINES = [("high line", 0.95), ("medium line", 0.65), (EVIL, 0.2)]
DATA_URI = re.compile(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def page_array():
    return render_page()


@pytest.fixture(scope="module")
def result(page_array):
    # 1700x2200 stays that size (no upscale into the A4 box); the preview is 791x1024.
    return process(page_array, engine=ScriptedEngine(lines=list(LINES)))


def box_line(text, conf, x0, y0, x1, y1):
    return OcrLine(text, conf, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def left_edge(im, ocr, i):
    """The pixel on the left edge of scripted line ``i``, at mid height, scaled to ``im``."""
    sx, sy = im.width / ocr.width, im.height / ocr.height
    return im.getpixel((round(10 * sx), round((25 + 40 * i) * sy)))


def test_confidence_colours_follow_the_documented_thresholds():
    assert confidence_color(0.0) == confidence_color(CONFIDENCE_LOW - 1e-9) == COLOR_LOW
    assert confidence_color(CONFIDENCE_LOW) == COLOR_MEDIUM
    assert confidence_color(CONFIDENCE_HIGH - 1e-9) == COLOR_MEDIUM
    assert confidence_color(CONFIDENCE_HIGH) == confidence_color(1.0) == COLOR_HIGH
    assert len({COLOR_LOW, COLOR_MEDIUM, COLOR_HIGH}) == 3


def test_draw_ocr_on_a_result_draws_on_the_preview_in_confidence_colours(result):
    im = draw_ocr(result)
    assert im.mode == "RGB"
    assert im.size == (result.preview.width, result.preview.height)
    assert [left_edge(im, result.ocr, i) for i in range(3)] == [COLOR_HIGH, COLOR_MEDIUM, COLOR_LOW]
    # Inside the first box (above the page's text) the paper is untouched.
    s = im.height / result.ocr.height
    inside = im.getpixel((im.width // 2, round(25 * s)))
    assert min(inside) > 200


def test_draw_ocr_scales_boxes_to_a_smaller_image(result):
    im = draw_ocr(result, max_size=512)
    assert max(im.size) == 512
    assert left_edge(im, result.ocr, 2) == COLOR_LOW
    # Where the low line's edge would sit had the boxes been drawn at preview scale: paper.
    s = result.preview.height / result.ocr.height
    assert min(im.getpixel((round(10 * s), round(105 * s)))) > 200


@pytest.mark.parametrize("gray", [False, True])
def test_draw_ocr_scales_boxes_on_an_array(gray):
    shape = (100, 200) if gray else (100, 200, 3)
    array = np.full(shape, 255, np.uint8)
    # Boxes refer to a 400x200 image; the array is half that size.
    ocr = OcrResult((box_line("x", 0.9, 40, 40, 360, 160),), 400, 200)
    im = draw_ocr(array, ocr)
    assert im.size == (200, 100) and im.mode == "RGB"
    assert im.getpixel((100, 20)) == COLOR_HIGH  # top edge, scaled
    assert im.getpixel((20, 50)) == COLOR_HIGH  # left edge, scaled
    assert im.getpixel((100, 40)) == (255, 255, 255)  # the unscaled top edge: nothing drawn
    assert im.getpixel((100, 50)) == (255, 255, 255)  # inside the box
    assert (array == 255).all()  # the input is not drawn on


def test_draw_ocr_max_size_takes_the_normalized_image_when_larger_than_the_preview(result):
    full = draw_ocr(result, max_size=5000)
    assert full.size == (result.image.width, result.image.height) == (1700, 2200)
    assert left_edge(full, result.ocr, 1) == COLOR_MEDIUM
    assert max(draw_ocr(result, max_size=2000).size) == 2000
    assert max(draw_ocr(result, max_size=300).size) == 300


def test_draw_ocr_accepts_pil_images_and_bytes_and_leaves_them_alone(result):
    preview = Image.open(io.BytesIO(result.preview.data))
    before = preview.tobytes()
    from_pil = draw_ocr(preview, result.ocr)
    from_bytes = draw_ocr(result.preview.data, result.ocr)
    assert preview.tobytes() == before
    assert from_pil.size == from_bytes.size == preview.size
    assert left_edge(from_pil, result.ocr, 0) == left_edge(from_bytes, result.ocr, 0) == COLOR_HIGH
    assert draw_ocr(bytearray(result.preview.data)).size == preview.size
    # Without OCR the image comes back as it is.
    plain = draw_ocr(preview.convert("RGB"))
    assert plain.tobytes() == preview.convert("RGB").tobytes()


def test_draw_ocr_on_a_result_without_ocr_draws_nothing(page_array):
    r = process(page_array, options=ProcessOptions(ocr=False, preview_size=256))
    im = draw_ocr(r)
    assert im.tobytes() == Image.open(io.BytesIO(r.preview.data)).convert("RGB").tobytes()


@pytest.mark.parametrize("bad", ["scan.jpg", 42, None, [1, 2, 3], 1.5])
def test_draw_ocr_rejects_wrong_image_types(bad):
    with pytest.raises(OptionsError, match="result_or_image must be"):
        draw_ocr(bad)


def test_draw_ocr_rejects_wrong_ocr_and_max_size(result):
    with pytest.raises(OptionsError, match="ocr must be an OcrResult"):
        draw_ocr(result, "some text")
    with pytest.raises(OptionsError, match="ocr must be an OcrResult"):
        draw_ocr(result, result.ocr.lines)
    for bad in (0, 15, -1, True, 1.5, "480"):
        with pytest.raises(OptionsError, match="max_size"):
            draw_ocr(result, max_size=bad)


def test_draw_ocr_bad_image_data_raises_input_error():
    with pytest.raises(InputError):
        draw_ocr(b"%PDF-1.7 not an image")
    with pytest.raises(InputError):
        draw_ocr(b"")
    with pytest.raises(InputError, match="uint8"):
        draw_ocr(np.zeros((10, 10), np.float32))


def thumbnail(html):
    match = DATA_URI.search(html)
    assert match, "no inline JPEG thumbnail"
    data = base64.b64decode(match.group(1), validate=True)
    return data, Image.open(io.BytesIO(data))


def test_result_html_has_a_small_inline_thumbnail(result):
    html = result._repr_html_()
    data, im = thumbnail(html)
    assert im.format == "JPEG"
    assert max(im.size) == 480
    assert len(data) < 100_000
    assert len(html) < 150_000
    assert html.startswith("<div") and html.endswith("</div>")
    # The thumbnail carries the OCR boxes: a red box edge for the low-confidence line.
    r, g, b = im.convert("RGB").getpixel(
        (round(10 * im.width / 1700), round(105 * im.height / 2200))
    )
    assert r > 150 and g < 110 and b < 110


def test_result_html_shows_quality_image_ocr_and_timings(result):
    html = result._repr_html_()
    assert "PASS" in html and "FAIL" not in html
    assert "threshold 0.80" in html
    for metric in ("sharpness", "exposure", "tile Laplacian variance", "dynamic range"):
        assert metric in html
    assert "1700&times;2200" in html and "300 dpi" in html and "JPEG quality 90" in html
    assert "3 lines" in html and "0.60" in html  # mean of 0.95, 0.65, 0.2
    assert "high line" in html and "medium line" in html
    for stage in ("load", "quality", "normalize", "ocr", "total"):
        assert f">{stage}<" in html
    assert "wall s" in html and "CPU s" in html
    assert "<script" not in html.lower()


def test_html_escapes_untrusted_text(result):
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
    for html in (result._repr_html_(), result.ocr._repr_html_()):
        assert escaped in html
        assert "<script" not in html.lower()
        assert "& co" not in html
    ocr = OcrResult(result.ocr.lines, 10, 10, engine='<img src=x onerror="alert(1)">')
    assert "<img" not in ocr._repr_html_()
    report = replace(result.quality, reasons=("<b>blurry</b>",))
    assert "&lt;b&gt;blurry&lt;/b&gt;" in report._repr_html_()


def test_failing_result_html_says_fail_against_its_threshold(page_array):
    r = process(
        page_array,
        options=ProcessOptions(threshold=0.99, preview_size=256),
        engine=ScriptedEngine(),
    )
    assert not r.quality.passed
    html = r._repr_html_()
    assert "FAIL" in html and "PASS" not in html
    assert "threshold 0.99" in html


@pytest.mark.parametrize(
    ("options", "reason", "why"),
    [
        (ProcessOptions(ocr=False), "disabled", "turned off"),
        (
            ProcessOptions(threshold=0.99, on_quality_fail="skip_ocr"),
            "quality",
            "quality check failed",
        ),
    ],
)
def test_result_html_without_ocr_says_why(page_array, options, reason, why):
    r = process(page_array, options=replace(options, preview_size=256), engine=ScriptedEngine())
    assert r.ocr is None and r.ocr_skipped_reason == reason
    html = r._repr_html_()
    assert "OCR: skipped" in html and why in html
    thumbnail(html)  # still shows the page
    assert f"skipped ({reason})" in repr(r)


def test_quality_report_html_has_bars_and_no_image(result):
    html = result.quality._repr_html_()
    assert "PASS" in html and "threshold 0.80" in html
    assert "<img" not in html
    # One bar per metric: score, sharpness, exposure and the raw metrics.
    assert html.count("position:relative;width:160px") >= 12
    assert "Reasons: <b>none</b>" in html


def test_ocr_result_html_table_is_capped():
    lines = tuple(
        box_line(f"line {i}", 0.3 if i % 2 else 0.9, 0, i * 10, 100, i * 10 + 8) for i in range(250)
    )
    html = OcrResult(lines, 100, 2600, "scripted")._repr_html_()
    assert html.count("<tr") == 1 + 200
    assert "line 199" in html and "line 200" not in html
    assert "50 more lines" in html
    assert "250 lines" in html and "0.60" in html
    r, g, b = COLOR_LOW
    assert f"rgb({r},{g},{b})" in html
    assert "No text found" in OcrResult((), 10, 10)._repr_html_()


def test_reprs_are_short_and_free_of_bytes(result):
    texts = [repr(result), repr(result.image), repr(result.preview), repr(result.ocr)]
    for text in texts:
        assert len(text) < 200, text
        assert "b'" not in text and "\\x" not in text
    assert repr(result).startswith("ProcessResult(quality=0.9") and "PASS" in repr(result)
    assert "1700x2200 @300dpi" in repr(result) and "ocr=3 lines" in repr(result)
    assert re.fullmatch(r"Preview\(791x1024, \d+ KiB\)", repr(result.preview))
    assert re.fullmatch(
        r"NormalizedImage\(1700x2200 @300dpi, JPEG q90, \d+ KiB\)", repr(result.image)
    )
    assert repr(result.ocr).startswith("OcrResult(3 lines, confidence=0.60, 1700x2200")
    long_engine = OcrResult((), 1, 1, engine="e" * 500)
    assert len(repr(long_engine)) < 200


def test_viz_imports_and_results_stay_lazy():
    assert rythmiq.viz.draw_ocr is draw_ocr
    code = (
        "import json, sys, rythmiq.pipeline; "
        "print(json.dumps([m for m in ('rythmiq._html', 'rythmiq.viz', 'PIL.ImageDraw') "
        "if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
