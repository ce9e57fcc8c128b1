"""Page orientation and skew: profiles without a model, a fake reader, then real PaddleOCR."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from _helpers import DEV, PAGE_LINES, dev_rows, render_page
from numpy.typing import NDArray
from PIL import Image

from rythmiq import OptionsError
from rythmiq.ocr import OcrLine, OcrResult
from rythmiq.orientation import (
    Orientation,
    apply_orientation,
    detect_orientation,
    estimate_skew_and_axis,
)

TRUTH = "\n".join(PAGE_LINES)


@pytest.fixture(scope="module")
def upright() -> NDArray[np.uint8]:
    return render_page()


def small_gray(pixels: NDArray[np.uint8], size: int = 1000) -> NDArray[np.uint8]:
    """What detect_orientation analyses: grey, about 1000 px on the long side."""
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    scale = size / max(gray.shape)
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def skewed(pixels: NDArray[np.uint8], angle: float) -> NDArray[np.uint8]:
    """Turned ``angle`` degrees counter-clockwise by Pillow, on an expanded white canvas."""
    im = Image.fromarray(pixels)
    fill = (255, 255, 255) if im.mode == "RGB" else 255
    return np.asarray(im.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=fill))


def ink(pixels: NDArray[np.uint8]) -> int:
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    return int((gray < 128).sum())


@dataclass
class UprightReader:
    """A fake engine that reads a line only when it is the right way up.

    It finds the text bands of the image it is given and, like a recognizer, is confident
    only on upright Latin text: more ink above the x-height rows of a line (ascenders,
    capitals, digits) than below them (the few descenders). A band "reads" as one letter per
    half its height of inked width: at 0.95 when upright, else at 0.3.
    """

    calls: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return "upright-reader"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        self.calls.append(tuple(image.shape))
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        dark = gray < 128
        rows = np.flatnonzero(np.diff(np.concatenate([[0], dark.any(axis=1), [0]]).astype(int)))
        lines = []
        w = float(image.shape[1])
        for top, bottom in zip(rows[::2], rows[1::2], strict=True):
            band = dark[top:bottom].sum(axis=1)
            core = np.flatnonzero(band >= 0.3 * band.max())  # the x-height rows
            up = band[: core[0]].sum() > 1.2 * band[core[-1] + 1 :].sum()
            cols = np.flatnonzero(dark[top:bottom].any(axis=0))
            letters = max(1, round(2 * (cols[-1] - cols[0] + 1) / (bottom - top)))
            text, conf = ("a" * letters, 0.95) if up else ("x" * letters, 0.3)
            box = ((0.0, float(top)), (w, float(top)), (w, float(bottom)), (0.0, float(bottom)))
            lines.append(OcrLine(text, conf, box))
        return OcrResult(tuple(lines), image.shape[1], image.shape[0], self.name)

    def close(self) -> None:
        pass


class SilentEngine:
    """Finds nothing, whatever it is shown."""

    name = "silent"

    def __init__(self) -> None:
        self.calls = 0

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        self.calls += 1
        return OcrResult((), image.shape[1], image.shape[0], self.name)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- profiles, no model


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_axis_of_a_page_turned_by_quarter_turns(upright, k):
    est = estimate_skew_and_axis(small_gray(np.rot90(upright, k)))
    assert not est.blank
    assert est.rotation == (90 if k % 2 else 0)
    assert abs(est.skew) <= 0.3
    assert est.axis_margin > 0.3


@pytest.mark.parametrize("angle", [-6.0, -3.0, -1.5, 1.5, 3.0, 6.0])
def test_skew_is_measured_with_its_sign(upright, angle):
    est = estimate_skew_and_axis(small_gray(skewed(upright, angle)))
    assert est.rotation == 0
    assert est.skew == pytest.approx(angle, abs=0.3)


@pytest.mark.parametrize("k", [1, 3])
def test_skew_of_a_sideways_page_is_measured_after_the_turn(upright, k):
    est = estimate_skew_and_axis(small_gray(np.rot90(skewed(upright, 3.0), k)))
    assert est.rotation == 90
    assert est.skew == pytest.approx(3.0, abs=0.3)


def test_max_skew_bounds_the_search(upright):
    est = estimate_skew_and_axis(small_gray(skewed(upright, 6.0)), max_skew=2.0)
    assert abs(est.skew) <= 2.0


def test_light_text_on_a_dark_page(upright):
    negative = 255 - skewed(upright, -2.0)
    est = estimate_skew_and_axis(small_gray(np.rot90(negative)))
    assert est.rotation == 90 and est.skew == pytest.approx(-2.0, abs=0.3)


def test_blank_and_tiny_inputs_are_blank():
    for gray in (np.full((300, 200), 255, np.uint8), np.zeros((50, 80), np.uint8)):
        est = estimate_skew_and_axis(gray)
        assert est.blank and est.rotation == 0 and est.skew == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (20, 20), dtype=np.uint8)
    assert estimate_skew_and_axis(noise).rotation in (0, 90)


# --------------------------------------------------------------------------- apply_orientation


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("gray", [False, True])
def test_apply_undoes_quarter_turns_exactly(upright, k, gray):
    page = cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY) if gray else upright
    turned = np.rot90(page, k)  # k quarter turns counter-clockwise
    out = apply_orientation(turned, Orientation(90 * k, 0.0, 1.0, "test"))
    assert out.dtype == np.uint8 and out.shape == page.shape
    assert np.array_equal(out, page)
    assert not np.shares_memory(out, turned)


def test_apply_ignores_skew_below_threshold(upright):
    out = apply_orientation(upright, Orientation(0, 0.9, 1.0, "test"))
    assert np.array_equal(out, upright) and out is not upright
    out[0, 0] = 0
    assert upright[0, 0, 0] == 255
    levelled = apply_orientation(upright, Orientation(0, 0.9, 1.0, "test"), deskew_threshold=0.3)
    assert levelled.shape[0] > upright.shape[0]


@pytest.mark.parametrize("gray", [False, True])
def test_apply_deskews_on_an_expanded_canvas(upright, gray):
    page = cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY) if gray else upright
    tilted = skewed(page, 4.0)
    out = apply_orientation(tilted, Orientation(0, 4.0, 1.0, "test"))
    assert out.dtype == np.uint8 and out.ndim == page.ndim
    assert out.shape[0] > tilted.shape[0] and out.shape[1] > tilted.shape[1]
    # Nothing cut off, corners filled with the white page, and the lines level again.
    assert ink(out) == pytest.approx(ink(tilted), rel=0.05)
    for corner in (out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]):
        assert np.all(corner >= 250)
    assert abs(estimate_skew_and_axis(small_gray(out)).skew) <= 0.3


def test_apply_turns_then_deskews(upright):
    # Skewed +3 degrees, then turned a quarter counter-clockwise: rotation 90, skew 3.
    turned = np.rot90(skewed(upright, 3.0))
    out = apply_orientation(turned, Orientation(90, 3.0, 1.0, "test"))
    est = estimate_skew_and_axis(small_gray(out))
    assert est.rotation == 0 and abs(est.skew) <= 0.3
    assert ink(out) == pytest.approx(ink(upright), rel=0.1)


def test_apply_fills_with_the_page_background(upright):
    grey_paper = np.where(upright < 128, upright, np.uint8(200)).astype(np.uint8)
    out = apply_orientation(grey_paper, Orientation(0, -5.0, 1.0, "test"))
    assert np.all(np.abs(out[0, 0].astype(int) - 200) <= 2)


# --------------------------------------------------------------------------- detect, fake engines


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_detect_with_a_reader_that_only_reads_upright_lines(upright, k):
    reader = UprightReader()
    found = detect_orientation(np.rot90(upright, k), reader)
    assert found.rotation == 90 * k
    assert found.method == "profile+recognition"
    assert found.confidence > 0.5 and abs(found.skew) <= 0.3
    assert np.array_equal(apply_orientation(np.rot90(upright, k), found), upright)


def test_detect_reads_little(upright):
    reader = UprightReader()
    detect_orientation(upright, reader)
    # One decisive round: one small composite (a line crop and its 180-degree copy).
    assert len(reader.calls) == 1
    assert all(h * w <= 200_000 for h, w, *_ in reader.calls)


def test_detect_reads_both_axes_when_the_axis_is_unclear(upright, monkeypatch):
    import rythmiq.orientation as orientation

    monkeypatch.setattr(orientation, "_AXIS_AMBIGUOUS", 100.0)
    for k in (1, 2):
        assert detect_orientation(np.rot90(upright, k), UprightReader()).rotation == 90 * k


def test_detect_finds_skew(upright):
    found = detect_orientation(skewed(upright, -3.0), UprightReader())
    assert found.rotation == 0 and found.skew == pytest.approx(-3.0, abs=0.3)
    found = detect_orientation(skewed(upright, -3.0), UprightReader(), detect_skew=False)
    assert found.rotation == 0 and found.skew == 0.0


def test_nothing_read_keeps_the_page_as_it_is(upright):
    engine = SilentEngine()
    found = detect_orientation(np.rot90(upright, 2), engine)
    assert found == Orientation(0, 0.0, 0.0, "unreadable")
    assert 1 <= engine.calls <= len((1, 2, 3))


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((2200, 1700, 3), 255, np.uint8),
        np.zeros((400, 300), np.uint8),
        np.full((20, 20), 255, np.uint8),
        np.full((1, 1, 3), 7, np.uint8),
    ],
    ids=["white", "black", "tiny", "one-pixel"],
)
def test_blank_pages_are_left_alone_without_reading(pixels):
    engine = SilentEngine()
    found = detect_orientation(pixels, engine)
    assert (found.rotation, found.skew, found.method) == (0, 0.0, "blank")
    assert engine.calls == 0


def test_odd_inputs_do_not_raise():
    rng = np.random.default_rng(1)
    odd = [
        rng.integers(0, 256, (20, 20), dtype=np.uint8),
        rng.integers(0, 256, (300, 200, 3), dtype=np.uint8),
        render_page(["tiny"], width=40, height=30, font_size=10, margin=2),
        np.full((50, 60, 1), 255, np.uint8),
    ]
    for pixels in odd:
        found = detect_orientation(pixels, UprightReader())
        assert found.rotation in (0, 90, 180, 270)
        out = apply_orientation(pixels, found)
        assert out.dtype == np.uint8 and out.ndim == pixels.ndim


def test_to_dict_is_json_safe():
    found = Orientation(270, -1.25, 0.875, "profile+recognition")
    assert json.loads(json.dumps(found.to_dict())) == {
        "rotation": 270,
        "skew": -1.25,
        "confidence": 0.875,
        "method": "profile+recognition",
    }


@pytest.mark.parametrize(
    ("pixels", "kwargs", "match"),
    [
        (np.zeros((10, 10), np.float32), {}, "uint8"),
        (np.zeros((10,), np.uint8), {}, "shape"),
        (np.zeros((10, 10, 4), np.uint8), {}, "shape"),
        (np.zeros((0, 10), np.uint8), {}, "empty"),
        ([[0, 1]], {}, "numpy array"),
        (np.zeros((10, 10), np.uint8), {"max_skew": 0}, "max_skew"),
        (np.zeros((10, 10), np.uint8), {"max_skew": 46}, "max_skew"),
        (np.zeros((10, 10), np.uint8), {"max_skew": float("nan")}, "max_skew"),
        (np.zeros((10, 10), np.uint8), {"max_skew": True}, "max_skew"),
    ],
)
def test_detect_argument_errors(pixels, kwargs, match):
    with pytest.raises(OptionsError, match=match):
        detect_orientation(pixels, SilentEngine(), **kwargs)


def test_apply_and_estimate_argument_errors(upright):
    with pytest.raises(OptionsError, match="rotation"):
        apply_orientation(upright, Orientation(45, 0.0, 1.0, "test"))
    with pytest.raises(OptionsError, match="deskew_threshold"):
        apply_orientation(upright, Orientation(0, 1.0, 1.0, "test"), deskew_threshold=-1)
    with pytest.raises(OptionsError, match="uint8"):
        apply_orientation(upright.astype(np.int16), Orientation(0, 0.0, 1.0, "test"))
    with pytest.raises(OptionsError, match="2-D"):
        estimate_skew_and_axis(upright)
    with pytest.raises(OptionsError, match="max_skew"):
        estimate_skew_and_axis(upright[:, :, 0], max_skew=90)


# --------------------------------------------------------------------------- a real engine


@pytest.fixture(scope="module")
def real_engine():
    """The default engine (PP-OCRv6), as process() uses it."""
    from rythmiq.ocr import EngineConfig, create_engine

    with create_engine(EngineConfig(threads=1)) as engine:
        yield engine


@pytest.mark.integration
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_real_engine_turns_the_page_upright(real_engine, upright, k):
    from rythmiq.metrics import word_f1

    turned = np.ascontiguousarray(np.rot90(upright, k))
    found = detect_orientation(turned, real_engine)
    assert found.rotation == 90 * k, found
    assert found.confidence > 0.5
    fixed = apply_orientation(turned, found)
    assert word_f1(real_engine.recognize(fixed).text, TRUTH) >= 0.9


@pytest.mark.integration
@pytest.mark.parametrize("angle", [-4.0, 4.0])
def test_real_engine_measures_skew(real_engine, upright, angle):
    from rythmiq.metrics import word_f1

    tilted = skewed(upright, angle)
    found = detect_orientation(tilted, real_engine)
    assert found.rotation == 0
    assert found.skew == pytest.approx(angle, abs=0.5)
    assert word_f1(real_engine.recognize(apply_orientation(tilted, found)).text, TRUTH) >= 0.9


@pytest.mark.integration
def test_real_engine_blank_page(real_engine):
    found = detect_orientation(np.full((3508, 2480, 3), 255, np.uint8), real_engine)
    assert (found.rotation, found.method) == (0, "blank")


@pytest.mark.integration
@pytest.mark.devdata
@pytest.mark.parametrize(
    ("image", "rotation"),
    [
        ("scribe_multicol_04.png", 0),
        ("scribe_multicol_04_rot90ccw.png", 90),  # turned 90 ccw: 90 cw makes it upright
        ("scribe_multicol_04_rot180.png", 180),
    ],
)
def test_shipped_rotated_dev_pages(real_engine, image, rotation):
    from rythmiq import load_image
    from rythmiq.metrics import word_f1

    row = next(r for r in dev_rows("ocr") if r["image"] == image)
    pixels = load_image(DEV / "ocr" / image).pixels
    found = detect_orientation(pixels, real_engine)
    assert found.rotation == rotation, found
    fixed = apply_orientation(pixels, found)
    assert word_f1(real_engine.recognize(fixed).text, str(row["text"])) >= 0.85
