"""rythmiq.io.pdf: PDF pages planned, checked and rendered with pdfium (PDFs built with fpdf2)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from _helpers import DEV, scan_pdf, text_pdf

from rythmiq import InputError, load_document


def test_pdf_pages_render_at_the_scans_own_resolution(pages):
    doc = load_document(scan_pdf(pages[:2], dpi=100))
    assert (doc.format, doc.page_count) == ("PDF", 2)
    got = list(doc.pages())
    assert [p.index for p in got] == [0, 1]
    for page, original in zip(got, pages[:2], strict=True):
        assert page.render_reason == "embedded_image" and page.render_dpi == 100
        assert page.declared_dpi == (100, 100)
        h, w = original.shape[:2]
        # pdfium may round a side up by a pixel.
        assert abs(page.pixels.shape[0] - h) <= 1 and abs(page.pixels.shape[1] - w) <= 1
        crop = page.pixels[: h - 1, : w - 1].astype(int)
        assert np.abs(crop - original[: h - 1, : w - 1].astype(int)).mean() < 8


def test_pdf_without_images_renders_at_pdf_dpi():
    doc = load_document(text_pdf(2), pdf_dpi=150)
    got = list(doc.pages())
    assert [p.render_reason for p in got] == ["default", "default"]
    # A4 at 150 dpi: 1240 x 1754 px.
    assert all(
        abs(p.pixels.shape[1] - 1240) <= 1 and abs(p.pixels.shape[0] - 1754) <= 1 for p in got
    )
    assert got[0].pixels.min() < 50  # the text was drawn


def test_pdf_page_rotation_is_applied():
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(text_pdf(1, size=(200, 400)))
    pdf[0].set_rotation(90)
    buf = io.BytesIO()
    pdf.save(buf)
    page = next(load_document(buf.getvalue(), pdf_dpi=72).pages())
    assert page.pixels.shape[0] < page.pixels.shape[1]  # landscape after /Rotate 90


def test_pdf_page_limit_and_total_pixels(pages):
    data = text_pdf(5)
    with pytest.raises(InputError) as err:
        load_document(data, max_pages=4)
    assert err.value.code == "input.too_large" and "5 pages" in err.value.message
    assert load_document(data, max_pages=5).page_count == 5
    with pytest.raises(InputError) as err:
        load_document(data, pdf_dpi=100, max_total_pixels=5 * 827 * 1170 - 1)
    assert err.value.code == "input.too_large" and "max_total_pixels" in err.value.message


def test_pdf_page_over_max_pixels_renders_smaller():
    doc = load_document(text_pdf(1), pdf_dpi=300, max_pixels=2_000_000)
    page = next(doc.pages())
    assert page.render_reason == "max_pixels" and page.render_dpi < 300
    assert page.pixels.shape[0] * page.pixels.shape[1] <= 2_000_000


def test_encrypted_pdf_is_refused_with_its_own_code(pages):
    data = scan_pdf(pages[:1], dpi=100, owner_password="owner", user_password="secret")
    with pytest.raises(InputError) as err:
        load_document(data)
    assert err.value.code == "input.encrypted" and "password" in err.value.message


@pytest.mark.parametrize(
    "data, code",
    [
        (b"%PDF-1.7\n%%EOF\n", "input.unreadable"),
        (
            b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n" + b"x" * 100,
            "input.unreadable",
        ),
    ],
)
def test_corrupt_pdfs_are_typed_errors(data, code):
    with pytest.raises(InputError) as err:
        doc = load_document(data)
        list(doc.pages())
    assert err.value.code == code


def test_truncated_pdf_is_a_typed_error_or_loads(pages):
    data = scan_pdf(pages[:2], dpi=100)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200):
        try:
            doc = load_document(data[:cut])
            for page in doc.pages():
                assert page.pixels.dtype == np.uint8
        except InputError as exc:
            assert exc.code in ("input.unreadable", "input.empty")


@pytest.mark.devdata
@pytest.mark.skipif(not (DEV / "odd").is_dir(), reason="dev data not present")
def test_odd_dev_pdfs_load_at_their_native_resolution():
    rows = [json.loads(line) for line in (DEV / "odd" / "manifest.jsonl").read_text().splitlines()]
    pdfs = {r["file"]: r for r in rows if r["file"].endswith(".pdf")}
    assert len(pdfs) == 5
    seen = {}
    for name in pdfs:
        doc = load_document(DEV / "odd" / name)
        seen[name] = [(p.pixels.shape[:2], p.render_dpi) for p in doc.pages()]
    # Four cardinal orientations, 2550x3300 1-bit scans at 300 dpi, portrait/landscape.
    assert [dpi for _, dpi in seen["ocrmypdf_cardinal.pdf"]] == [300.0] * 4
    assert [s[0] > s[1] for s, _ in seen["ocrmypdf_cardinal.pdf"]] == [True, False, True, False]
    # 1000x400 image on 360x288 pt: 200 x 100 dpi, rendered at the higher of the two.
    assert seen["ocrmypdf_aspect.pdf"] == [((800, 1000), 200.0)]
    assert seen["ocrmypdf_lichtenstein.pdf"][0][0] == (512, 512)
    # No /Contents: a blank page at the default 300 dpi.
    assert seen["ocrmypdf_no_contents.pdf"] == [((3000, 3000), 300.0)]
