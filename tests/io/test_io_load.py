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
