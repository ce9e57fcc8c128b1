from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from _helpers import DEV, PAGE_LINES, dev_rows, photo_page, render_page
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rythmiq import InputError, OptionsError
from rythmiq.quality import (
    DEFAULT_THRESHOLD,
    analysis_image,
    exposure_score,
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


# ------------------------------------------------ sharpness and exposure do not misread each other

EXPOSURE_REASONS = {"underexposed", "overexposed", "low_contrast"}


def levels(img, low):
    """Levels 0..255 mapped to ``low``..255: the blacks lifted, the paper kept."""
    return np.round(low + img.astype(np.float32) * ((255 - low) / 255)).astype(np.uint8)


def washed_out(img, keep):
    """Every level's distance to white times ``keep``, as in an overexposed photo."""
    return np.round(255 - (255 - img.astype(np.float32)) * keep).astype(np.uint8)


def flatten(img, keep):
    return (128 + (img.astype(np.float32) - 128) * keep).astype(np.uint8)


@pytest.fixture(scope="module", params=["page", "small_print", "photo"])
def any_page(request, page, small_print_page):
    """A text page, a page of small print (thin strokes) and a noisy camera shot of it."""
    return {"page": page, "small_print": small_print_page}.get(
        request.param, photo_page(small_print_page)
    )


@pytest.mark.parametrize("sigma", [2.0, 2.5, 3.0, 3.5, 4.0])
def test_blur_reads_as_blur_only(any_page, sigma):
    # Blur lifts the darkest pixels of thin strokes; that is no exposure fault (issue 19: the
    # small-print page at sigma 3 read "blurry, overexposed").
    report = score_quality(blur(any_page, sigma))
    assert not set(report.reasons) & EXPOSURE_REASONS, report.reasons
    assert report.exposure >= DEFAULT_THRESHOLD


def test_small_print_blurred_reads_blurry(small_print_page):
    report = score_quality(blur(small_print_page, 3.0))
    assert report.reasons == ("blurry",)
    assert report.exposure_stats.black_point > 0.55  # the blacks are lifted, by blur
    assert report.exposure_stats.ink_trust == 0.0


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("levels 150..255", lambda img: levels(img, 150)),
        ("levels 200..255", lambda img: levels(img, 200)),
        ("washed out to 0.35", lambda img: washed_out(img, 0.35)),
        # A gamma leaves pure black alone, so lift ink of 30 (the photo's): to 0.57.
        ("gamma 0.25", lambda img: np.round(255 * (np.maximum(img, 30) / 255) ** 0.25)),
    ],
)
def test_lifted_blacks_read_overexposed_not_blurry(any_page, name, change):
    report = score_quality(change(any_page).astype(np.uint8))
    assert "overexposed" in report.reasons, (name, report)
    assert "blurry" not in report.reasons, (name, report)
    assert report.exposure_stats.ink_trust == 1.0
    assert not report.passed


@pytest.mark.parametrize("gain", [0.4, 0.25])
def test_darkened_page_reads_underexposed_not_blurry(any_page, gain):
    report = score_quality((any_page * gain).astype(np.uint8))
    assert "underexposed" in report.reasons
    assert "blurry" not in report.reasons and "overexposed" not in report.reasons


@pytest.mark.parametrize("keep", [0.3, 0.15])
def test_flat_page_reads_low_contrast_not_blurry(page, small_print_page, keep):
    for img in (page, small_print_page):
        report = score_quality(flatten(img, keep))
        assert "low_contrast" in report.reasons, report
        assert "blurry" not in report.reasons, report


def test_exposure_changes_keep_sharpness(page):
    # The Laplacian variance falls with the square of the contrast; the score takes it back up
    # to CONTRAST_REF, so a sharp page squeezed to a fifth of its contrast stays sharp.
    sharp = score_quality(page).sharpness
    for img in (levels(page, 200), flatten(page, 0.15), (page * 0.2).astype(np.uint8)):
        report = score_quality(img)
        assert report.sharpness >= DEFAULT_THRESHOLD, report
        assert report.sharpness <= sharp + 1e-9


def test_ink_trust_follows_blur_not_exposure(small_print_page):
    trusts = [score_quality(blur(small_print_page, s)).exposure_stats.ink_trust for s in SIGMAS]
    assert trusts[0] == 1.0 and trusts[-1] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(trusts)), trusts
    for img in (levels(small_print_page, 200), flatten(small_print_page, 0.15)):
        assert score_quality(img).exposure_stats.ink_trust == 1.0


def test_blurred_and_washed_out_page_fails_as_blurry(small_print_page):
    # Blur hides whether the ink was dark: the page fails, and blur is the reason given.
    report = score_quality(levels(blur(small_print_page, 3.0), 150))
    assert not report.passed
    assert report.reasons == ("blurry",)


def test_small_enlarged_image_is_judged_on_its_own_pixels():
    # Enlarging a 400x300 image to the analysis size softens its edges by interpolation, which
    # lifts no blacks: its lifted blacks still read as exposure, and it is not blurry.
    tiny = render_page(PAGE_LINES[:4], width=400, height=300, font_size=16, margin=10)
    assert score_quality(tiny).reasons == ()
    report = score_quality(levels(tiny, 180))
    assert report.exposure_stats.ink_trust == 1.0
    assert set(report.reasons) == {"overexposed", "low_contrast"}, report.reasons
    assert score_quality(blur(tiny, 1.5)).reasons == ("blurry",)


def test_blank_page_has_no_exposure_reasons():
    # No ink, no ink to judge: a uniform light grey sheet is blank, not overexposed.
    assert score_quality(np.full((800, 600), 200, np.uint8)).reasons == ("blank",)


def test_exposure_score_weighs_the_black_point_by_its_trust(page):
    hist = luminance_histogram(to_gray(levels(page, 180)))
    full, none = exposure_stats(hist=hist), exposure_stats(hist=hist, ink_trust=0.0)
    assert full.ink_trust == 1.0 and none.black_point == full.black_point
    assert exposure_score(full) < DEFAULT_THRESHOLD < exposure_score(none)
    half = exposure_score(exposure_stats(hist=hist, ink_trust=0.5))
    assert exposure_score(full) < half < exposure_score(none)
    with pytest.raises(OptionsError, match="ink_trust"):
        exposure_stats(hist=hist, ink_trust=1.5)


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


@pytest.mark.devdata
def test_dev_blurred_copies_read_no_exposure_reason():
    # Every dev OCR page, blurred at its own resolution: blur is the only reason given.
    for row in dev_rows("ocr"):
        img = cv2.imread(str(DEV / "ocr" / row["image"]), cv2.IMREAD_GRAYSCALE)
        for sigma in (2.0, 3.0, 4.0):
            reasons = score_quality(blur(img, sigma)).reasons
            assert not set(reasons) & EXPOSURE_REASONS, (row["image"], sigma, reasons)


@pytest.mark.devdata
def test_dev_exposure_changes_are_fully_trusted():
    # An exposure change moves no edge: the black point of every changed dev page counts.
    for row in dev_rows("ocr"):
        img = cv2.imread(str(DEV / "ocr" / row["image"]), cv2.IMREAD_GRAYSCALE)
        for changed in (img, levels(img, 150), (img * 0.4).astype(np.uint8), flatten(img, 0.3)):
            assert score_quality(changed).exposure_stats.ink_trust == 1.0, row["image"]


@pytest.mark.devdata
def test_dev_real_defocus_reads_no_exposure_reason():
    # The HDC2021 focus steps are real optical defocus of black print on white paper.
    for row in dev_rows("quality"):
        img = cv2.imread(str(DEV / "quality" / row["image"]), cv2.IMREAD_GRAYSCALE)
        report = score_quality(img)
        assert not set(report.reasons) & EXPOSURE_REASONS, (row["image"], report.reasons)
