"""rythmiq.io.load: the entry points; single images and arrays are one-page documents."""

from __future__ import annotations

import numpy as np
from _helpers import encode
from PIL import Image

from rythmiq import load_document, load_image


def test_single_images_and_arrays_are_one_page_documents(pages):
    doc = load_document(encode(Image.fromarray(pages[0]), "PNG"))
    assert (doc.format, doc.page_count) == ("PNG", 1)
    assert np.array_equal(next(doc.pages()).pixels, pages[0])
    doc = load_document(pages[2])
    assert (doc.format, doc.page_count, doc.encoded) == (None, 1, b"")


def test_an_array_is_checked_and_flattened_once(count_calls):
    from rythmiq.io import load

    flattened = count_calls(load, "array_pixels")
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    doc = load_document(rgba)
    (page,) = list(doc.pages())
    assert page.pixels.shape == (4, 5, 3) and len(flattened) == 1
    assert load_image(rgba).pixels.shape == (4, 5, 3) and len(flattened) == 2


def test_a_single_image_goes_through_each_step_once(pages, count_calls):
    from PIL import Image as PILImage

    from rythmiq.io import load, preflight

    steps = {
        "read": count_calls(load, "read_source"),
        "sniff": count_calls(load, "container"),
        "preflight": count_calls(load, "check_structure"),
        "open": count_calls(PILImage, "open"),
        "walk": count_calls(preflight, "tiff_ifds"),
    }
    doc = load_document(encode(Image.fromarray(pages[0]), "PNG"))
    assert len(list(doc.pages())) == 1
    assert {name: len(calls) for name, calls in steps.items()} == {
        "read": 1,
        "sniff": 1,
        "preflight": 1,
        "open": 1,
        "walk": 0,
    }


# ------------------------------ max_total_pixels bounds a single image too (issue 18, 14)


def test_max_total_pixels_bounds_a_single_image_before_it_is_decoded():
    import pytest
    from _helpers import png_claiming

    from rythmiq import InputError

    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    for source in (encode(Image.fromarray(rgb), "PNG"), encode(Image.fromarray(rgb), "JPEG"), rgb):
        with pytest.raises(InputError) as err:
            load_document(source, max_total_pixels=119)
        assert err.value.code == "input.too_large"
        assert "120 pixels" in err.value.message and "max_total_pixels" in err.value.message
        assert load_document(source, max_total_pixels=120).total_pixels == 120
    # From the header: an 8x8 PNG that claims 5000x5000 is refused, not decoded (and found
    # truncated).
    with pytest.raises(InputError) as err:
        load_document(png_claiming(5000, 5000), max_total_pixels=1_000_000)
    assert err.value.code == "input.too_large" and "25000000 pixels" in err.value.message


def test_max_total_pixels_bounds_a_single_image_in_process():
    import pytest

    from rythmiq import InputError, ProcessOptions, process

    png = encode(Image.new("L", (100, 80), 255), "PNG")
    with pytest.raises(InputError, match="max_total_pixels"):
        process(png, options=ProcessOptions(ocr=False, max_total_pixels=7999))
    assert process(png, options=ProcessOptions(ocr=False, max_total_pixels=8000)).page_count == 1
