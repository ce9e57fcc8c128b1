"""rythmiq.normalize: exact-size fitting, EXIF orientation, DPI, JPEG encoding and byte budgets."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
from _helpers import render_page
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from PIL import Image, ImageOps

from rythmiq import OptionsError
from rythmiq.normalize import (
    DEFAULT_DPI,
    PAGE_SIZES,
    apply_exif_orientation,
    compress_to_budget,
    encode_jpeg,
    fit_size,
    make_preview,
    resample_to_dpi,
    resize_exact,
    resize_to_box,
    resolve_dpi,
)

SETTINGS = settings(max_examples=60, deadline=None)
sides = st.integers(min_value=1, max_value=6000)


def effective_box(
    width: int, height: int, box: tuple[int, int], rotate_box: bool
) -> tuple[int, int]:
    """The box as documented: turned to the image's orientation when ``rotate_box``."""
    bw, bh = box
    if rotate_box and width != height and bw != bh and (width > height) != (bw > bh):
        return bh, bw
    return bw, bh


def same_scale(width: int, height: int, out_w: int, out_h: int) -> bool:
    """Whether one scale factor rounds (to the nearest pixel, at least 1) to both sides."""
    lo_w = 0.0 if out_w == 1 else (out_w - 0.5) / width
    lo_h = 0.0 if out_h == 1 else (out_h - 0.5) / height
    hi_w, hi_h = (out_w + 0.5) / width, (out_h + 0.5) / height
    return max(lo_w, lo_h) <= min(hi_w, hi_h) + 1e-9


# --- fit_size / resize_to_box -------------------------------------------------------------


@SETTINGS
@given(w=sides, h=sides, bw=sides, bh=sides, upscale=st.booleans(), rotate_box=st.booleans())
def test_fit_size_properties(w, h, bw, bh, upscale, rotate_box):
    out_w, out_h = fit_size(w, h, (bw, bh), upscale=upscale, rotate_box=rotate_box)
    ebw, ebh = effective_box(w, h, (bw, bh), rotate_box)
    fits_already = w <= ebw and h <= ebh
    if fits_already and not upscale:
        assert (out_w, out_h) == (w, h)
        return
    # Never exceeds the (possibly turned) box, and one side fills it.
    assert 1 <= out_w <= ebw and 1 <= out_h <= ebh
    assert out_w == ebw or out_h == ebh
    # Aspect ratio kept to within rounding.
    assert same_scale(w, h, out_w, out_h), (w, h, out_w, out_h)
    if not upscale:
        assert out_w <= w and out_h <= h


@SETTINGS
@given(w=sides, h=sides, bw=sides, bh=sides)
def test_fit_size_rotate_box_fits_either_orientation(w, h, bw, bh):
    out_w, out_h = fit_size(w, h, (bw, bh))
    assert (out_w <= bw and out_h <= bh) or (out_w <= bh and out_h <= bw)
    unturned = fit_size(w, h, (bw, bh), rotate_box=False)
    assert unturned[0] <= max(bw, w) and unturned[1] <= max(bh, h)
    if not (w <= bw and h <= bh):
        assert unturned[0] <= bw and unturned[1] <= bh


def test_fit_size_examples():
    a4 = (2480, 3508)
    assert fit_size(4960, 7016, a4) == a4  # portrait A4 at 600 dpi -> 300 dpi
    assert fit_size(7016, 4960, a4) == (3508, 2480)  # landscape: the box turns too
    assert fit_size(7016, 4960, a4, rotate_box=False) == (2480, 1753)
    assert fit_size(1000, 1000, a4) == (1000, 1000)  # no upscaling by default
    assert fit_size(1000, 1000, a4, upscale=True) == (2480, 2480)
    assert fit_size(1, 10_000, (100, 100)) == (1, 100)  # never collapses to 0


@pytest.mark.parametrize(
    ("w", "h", "box"), [(0, 10, (5, 5)), (10, -1, (5, 5)), (10, 10, (0, 5)), (10, 10, (5, 0))]
)
def test_fit_size_rejects_non_positive(w, h, box):
    with pytest.raises(OptionsError):
        fit_size(w, h, box)


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    bw=st.integers(1, 300),
    bh=st.integers(1, 300),
    upscale=st.booleans(),
    gray=st.booleans(),
)
def test_resize_to_box_has_exactly_fit_size(w, h, bw, bh, upscale, gray):
    shape = (h, w) if gray else (h, w, 3)
    image = np.random.default_rng(w * 1000 + h).integers(0, 256, shape, dtype=np.uint8)
    out = resize_to_box(image, (bw, bh), upscale=upscale)
    expected_w, expected_h = fit_size(w, h, (bw, bh), upscale=upscale)
    assert out.shape[:2] == (expected_h, expected_w)
    assert out.ndim == image.ndim and out.dtype == np.uint8


def test_shrinking_averages_area():
    """A 1-px checkerboard shrunk by area averaging turns mid-grey; point sampling would alias."""
    yy, xx = np.mgrid[0:400, 0:600]
    board = np.where((yy + xx) % 2 == 0, 0, 255).astype(np.uint8)
    half = resize_to_box(board, (300, 300))
    assert half.shape == (200, 300)
    assert np.abs(half.astype(np.float64) - 127.5).max() <= 1.0
    odd = resize_exact(board, (173, 119))
    assert abs(float(odd.mean()) - float(board.mean())) < 1.0
    assert float(odd.std()) < 10.0  # no aliasing pattern survives


def test_resize_exact_enlarges_and_keeps_identity():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert resize_exact(image, (30, 20)) is image
    big = resize_exact(image, (61, 41))
    assert big.shape == (41, 61, 3) and big.dtype == np.uint8
    with pytest.raises(OptionsError):
        resize_exact(image, (0, 10))


# --- apply_exif_orientation --------------------------------------------------------------------

# What each EXIF orientation needs to become upright, as Pillow's transposes.
PIL_OPS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def asymmetric(h: int = 5, w: int = 7, gray: bool = False) -> NDArray[np.uint8]:
    shape = (h, w) if gray else (h, w, 3)
    return (np.arange(int(np.prod(shape))) % 256).astype(np.uint8).reshape(shape)


@pytest.mark.parametrize("gray", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_matches_pillow_exif_transpose(orientation, gray):
    image = asymmetric(gray=gray)
    pil = Image.fromarray(image)
    pil.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(pil))
    out = apply_exif_orientation(image, orientation)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    if orientation != 1:
        via_op = np.asarray(Image.fromarray(image).transpose(PIL_OPS[orientation]))
        np.testing.assert_array_equal(out, via_op)
        assert out.flags.c_contiguous


@SETTINGS
@given(
    h=st.integers(1, 12), w=st.integers(1, 12), orientation=st.integers(1, 8), gray=st.booleans()
)
def test_apply_orientation_is_a_pixel_permutation(h, w, orientation, gray):
    image = asymmetric(h, w, gray)
    out = apply_exif_orientation(image, orientation)
    expected_hw = (w, h) if orientation >= 5 else (h, w)
    assert out.shape[:2] == expected_hw
    assert sorted(out.reshape(-1).tolist()) == sorted(image.reshape(-1).tolist())


@pytest.mark.parametrize("orientation", [0, 9, -1, 100])
def test_apply_orientation_rejects_bad_values(orientation):
    with pytest.raises(OptionsError):
        apply_exif_orientation(asymmetric(), orientation)


# --- resolve_dpi --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "dpi"),
    [((300.0, 300.0), 300.0), ((200.0, 400.0), 400.0), ((72.0, 72.0), 72.0), ((1200, 1200), 1200)],
)
def test_resolve_dpi_uses_plausible_metadata(declared, dpi):
    info = resolve_dpi(declared, 1000, 1000)
    assert info.dpi == dpi
    assert info.source == "metadata"
    assert info.declared == declared
    assert info.note == ""


@pytest.mark.parametrize("declared", [(1.0, 1.0), (71.0, 71.0), (1201.0, 1201.0), None])
@pytest.mark.parametrize(("width", "height"), [(2480, 3508), (3508, 2480)])
def test_resolve_dpi_infers_from_an_a4_page(declared, width, height):
    info = resolve_dpi(declared, width, height)
    assert info.source == "inferred"
    assert info.dpi == pytest.approx(3508 / PAGE_SIZES["a4"][1], abs=0.05)
    assert info.dpi == pytest.approx(300.0, abs=0.5)
    assert info.declared == declared
    assert "a4" in info.note
    if declared is None:
        assert "no DPI" in info.note
    else:
        assert f"{max(declared):g}" in info.note and "outside" in info.note


@pytest.mark.parametrize("device_dpi", [72.0, 96.0])
def test_a_device_default_dpi_that_makes_a_giant_page_is_not_trusted(device_dpi):
    # A 4032x3024 phone photo "at 72 dpi" is a 56-inch page: the camera's figure, not the
    # page's. The photo of an A4 page is then inferred, another falls back to the default.
    photo = resolve_dpi((device_dpi, device_dpi), 4032, 3024)
    assert (photo.dpi, photo.source) == (300.0, "default")
    assert "device default" in photo.note and photo.declared == (device_dpi, device_dpi)
    a4_photo = resolve_dpi((device_dpi, device_dpi), 2480, 3508)
    assert a4_photo.source == "inferred" and a4_photo.dpi == pytest.approx(300, abs=0.2)
    # A real low-resolution scan (letter at 72 or 96 dpi) is what it says it is.
    scan = resolve_dpi((device_dpi, device_dpi), round(8.5 * device_dpi), 11 * device_dpi)
    assert (scan.dpi, scan.source) == (device_dpi, "metadata")
    # Other figures are taken as written, whatever the page size (an A0 drawing at 300 dpi).
    drawing = resolve_dpi((300.0, 300.0), 9933, 14043)
    assert (drawing.dpi, drawing.source) == (300.0, "metadata")


def test_resolve_dpi_infers_other_pages():
    letter = resolve_dpi(None, 1275, 1650, page="letter")  # 8.5 x 11 in at 150 dpi
    assert letter.source == "inferred" and letter.dpi == pytest.approx(150.0)
    a5 = resolve_dpi(None, 1749, 2481, page="a5")
    assert a5.source == "inferred" and a5.dpi == pytest.approx(300.0, abs=0.5)


@pytest.mark.parametrize(
    ("declared", "width", "height", "page"),
    [
        ((5000.0, 5000.0), 1000, 1000, "a4"),  # square: not an A4 page
        (None, 3000, 1000, "a4"),  # 3:1 strip
        (None, 100, 141, "a4"),  # A4-shaped but 12 dpi: implausible
        (None, 30000, 42422, "a4"),  # A4-shaped but 3629 dpi: implausible
        (None, 2480, 3508, None),  # no page assumed
        ((10.0, 10.0), 2480, 3508, None),
    ],
)
def test_resolve_dpi_falls_back_to_default(declared, width, height, page):
    info = resolve_dpi(declared, width, height, page=page)
    assert info.source == "default"
    assert info.dpi == DEFAULT_DPI
    assert info.declared == declared
    assert info.note  # says why the metadata was not used
    assert resolve_dpi(declared, width, height, page=page, default=150).dpi == 150.0


def test_resolve_dpi_custom_plausible_range():
    info = resolve_dpi((50.0, 50.0), 1000, 1000, plausible=(40.0, 600.0))
    assert (info.dpi, info.source) == (50.0, "metadata")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page": "a3"},
        {"page": "A4"},
        {"plausible": (0.0, 100.0)},
        {"plausible": (600.0, 300.0)},
        {"default": 50.0},
        {"default": 5000.0},
    ],
)
def test_resolve_dpi_rejects_bad_options(kwargs):
    with pytest.raises(OptionsError):
        resolve_dpi(None, 2480, 3508, **kwargs)


# --- resample_to_dpi / encode_jpeg --------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 200),
    h=st.integers(1, 200),
    dpi=st.floats(50, 1200),
    target=st.floats(50, 1200),
)
def test_resample_to_dpi_size_and_dpi_agree(w, h, dpi, target):
    image = np.zeros((h, w), dtype=np.uint8)
    out, new_dpi = resample_to_dpi(image, dpi, target)
    new_w, new_h = max(1, round(w * target / dpi)), max(1, round(h * target / dpi))
    assert out.shape == (new_h, new_w)
    # The physical width is kept exactly; the DPI is what the rounded width really means.
    assert new_w / new_dpi == pytest.approx(w / dpi, rel=1e-9)
    assert abs(new_dpi - target) <= dpi / w * (1.0 if new_w == 1 else 0.5) + 1e-9


def test_resample_to_dpi_example_and_errors():
    page = np.zeros((300, 200, 3), dtype=np.uint8)
    out, dpi = resample_to_dpi(page, 150, 300)
    assert out.shape == (600, 400, 3) and dpi == 300.0
    for bad in ((0, 300), (300, 0), (-1, 300)):
        with pytest.raises(OptionsError):
            resample_to_dpi(page, *bad)


@pytest.mark.parametrize(("dpi", "written"), [(72, 72), (300, 300), (299.6, 300), (600.0, 600)])
def test_encode_jpeg_writes_dpi(dpi, written):
    data = encode_jpeg(asymmetric(40, 60), quality=85, dpi=dpi)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        assert im.size == (60, 40) and im.mode == "RGB"
        assert tuple(im.info["dpi"]) == (written, written)


def test_encode_jpeg_without_dpi_and_grayscale():
    data = encode_jpeg(asymmetric(40, 60, gray=True))
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L" and im.size == (60, 40)
        assert "dpi" not in im.info


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_encode_jpeg_rejects_bad_quality(quality):
    with pytest.raises(OptionsError):
        encode_jpeg(asymmetric(), quality=quality)


# --- compress_to_budget -------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def photo_page() -> NDArray[np.uint8]:
    """A scanned-looking page: text, a smooth photo-like gradient and sensor noise."""
    page = render_page(width=850, height=1100, font_size=20, margin=60).copy()
    yy, xx = np.mgrid[0:400, 0:600]
    page[620:1020, 120:720] = np.stack(
        [xx / 600 * 255, yy / 400 * 255, (xx + yy) / 1000 * 255], axis=-1
    ).astype(np.uint8)
    noise = np.random.default_rng(7).normal(0.0, 3.0, page.shape)
    return np.clip(page + noise, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def sizes_by_quality() -> dict[int, int]:
    """The oracle: JPEG size of :func:`photo_page` at every quality compress_to_budget may use."""
    image = photo_page()
    return {q: len(encode_jpeg(image, quality=q)) for q in range(30, 96)}


def best_fitting_quality(max_bytes: int) -> int:
    return max(q for q, n in sizes_by_quality().items() if n <= max_bytes)


def reachable(max_bytes: int) -> bool:
    """Whether some quality in 30-95 encodes to 90-100 % of ``max_bytes``."""
    return any(0.9 * max_bytes <= n <= max_bytes for n in sizes_by_quality().values())


def check_result(result, max_bytes: int) -> None:
    image = photo_page()
    assert result.fits and result.size == len(result.data) <= max_bytes
    assert (result.width, result.height, result.scale) == (image.shape[1], image.shape[0], 1.0)
    assert 30 <= result.quality <= 95
    assert result.size == sizes_by_quality()[result.quality]  # reports the quality it used
    assert 1 <= result.encodes <= 8
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.format == "JPEG" and im.size == (result.width, result.height)


@pytest.mark.parametrize("fraction", [0.2, 0.3, 0.45, 0.6, 0.75, 0.82, 0.9])
def test_compress_to_budget_lands_within_90_to_100_percent(fraction):
    sizes = sizes_by_quality()
    assert sizes[30] < 0.2 * sizes[95]  # the image is realistic: JPEG size spans a wide range
    max_bytes = int(fraction * sizes[95])
    assert reachable(max_bytes)  # precondition of this example budget
    result = compress_to_budget(photo_page(), max_bytes)
    check_result(result, max_bytes)
    assert result.size >= 0.9 * max_bytes, (result.quality, result.size / max_bytes)


@settings(max_examples=40, deadline=None)
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_compress_to_budget_any_achievable_budget(fraction):
    """Every budget between the q30 and q95 sizes fits, in <= 8 encodes; within 90-100 % of
    the budget whenever some quality lands there, else at the highest quality that fits."""
    sizes = sizes_by_quality()
    max_bytes = int(sizes[30] + fraction * (sizes[95] - sizes[30]))
    result = compress_to_budget(photo_page(), max_bytes)
    check_result(result, max_bytes)
    if reachable(max_bytes):
        assert result.size >= 0.9 * max_bytes, (result.quality, result.size / max_bytes)
    else:
        assert result.quality == best_fitting_quality(max_bytes)


def test_compress_to_budget_big_budget_is_one_encode():
    sizes = sizes_by_quality()
    for max_bytes in (sizes[95], sizes[95] * 3):
        result = compress_to_budget(photo_page(), max_bytes, dpi=300)
        assert result.encodes == 1 and result.quality == 95
        assert result.size == sizes[95] and result.fits and result.scale == 1.0
        with Image.open(io.BytesIO(result.data)) as im:
            assert tuple(im.info["dpi"]) == (300, 300)


def test_compress_to_budget_downscales_when_min_quality_is_too_big():
    image = photo_page()
    max_bytes = int(sizes_by_quality()[30] * 0.3)
    result = compress_to_budget(image, max_bytes, dpi=300)
    assert result.fits and result.size <= max_bytes
    assert result.scale < 1.0
    assert result.width < image.shape[1] and result.height < image.shape[0]
    assert result.width == round(image.shape[1] * result.scale)
    # The width is rounded first and the scale taken from it; the height is rounded too.
    slack = 0.5 + 0.5 * image.shape[0] / image.shape[1]
    assert abs(result.height - image.shape[0] * result.scale) <= slack
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.size == (result.width, result.height)
        # The written DPI shrinks with the pixels, so the page keeps its physical size.
        assert tuple(im.info["dpi"]) == (round(300 * result.scale),) * 2
        assert im.size[0] / im.info["dpi"][0] == pytest.approx(image.shape[1] / 300, rel=0.01)


def test_compress_to_budget_impossible_budget_reports_not_fitting():
    result = compress_to_budget(photo_page(), 50, min_side=16)
    assert not result.fits
    assert result.size > 50
    assert min(result.width, result.height) <= 16
    assert result.quality == 30


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_bytes": -10},
        {"max_bytes": 1000, "min_quality": 0},
        {"max_bytes": 1000, "max_quality": 101},
        {"max_bytes": 1000, "min_quality": 90, "max_quality": 80},
        {"max_bytes": 1000, "max_encodes": 1},
    ],
)
def test_compress_to_budget_rejects_bad_arguments(kwargs):
    with pytest.raises(OptionsError):
        compress_to_budget(asymmetric(), **kwargs)


# --- make_preview -------------------------------------------------------------------------


@pytest.mark.parametrize("long_side", [16, 300, 1024])
def test_make_preview_long_side(long_side):
    page = render_page(width=850, height=1100, font_size=20)
    data, w, h = make_preview(page, long_side=long_side, dpi=200)
    assert max(w, h) == long_side  # a large page is shrunk until its long side fits exactly
    assert abs(w / h - 850 / 1100) < 2 / min(w, h)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (w, h)
        im.load()
        assert tuple(im.info["dpi"]) == (round(200 * w / 850),) * 2


def test_make_preview_does_not_enlarge_and_rejects_tiny():
    small = asymmetric(40, 60)
    data, w, h = make_preview(small, long_side=512)
    assert (w, h) == (60, 40)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (60, 40)
    with pytest.raises(OptionsError):
        make_preview(small, long_side=15)


# --- plan_size: the normalized size, and max_output_pixels, before any resize (issue 18, 4)


@settings(max_examples=60, deadline=None)
@given(
    w=st.integers(1, 400),
    h=st.integers(1, 400),
    dpi=st.floats(72, 1200),
    target=st.one_of(st.none(), st.floats(10, 2400)),
    box=st.one_of(st.none(), st.tuples(st.integers(16, 600), st.integers(16, 600))),
    upscale=st.booleans(),
)
def test_plan_size_is_what_resampling_then_fitting_makes(w, h, dpi, target, box, upscale):
    from rythmiq.normalize import plan_size

    plan = plan_size(w, h, dpi=dpi, target_dpi=target, box=box, upscale=upscale)
    size, out_dpi = (w, h), dpi
    resampled = target is not None and abs(target - dpi) > 0.5
    if resampled:  # as resample_to_dpi makes it
        size = (max(1, round(w * target / dpi)), max(1, round(h * target / dpi)))
        out_dpi = dpi * size[0] / w
    assert plan.resampled == resampled
    if box is not None:
        fitted = fit_size(*size, box, upscale=upscale)
        assert plan.resized == (fitted != size)
        out_dpi *= fitted[0] / size[0]
        size = fitted
    assert plan.size == size and plan.dpi == pytest.approx(out_dpi, rel=1e-12)


def test_plan_size_refuses_an_output_over_max_output_pixels():
    from rythmiq import InputError
    from rythmiq.normalize import plan_size

    # A 5 KB scan at 72 dpi resampled to 2400 dpi: 33 times the side, 1111 times the pixels.
    kwargs = {"dpi": 72.0, "target_dpi": 2400.0, "max_pixels": 100_000_000}
    with pytest.raises(InputError) as exc:
        plan_size(1000, 1000, **kwargs)
    assert exc.value.code == "input.output_too_large"
    assert "33333x33333" in exc.value.message and "max_output_pixels" in exc.value.message
    assert plan_size(300, 300, **kwargs).size == (10000, 10000)  # exactly 100 Mpx: allowed
    # Fitting into a box afterwards makes the output small again: the plan is what counts.
    assert plan_size(1000, 1000, box=(2480, 3508), **kwargs).size == (2480, 2480)
    with pytest.raises(InputError, match="max_output_pixels=3999999"):
        plan_size(100, 100, dpi=300, box=(2000, 2000), upscale=True, max_pixels=3_999_999)
