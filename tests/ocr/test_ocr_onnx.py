"""rythmiq.ocr.onnx: the default engine's runtimes and threads, the content crop, the width
padding and recognition of cut-out lines."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from _helpers import PAGE_LINES, needs_rapidocr
from PIL import Image, ImageDraw, ImageFont

import rythmiq
from rythmiq import ModelError
from rythmiq.metrics import word_f1
from rythmiq.ocr import REC_WIDTH_STEP, EngineConfig, OnnxEngine, content_box

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("openvino", "onnxruntime")}


RUNTIME_PARAMS = [
    pytest.param(
        r,
        marks=[
            needs_rapidocr,
            pytest.mark.skipif(not HAVE[r], reason=f"{r} is not installed"),
        ],
    )
    for r in ("openvino", "onnxruntime")
]


# --------------------------------------------------------------------------- both runtimes


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_both_runtimes_read_a_rendered_page_alike(runtime, page):
    with OnnxEngine(EngineConfig(threads=1, runtime=runtime)) as engine:
        result = engine.recognize(page)
    assert result.engine.endswith(f"@{runtime}")
    assert word_f1(result.text, "\n".join(PAGE_LINES)) >= 0.95, result.text
    assert len(result.lines) == len(PAGE_LINES)


@pytest.mark.integration
@pytest.mark.parametrize("runtime", RUNTIME_PARAMS)
def test_the_runtime_runs_on_exactly_the_threads_asked_for(runtime):
    with OnnxEngine(EngineConfig(threads=1, runtime=runtime)) as engine:
        for part in (engine._ocr.text_det, engine._ocr.text_rec):
            session = part.session.session
            if runtime == "openvino":
                compiled = session.get_compiled_model()
                assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
                assert int(compiled.get_property("NUM_STREAMS")) == 1
                assert str(compiled.get_property("ENABLE_CPU_PINNING")).lower() == "false"
            else:
                options = session.get_session_options()
                assert options.intra_op_num_threads == 1
                assert options.inter_op_num_threads == 1


@pytest.mark.integration
@needs_rapidocr
def test_an_explicit_runtime_that_is_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail
    with pytest.raises(ModelError, match="pip install openvino") as exc:
        OnnxEngine(EngineConfig(threads=1, runtime="openvino"))
    assert exc.value.code == "model.missing_dependency"


# --------------------------------------------------------------------------- content crop


def _one_line_page(width=3600, height=4800, *, at=(130, 90), size=48, ink=0, paper=255):
    page = Image.new("L", (width, height), paper)
    font = ImageFont.load_default(size=size)
    ImageDraw.Draw(page).text(at, "To simple burn running of goods lately", fill=ink, font=font)
    return np.asarray(page.convert("RGB"))


def test_content_box_keeps_the_ink_and_drops_the_empty_paper():
    page = _one_line_page()
    x0, y0, x1, y1 = content_box(page)
    ys, xs = np.nonzero(page[..., 0] < 128)
    assert x0 <= xs.min() and y0 <= ys.min() and x1 > xs.max() and y1 > ys.max()
    assert (x1 - x0) * (y1 - y0) < 0.05 * page.shape[0] * page.shape[1]
    # Light print on a dark page, and grayscale input, alike.
    inverted = content_box(_one_line_page(ink=255, paper=0))
    assert inverted == (x0, y0, x1, y1)
    assert content_box(np.ascontiguousarray(page[..., 1])) == (x0, y0, x1, y1)


@pytest.mark.parametrize(
    "image",
    [
        np.full((4800, 3600, 3), 255, np.uint8),  # nothing stands out
        np.full((20, 3000), 0, np.uint8),  # thin
        np.pad(np.full((1980, 1500), 255, np.uint8), 10),  # a scan's dark edges: all is content
        np.random.default_rng(0).integers(0, 256, (900, 700, 3), dtype=np.uint8),
    ],
)
def test_content_box_is_the_whole_image_when_cropping_saves_little(image):
    assert content_box(image) == (0, 0, image.shape[1], image.shape[0])


def test_the_engine_reads_the_content_box_unless_told_not_to():
    class WholeImage(OnnxEngine):  # benchmarks/bench_default_engine.py v-nocrop
        _crop_to_content = False

    page = _one_line_page()
    assert object.__new__(OnnxEngine)._crop(page) == content_box(page) != (0, 0, 3600, 4800)
    assert object.__new__(WholeImage)._crop(page) is None


@pytest.mark.integration
@needs_rapidocr
def test_one_small_line_on_a_large_empty_page_is_read():
    """Regression: detection at 960 px saw this line 9 px tall and found nothing."""
    page = _one_line_page()
    with OnnxEngine(EngineConfig(threads=1)) as engine:
        result = engine.recognize(page)
    assert word_f1(result.text, "To simple burn running of goods lately") >= 0.8, result.text
    (line,) = result.lines
    ys, xs = np.nonzero(page[..., 0] < 128)
    left, top, right, bottom = line.bbox  # in the whole page's coordinates
    assert left <= xs.min() + 10 and right >= xs.max() - 10
    assert top <= ys.min() + 10 and bottom >= ys.max() - 10


# --------------------------------------------------------------------------- width padding


@pytest.mark.integration
@needs_rapidocr
def test_recognition_inputs_are_rapidocrs_own_padded_to_the_width_step():
    from rapidocr.ch_ppocr_rec.main import TextRecognizer

    with OnnxEngine(EngineConfig(threads=1)) as engine:
        rec = engine._ocr.text_rec
        rng = np.random.default_rng(1)
        for h, w, ratio in ((48, 100, 64 / 48), (31, 517, 20.0), (60, 61, 3.3), (48, 5000, 8.0)):
            crop = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            ours = rec.resize_norm_img(crop, ratio)
            theirs = TextRecognizer.resize_norm_img(rec, crop, ratio)
            assert ours.dtype == np.float32 and ours.shape[1] == theirs.shape[1] == 48
            assert ours.shape[2] % REC_WIDTH_STEP == 0
            assert theirs.shape[2] <= ours.shape[2] < theirs.shape[2] + REC_WIDTH_STEP
            np.testing.assert_allclose(ours[:, :, : theirs.shape[2]], theirs, atol=1e-6)
            assert not ours[:, :, theirs.shape[2] :].any()


# --------------------------------------------------------------------------- read_lines


@pytest.mark.integration
@needs_rapidocr
def test_read_lines_reads_cut_out_lines_without_detection():
    crops = []
    for text in PAGE_LINES[:3]:
        line = Image.new("L", (900, 48), 255)
        ImageDraw.Draw(line).text((8, 4), text, fill=0, font=ImageFont.load_default(size=36))
        crops.append(np.asarray(line))
    crops.append(np.full((48, 300), 255, np.uint8))  # nothing on it
    with OnnxEngine(EngineConfig(threads=1)) as engine:
        read = engine.read_lines(crops)
        rgb = engine.read_lines([np.stack([crops[0]] * 3, axis=-1)])
        assert engine.read_lines([]) == []
        with pytest.raises(rythmiq.InputError):
            engine.read_lines([np.zeros((4, 4), np.float32)])
    assert len(read) == 4
    for (text, confidence), expected in zip(read[:3], PAGE_LINES[:3], strict=True):
        assert word_f1(text, expected) >= 0.8 and 0.5 <= confidence <= 1.0, (text, expected)
    assert read[3][0] == ""
    assert rgb[0][0] == read[0][0]
    with pytest.raises(rythmiq.OcrError, match="closed"):
        engine.read_lines(crops[:1])
