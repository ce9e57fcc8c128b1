"""process() end to end with a scripted engine: no model, real loading/quality/normalize."""

from __future__ import annotations

import io
import json
import logging

import cv2
import numpy as np
import pytest
from _helpers import ScriptedEngine
from PIL import Image

from rythmiq import InputError, OptionsError, ProcessOptions, ProcessResult, process


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=92, **kw)
    return buf.getvalue()


def test_process_path_end_to_end(page, engine, tmp_path):
    src = tmp_path / "page.jpg"
    src.write_bytes(jpeg_bytes(page, dpi=(200, 200)))
    # rotate=False: orientation detection would also show the engine line crops.
    result = process(src, options=ProcessOptions(rotate=False), engine=engine)
    assert isinstance(result, ProcessResult)
    assert result.page_count == 1 and result.passed
    assert result.quality.passed
    assert result.ocr is not None and result.ocr.text == "hello world"
    # OCR saw the normalized pixels, once, at the normalized size.
    assert engine.calls == [(result.image.height, result.image.width, 3)]
    assert result.image.dpi == 200 and result.image.dpi_source == "metadata"
    decoded = Image.open(io.BytesIO(result.image.data))
    assert decoded.size == (result.image.width, result.image.height)
    assert decoded.info["dpi"] == pytest.approx((200, 200), abs=0.5)
    assert max(Image.open(io.BytesIO(result.preview.data)).size) <= 1024


def test_to_dict_is_json_safe_and_has_no_bytes(page, engine):
    result = process(page, engine=engine)
    d = result.to_dict()
    text = json.dumps(d)  # no default=: numpy scalars or bytes would fail here
    assert json.loads(text) == d
    assert d["page_count"] == 1 and len(d["pages"]) == 1
    assert d["passed"] is result.passed and d["text"] == result.text == "hello world"
    assert d["min_quality"] == result.quality.score
    assert not {"quality", "image", "preview", "ocr"} & set(d)  # per page now
    page0 = d["pages"][0]
    assert page0["index"] == 0
    assert page0["image"]["bytes"] == len(result.image.data)
    assert len(page0["image"]["sha256"]) == 64
    assert page0["quality"]["score"] == result.quality.score
    assert page0["ocr"]["text"] == "hello world"
    stages = {"load", "quality", "engine", "orient", "normalize", "ocr", "total"}
    assert set(d["timings"]) == stages and set(page0["timings"]) == stages
    assert json.loads(result.to_json()) == d

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (str, int, float, bool), type(x)

    walk(d)


def test_timings_are_consistent(page, engine):
    t = process(page, engine=engine).timings
    stages = [t.load, t.quality, t.normalize, t.ocr]
    assert all(s.wall_s >= 0 and s.cpu_s >= 0 for s in stages)
    assert t.total.wall_s >= sum(s.wall_s for s in stages) * 0.99


def test_box_resize_is_exact_and_boxes_refer_to_normalized_image(page, engine):
    opts = ProcessOptions(box=(600, 800), rotate=False)
    result = process(page, options=opts, engine=engine)
    assert (result.image.width, result.image.height) == (600, 776)
    assert "resized" in result.image.corrections
    assert engine.calls == [(776, 600, 3)]
    assert result.ocr.width == 600 and result.ocr.height == 776


def test_dpi_inferred_from_a4_page_when_missing(page, engine):
    # 1700x2200 has Letter's aspect, not A4's: falls back to the default.
    r = process(page, engine=engine)
    assert (r.image.dpi_source, r.image.dpi) == ("default", 300)
    a4 = cv2.resize(page, (1654, 2339))
    r = process(a4, engine=engine)
    assert r.image.dpi_source == "inferred" and r.image.dpi == pytest.approx(200, abs=0.5)
    assert "dpi_inferred" in r.image.corrections


def test_the_log_says_why_a_page_got_its_dpi(page, engine, caplog):
    with caplog.at_level(logging.DEBUG, logger="rythmiq.pipeline"):
        process(page, engine=engine)
        process(cv2.resize(page, (1654, 2339)), engine=engine)
    lines = [r.getMessage() for r in caplog.records if r.name == "rythmiq.pipeline"]
    assert lines == [
        "page 0: 300 dpi, default (no DPI in the file)",
        "page 0: 200.1 dpi, inferred (no DPI in the file; a4 page assumed)",
    ]


def test_the_log_says_why_a_pdf_page_was_rendered_at_its_dpi(engine, caplog):
    from _helpers import text_pdf

    with caplog.at_level(logging.DEBUG, logger="rythmiq.pipeline"):
        process(text_pdf(1), engine=engine, options=ProcessOptions(pdf_dpi=150))
    lines = [r.getMessage() for r in caplog.records if r.name == "rythmiq.pipeline"]
    assert "page 0: rendered at 150 dpi (default)" in lines


def test_byte_budget(page, engine):
    noisy = np.clip(
        page.astype(np.int16) + np.random.default_rng(0).normal(0, 12, page.shape), 0, 255
    )
    r = process(noisy.astype(np.uint8), options=ProcessOptions(max_bytes=300_000), engine=engine)
    assert len(r.image.data) <= 300_000
    assert r.image.fits_budget and r.image.encodes <= 8


def test_quality_policy(page):
    blurred = cv2.GaussianBlur(page, (0, 0), 8)
    eng = ScriptedEngine()
    r = process(blurred, options=ProcessOptions(on_quality_fail="skip_ocr"), engine=eng)
    assert not r.quality.passed
    assert r.ocr is None and r.ocr_skipped_reason == "quality" and eng.calls == []
    r = process(blurred, engine=eng)  # default: continue and flag
    assert not r.quality.passed and r.ocr is not None


def test_ocr_off_never_loads_an_engine(page):
    r = process(page, options=ProcessOptions(ocr=False))
    assert r.ocr is None and r.ocr_skipped_reason == "disabled"
    assert r.timings.ocr.wall_s == 0


def test_grayscale_and_bytes_sources(page, engine):
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    r = process(gray, engine=engine)
    assert engine.calls[-1] == (r.image.height, r.image.width)
    data = jpeg_bytes(page)
    r2 = process(data, engine=engine)
    import hashlib

    assert r2.source_sha256 == hashlib.sha256(data).hexdigest()


def test_bad_inputs_raise_typed_errors(tmp_path, engine):
    with pytest.raises(InputError) as exc:
        process(tmp_path / "missing.jpg", engine=engine)
    assert exc.value.code == "input.not_found"
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="text file"):
        process(bad, engine=engine)
    with pytest.raises(InputError):
        process(np.zeros((10, 10), np.float64), engine=engine)
    assert engine.calls == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 2},
        {"on_quality_fail": "panic"},
        {"box": (0, 10)},
        {"max_bytes": 10},
        {"jpeg_quality": 101},
        {"threads": 0},
        {"assumed_page": "tabloid"},
        {"target_dpi": 5},
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(OptionsError):
        ProcessOptions(**kwargs)


WRONG_TYPES = {
    "threshold": ("0.8", "threshold must be a number, got '0.8' (str)"),
    "box": ((100, "x"), "box must be a tuple of 2 (an integer, an integer) or None"),
    "upscale": ("yes", "upscale must be True or False, got 'yes' (str)"),
    "target_dpi": ("300", "target_dpi must be a number or None"),
    "assumed_page": (4, "assumed_page must be one of 'a4', 'letter', 'legal', 'a5' or None"),
    "max_bytes": (2048.0, "max_bytes must be an integer or None, got 2048.0 (float)"),
    "jpeg_quality": (True, "jpeg_quality must be an integer, got True (bool)"),
    "preview_size": ("big", "preview_size must be an integer"),
    "ocr": (None, "ocr must be True or False, got None (NoneType)"),
    "engine": (3, "engine must be one of 'onnx', 'paddle', got 3 (int)"),
    "det_model": (b"det", "det_model must be a string or None"),
    "outputs": ("txt", "outputs must be a tuple of one of 'txt', 'hocr', 'pdf' items"),
    "runtime": (["auto"], "runtime must be one of 'auto', 'openvino', 'onnxruntime'"),
    "encrypt": (True, "encrypt must be one of 'master', 'all', 'all+preview'"),
    "pdf_dpi": ("300", "pdf_dpi must be"),
}


@pytest.mark.parametrize("name", list(WRONG_TYPES))
def test_a_value_of_the_wrong_type_is_an_options_error(name):
    # It was a bare TypeError (comparing '0.8' with 0.0) or, for some, accepted.
    value, message = WRONG_TYPES[name]
    with pytest.raises(OptionsError) as info:
        ProcessOptions(**{name: value})
    assert info.value.code == "options.invalid"
    assert info.value.message.startswith(message), info.value.message


def test_the_type_check_keeps_what_the_options_always_took():
    # An int where a float goes, a list for a tuple (from JSON), 1e8 for a limit.
    o = ProcessOptions(threshold=1, box=[100, 200], outputs=["txt", "pdf"], max_pixels=1e8)
    assert (o.box, o.outputs, o.max_pixels) == ((100, 200), ("txt", "pdf"), 100_000_000)
    # Which value of a Literal is allowed stays the option's own check, with its message.
    with pytest.raises(OptionsError, match="unknown output"):
        ProcessOptions(outputs=("doc",))
    with pytest.raises(OptionsError, match="tesseract"):
        ProcessOptions(engine="tesseract")  # type: ignore[arg-type]


def test_options_round_trip_and_reject_unknown():
    o = ProcessOptions(box=(100, 200), max_bytes=50_000)
    assert ProcessOptions.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    with pytest.raises(OptionsError, match="colour"):
        ProcessOptions.from_dict({"colour": 1})


def test_exif_orientation_is_applied(engine):
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, :100] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", exif=exif)
    r = process(buf.getvalue(), options=ProcessOptions(ocr=False))
    assert (r.image.width, r.image.height) == (100, 300)
    assert r.image.orientation == 6 and "exif_orientation" in r.image.corrections


def test_budget_too_small_for_min_quality_downscales(page, engine):
    noise = np.random.default_rng(1).normal(0, 20, page.shape)
    noisy = np.clip(page.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    opts = ProcessOptions(max_bytes=40_000, rotate=False)
    r = process(noisy, options=opts, engine=engine)
    assert "budget_downscaled" in r.image.corrections
    assert len(r.image.data) <= 40_000 and r.image.fits_budget
    assert r.image.width < page.shape[1]
    # OCR and the preview used the same, downscaled pixels that were encoded.
    assert engine.calls == [(r.image.height, r.image.width, 3)]
    assert Image.open(io.BytesIO(r.image.data)).size == (r.image.width, r.image.height)
    assert r.image.dpi < 300


# ------------------------------------- what an engine returns is checked once (issue 18, 9)

NAN, INF = float("nan"), float("inf")


def _stored_outputs(tmp_path, engine, pixels, **options):
    """process() into a local store with every output; the text, hOCR and PDF written."""
    from rythmiq import Ids, Store
    from rythmiq.keyring import Keyring

    store = Store.open(str(tmp_path))
    opts = ProcessOptions(outputs=("txt", "hocr", "pdf"), **options)
    result = process(
        pixels, options=opts, engine=engine, store=store, ids=Ids("u", "j", "d"),
        keyring=Keyring.generate("k"),
    )  # fmt: skip
    keys = {a.kind: a.key for a in result.artifacts}
    return result, {kind: store.read(keys[kind]) for kind in ("text", "hocr", "pdf")}


def test_a_hostile_engine_cannot_crash_the_writers(tmp_path):
    import xml.etree.ElementTree as ET

    from _helpers import HostileEngine, quad

    engine = HostileEngine(
        lines=[
            ("lone \ud800 surrogate\x00", 0.9, quad(2, 2, 60, 12)),
            ("nan box", 0.9, ((NAN, 2), (60, 2), (60, 12), (2, 12))),
            ("inf box", 0.9, quad(2, 20, INF, 30)),
            ("huge box", NAN, quad(-1e300, 30, 1e300, 1e300)),
        ]
    )
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    result, out = _stored_outputs(tmp_path, engine, pixels, rotate=False)
    assert [ln.text for ln in result.ocr.lines] == ["lone \ufffd surrogate\ufffd", "huge box"]
    assert result.ocr.lines[1].confidence == 0.0
    assert result.ocr.lines[1].bbox == (0.0, 30.0, 64.0, 48.0)  # clipped to the image
    assert out["text"].decode("utf-8") == "lone \ufffd surrogate\ufffd\nhuge box"
    ET.fromstring(out["hocr"])
    assert out["pdf"].startswith(b"%PDF-")


@pytest.mark.parametrize("rotate", [False, True])
def test_an_engine_answer_that_is_no_result_is_ocr_bad_output(page, rotate):
    from _helpers import HostileEngine

    from rythmiq import OcrError

    with pytest.raises(OcrError) as exc:
        process(page, options=ProcessOptions(rotate=rotate), engine=HostileEngine(answer=[]))
    assert exc.value.code == "ocr.bad_output"
    assert "'hostile'" in exc.value.message and "list, not an OcrResult" in exc.value.message


class _LineReader:
    """An engine with ``read_lines`` (as the onnx engine has), answering with ``read``."""

    name = "line-reader"

    def __init__(self, read):
        self.read = read

    def recognize(self, image):
        from rythmiq.ocr import OcrResult

        return OcrResult((), image.shape[1], image.shape[0], self.name)

    def read_lines(self, images):
        return self.read(images)

    def close(self) -> None:
        pass


def test_what_read_lines_returns_is_checked_too(page):
    from rythmiq import OcrError

    # One pair too few: orientation would pair crops and readings wrongly.
    short = _LineReader(lambda images: [("x", 0.9)] * (len(images) - 1))
    with pytest.raises(OcrError) as exc:
        process(page, engine=short)
    assert exc.value.code == "ocr.bad_output" and "'line-reader'" in exc.value.message
    # Text and confidence that cannot be used as they are are made usable.
    odd = _LineReader(lambda images: [("\ud800abc\x00", NAN)] * len(images))
    assert process(page, engine=odd).pages[0].orientation.rotation == 0


@pytest.mark.parametrize("engine", ["onnx", object(), ScriptedEngine])
def test_an_object_that_is_no_engine_is_refused(page, engine):
    with pytest.raises(OptionsError, match="engine must be an OcrEngine"):
        process(page, engine=engine)


def test_hostile_ocr_results_through_process_are_stored(tmp_path_factory):
    import xml.etree.ElementTree as ET

    from _helpers import HostileEngine, hostile_lines
    from hypothesis import HealthCheck, given, settings

    pixels = np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(lines=hostile_lines())
    def run(lines):
        folder = tmp_path_factory.mktemp("store")
        result, out = _stored_outputs(folder, HostileEngine(lines=lines), pixels, rotate=False)
        for line in result.ocr.lines:
            assert 0.0 <= line.confidence <= 1.0 and "\x00" not in line.text
            assert all(0 <= x <= 56 and 0 <= y <= 40 for x, y in line.box)
        out["text"].decode("utf-8")
        ET.fromstring(out["hocr"])
        assert out["pdf"].startswith(b"%PDF-")

    run()
