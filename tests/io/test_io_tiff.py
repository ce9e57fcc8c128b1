"""rythmiq.io.tiff: every IFD a page, checked before any page but the first is decoded, from
one Pillow image and one walk of the IFD chain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _helpers import tiff

from rythmiq import InputError, load_document


def test_multipage_tiff_pages_and_dpi(pages):
    doc = load_document(tiff(pages))
    assert (doc.format, doc.page_count) == ("TIFF", 3)
    got = list(doc.pages())
    for page, original in zip(got, pages, strict=True):
        assert page.pixels.shape == original.shape
        assert np.array_equal(page.pixels, original)  # LZW is lossless
        assert page.declared_dpi == (200, 200) and page.render_dpi is None
    assert doc.total_pixels == sum(p.shape[0] * p.shape[1] for p in pages)


def test_multipage_tiff_limits(pages):
    data = tiff(pages)
    with pytest.raises(InputError) as err:
        load_document(data, max_pages=2)
    assert err.value.code == "input.too_large"
    with pytest.raises(InputError) as err:
        load_document(data, max_total_pixels=850 * 1100 + 1100 * 850)
    assert err.value.code == "input.too_large"
    with pytest.raises(InputError) as err:
        load_document(data, max_pixels=900_000)  # page 1 is 935 000 px
    assert err.value.code == "input.too_large"


def test_tiff_chain_that_points_past_the_end_stops_there(pages):
    data = bytearray(tiff(pages[:2]))
    first_ifd = int.from_bytes(data[4:8], "little")
    entries = int.from_bytes(data[first_ifd : first_ifd + 2], "little")
    link = first_ifd + 2 + 12 * entries
    data[link : link + 4] = (len(data) + 1000).to_bytes(4, "little")
    doc = load_document(bytes(data))
    assert doc.page_count == 1 and len(list(doc.pages())) == 1


@pytest.mark.parametrize(
    "name", ["image-tiff-page2-keyerror.tif", "image-tiff-page2-missing-width.tif"]
)
def test_tiff_with_a_corrupt_second_page_fails_before_any_page_is_used(name):
    path = Path(__file__).parents[1] / "regressions" / name
    with pytest.raises(InputError) as err:
        load_document(path)
    assert err.value.code == "input.unreadable" and "page 2" in err.value.message


# --- each step once ---------------------------------------------------------------------------


def test_a_multipage_tiff_is_opened_once_and_its_ifd_chain_walked_once(pages, count_calls):
    from PIL import Image

    from rythmiq.io import preflight

    opens = count_calls(Image, "open")
    walks = count_calls(preflight, "tiff_ifds")
    doc = load_document(tiff(pages))
    assert len(opens) == 1 and len(walks) == 1
    # The one walk checks every IFD a document may have, and one more.
    assert walks[0][1] == {"check": 201}
    got = [page.pixels for page in doc.pages()]
    assert [p.shape for p in got] == [p.shape for p in pages]
    assert len(opens) == 1 and len(walks) == 1  # decoding the pages opened nothing again


def test_load_image_of_a_multipage_tiff_opens_it_once_and_checks_the_first_ifd(pages, count_calls):
    from PIL import Image

    from rythmiq import load_image
    from rythmiq.io import preflight

    opens = count_calls(Image, "open")
    walks = count_calls(preflight, "tiff_ifds")
    loaded = load_image(tiff(pages))
    assert (loaded.format, loaded.frames) == ("TIFF", 3)
    assert len(opens) == 1 and len(walks) == 1 and walks[0][1] == {"check": 1}


def test_pages_read_twice_or_side_by_side_share_the_one_pillow_image(pages):
    from concurrent.futures import ThreadPoolExecutor

    doc = load_document(tiff(pages))
    again, other = doc.pages(), doc.pages()
    for one, two, original in zip(again, other, pages, strict=True):  # interleaved
        assert np.array_equal(one.pixels, original) and np.array_equal(two.pixels, original)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: [p.pixels for p in doc.pages()], range(4)))
    for run in runs:
        assert all(np.array_equal(a, b) for a, b in zip(run, pages, strict=True))
