from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from _helpers import DEV, dev_rows, render_page
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rythmiq import InputError, OptionsError
from rythmiq.quality import (
    DEFAULT_THRESHOLD,
    analysis_image,
    exposure_stats,
    laplacian_variance,
    luminance_histogram,
    score_quality,
    to_gray,
)

SIGMAS = [0.0, 0.8, 1.5, 2.5, 4.0, 6.0]


def blur(img, sigma):
    return img if sigma == 0 else cv2.GaussianBlur(img, (0, 0), sigma)


def half(img):
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)


def test_sharp_rendered_page_passes(page):
    report = score_quality(page)
    assert report.passed, report
    assert report.reasons == ()
    assert report.threshold == DEFAULT_THRESHOLD
    assert 0.0 <= report.score <= 1.0
    assert report.score == min(report.sharpness, report.exposure)


def test_blur_lowers_sharpness_at_every_step(page):
    scores = [score_quality(blur(page, s)).sharpness for s in SIGMAS]
    variances = [laplacian_variance(blur(page, s)) for s in SIGMAS]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert all(a > b for a, b in itertools.pairwise(variances)), variances


def test_heavy_blur_fails_with_reason(page):
    report = score_quality(blur(page, 6.0))
    assert not report.passed
    assert "blurry" in report.reasons


@pytest.mark.parametrize("sigma", [0.0, 2.0, 4.0])
def test_score_does_not_depend_on_resolution(sigma):
    # A 2400x3200 page and the same page at 1200x1600.
    full = render_page(width=2400, height=3200, font_size=56, margin=170)
    full = blur(full, sigma)
    a, b = score_quality(full).score, score_quality(half(full)).score
    assert abs(a - b) <= 0.05, (a, b)


@pytest.mark.parametrize("factor", [1.0])
def test_darkening_lowers_exposure_at_every_step(page, factor):
    steps = [1.0, 0.8, 0.6, 0.4, 0.25, 0.12]
    values = [score_quality((page * k).astype(np.uint8)).exposure for k in steps]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    dark = score_quality((page * 0.12).astype(np.uint8))
    assert not dark.passed and "underexposed" in dark.reasons


def test_blowing_out_lowers_exposure_at_every_step(page):
    # Add light: the paper clips at white and the ink lifts towards it.
    steps = [0, 40, 80, 120, 160, 200]
    imgs = [np.clip(page.astype(np.int16) + k, 0, 255).astype(np.uint8) for k in steps]
    values = [score_quality(im).exposure for im in imgs]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    last = score_quality(imgs[-1])
    assert not last.passed and "overexposed" in last.reasons


def test_low_contrast_is_flagged(page):
    flat = (128 + (page.astype(np.float32) - 128) * 0.15).astype(np.uint8)
    report = score_quality(flat)
    assert "low_contrast" in report.reasons
    assert not report.passed


def test_blank_page_is_flagged():
    report = score_quality(np.full((800, 600), 250, np.uint8))
    assert report.reasons[0] == "blank"
    assert report.sharpness == 0.0
    assert not report.passed


def test_threshold_is_respected(page):
    report = score_quality(blur(page, 1.5))
    assert score_quality(blur(page, 1.5), threshold=0.0).passed
    assert not score_quality(blur(page, 1.5), threshold=1.0).passed
    assert report.score == score_quality(blur(page, 1.5), threshold=0.3).score


def test_gray_and_rgb_agree(page):
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    assert score_quality(page).score == pytest.approx(score_quality(gray).score, abs=1e-9)
    assert score_quality(page, gray=gray).score == pytest.approx(score_quality(page).score)


def test_to_dict_is_plain(page):
    import json

    d = score_quality(page).to_dict()
    json.dumps(d)
    assert set(d) >= {"score", "passed", "sharpness", "exposure", "reasons", "exposure_stats"}


def test_analysis_image_has_fixed_long_side(page):
    assert max(analysis_image(to_gray(page)).shape) == 1024
    assert max(analysis_image(to_gray(half(half(page)))).shape) == 1024
    with pytest.raises(OptionsError, match="analysis_size"):
        analysis_image(to_gray(page), analysis_size=8)


def test_exposure_stats_from_histogram(page):
    gray = to_gray(page)
    hist = luminance_histogram(gray)
    assert exposure_stats(gray) == exposure_stats(hist=hist)
    stats = exposure_stats(hist=hist)
    assert stats.mean == pytest.approx(gray.mean() / 255, abs=1e-9)
    assert 0 <= stats.black_point <= stats.white_point <= 1
    with pytest.raises(OptionsError, match="256 bins"):
        exposure_stats(hist=np.ones(10))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((0, 5), np.uint8),
        [[1, 2]],
    ],
)
def test_bad_arrays_raise_input_error(bad):
    with pytest.raises(InputError):
        score_quality(bad)


def test_bad_threshold_raises(page):
    with pytest.raises(OptionsError, match="threshold"):
        score_quality(page, threshold=1.5)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 120), st.integers(1, 120))))
def test_any_grayscale_array_scores_within_unit_interval(img):
    report = score_quality(img)
    assert 0.0 <= report.score <= 1.0
    assert 0.0 <= report.sharpness <= 1.0 and 0.0 <= report.exposure <= 1.0
    assert report.passed == (report.score >= report.threshold)


# --------------------------------------------------------------------------- real dev pages


@pytest.mark.devdata
def test_dev_ocr_pages_pass_and_blurred_copies_fail():
    rows = dev_rows("ocr")
    for row in rows:
        img = cv2.cvtColor(cv2.imread(str(DEV / "ocr" / row["image"])), cv2.COLOR_BGR2RGB)
        sharp = score_quality(img)
        assert sharp.passed, (row["image"], sharp)
        assert not score_quality(blur(img, 4.0 * max(img.shape) / 1024)).passed, row["image"]


@pytest.mark.devdata
def test_dev_pages_full_and_half_size_score_alike():
    for row in dev_rows("ocr"):
        img = cv2.imread(str(DEV / "ocr" / row["image"]), cv2.IMREAD_GRAYSCALE)
        if min(img.shape) < 400:
            continue  # half of a tiny test strip is not a page any more
        a, b = score_quality(img).score, score_quality(half(img)).score
        assert abs(a - b) <= 0.05, (row["image"], a, b)


@pytest.mark.devdata
def test_dev_defocus_steps_are_ordered():
    rows = sorted(
        (r for r in dev_rows("quality") if str(r["image"]).startswith("hdc_pelt")),
        key=lambda r: r["label"]["blur_step"],
    )
    values = [
        score_quality(
            cv2.imread(str(DEV / "quality" / r["image"]), cv2.IMREAD_GRAYSCALE)
        ).tile_laplacian_variance
        for r in rows
    ]
    # Real optical defocus: more blur never gives a sharper reading.
    assert all(a >= b for a, b in itertools.pairwise(values)), values
    assert values[0] > 5 * max(values[4], 1e-9)
