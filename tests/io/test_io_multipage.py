"""Multi-page documents through process(), the store layout, the outputs, the CLI and the worker."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from _helpers import DEV, PAGE_LINES, ScriptedEngine, render_page, scan_pdf, text_pdf, tiff
from PIL import Image

import rythmiq
from rythmiq import InputError, OptionsError, ProcessOptions
from rythmiq.keyring import Keyring
from rythmiq.layout import Ids
from rythmiq.metrics import word_f1
from rythmiq.storage import Store

KEYRING = Keyring.generate("k-multipage")
FAST = ProcessOptions(rotate=False, box=None)


@pytest.fixture(scope="module")
def three_pages() -> list[np.ndarray]:
    return [
        render_page(PAGE_LINES[:3], width=850, height=1100, font_size=28, margin=60),
        render_page(PAGE_LINES[3:], width=1100, height=850, font_size=28, margin=60),
        render_page(["The last page"], width=850, height=1100, font_size=28, margin=60),
    ]


def test_tiff_document_gives_one_result_per_page(three_pages):
    engine = ScriptedEngine(lines=[("alpha", 0.9), ("beta", 0.8)])
    result = rythmiq.process(tiff(three_pages), options=FAST, engine=engine)
    assert result.page_count == 3 and result.source_format == "TIFF"
    assert [p.index for p in result.pages] == [0, 1, 2]
    assert [(p.image.width, p.image.height) for p in result.pages] == [
        (850, 1100),
        (1100, 850),
        (850, 1100),
    ]
    # Each page OCR'd once, on its own pixels.
    assert engine.calls == [(1100, 850, 3), (850, 1100, 3), (1100, 850, 3)]
    assert result.text == "alpha\nbeta\falpha\nbeta\falpha\nbeta"
    assert result.quality is result.pages[0].quality and result.ocr is result.pages[0].ocr
    assert result.passed == all(p.quality.passed for p in result.pages)
    # Document timings are the pages' sums; total covers them all.
    ocr_sum = sum(p.timings.ocr.wall_s for p in result.pages)
    assert result.timings.ocr.wall_s == pytest.approx(ocr_sum)
    assert result.timings.total.wall_s >= sum(p.timings.total.wall_s for p in result.pages)
    d = json.loads(result.to_json())
    assert d["page_count"] == 3 and len(d["pages"]) == 3
    assert d["pages"][1]["image"]["width"] == 1100 and d["text"] == result.text
    assert "ocr" not in d and "quality" not in d  # per page only


def test_pdf_document_pages_keep_their_dpi(three_pages):
    result = rythmiq.process(
        scan_pdf(three_pages[:2], dpi=150), options=FAST, engine=ScriptedEngine()
    )
    assert result.source_format == "PDF" and result.page_count == 2
    for page in result.pages:
        assert page.render_dpi == 150
        assert page.image.dpi == 150 and page.image.dpi_source == "metadata"


def test_quality_policy_applies_per_page(three_pages):
    blank = np.full((1100, 850), 255, np.uint8)
    engine = ScriptedEngine()
    options = ProcessOptions(rotate=False, on_quality_fail="skip_ocr")
    result = rythmiq.process(tiff([three_pages[0], blank]), options=options, engine=engine)
    assert result.pages[0].ocr is not None
    assert result.pages[1].ocr is None and result.pages[1].ocr_skipped_reason == "quality"
    assert not result.passed
    assert result.text is not None and result.text.endswith("\f")


def test_store_layout_and_outputs_for_a_multipage_document(three_pages, tmp_path):
    store = Store.open(str(tmp_path / "store"))
    ids = Ids("u", "j", "doc")
    engine = ScriptedEngine(lines=[("Invoice 4471 paid", 0.93)])
    options = ProcessOptions(rotate=False, outputs=("pdf", "hocr", "txt"))
    data = tiff(three_pages)
    result = rythmiq.process(
        data, options=options, engine=engine, store=store, ids=ids, keyring=KEYRING
    )
    keys = [a.key for a in result.artifacts]
    assert keys == [
        "master/u/doc/master.tif.enc",
        *[
            f"output/u/j/pages/{n:04d}/{k}.jpg"
            for n in (1, 2, 3)
            for k in ("normalized", "preview")
        ],
        "output/u/j/text.txt",
        "output/u/j/text.hocr",
        "output/u/j/searchable.pdf",
        "output/u/j/result.json",
    ]
    assert store.read("output/u/j/text.txt").decode() == result.text
    # hOCR: valid XML, one ocr_page per page, each naming its own image.
    root = ET.fromstring(store.read("output/u/j/text.hocr"))
    pages = [e for e in root.iter() if e.get("class") == "ocr_page"]
    assert len(pages) == 3
    assert 'image "pages/0002/normalized.jpg"; bbox 0 0 1100 850' in pages[1].get("title")
    # The PDF: three pages of the right shape, each with its text layer.
    pdf = pdfium.PdfDocument(store.read("output/u/j/searchable.pdf"))
    assert len(pdf) == 3
    for i, page in enumerate(pdf):
        w, h = page.get_size()
        image = result.pages[i].image
        assert w == pytest.approx(image.width / image.dpi * 72, abs=0.5)
        assert h == pytest.approx(image.height / image.dpi * 72, abs=0.5)
        assert page.get_textpage().get_text_bounded().strip() == "Invoice 4471 paid"
    stored = json.loads(store.read("output/u/j/result.json"))
    assert stored["page_count"] == 3 and [a["kind"] for a in stored["artifacts"]][-1] == "pdf"


def test_single_page_keeps_the_flat_layout_and_default_outputs(tmp_path, page):
    store = Store.open(str(tmp_path / "store"))
    result = rythmiq.process(
        page,
        options=FAST,
        engine=ScriptedEngine(),
        store=store,
        ids=Ids("u", "j", "d"),
        keyring=KEYRING,
    )
    assert [a.key for a in result.artifacts] == [
        "master/u/d/master.png.enc",
        "output/u/j/normalized.jpg",
        "output/u/j/preview.jpg",
        "output/u/j/text.txt",
        "output/u/j/result.json",
    ]


def test_a_document_over_a_limit_writes_nothing(three_pages, tmp_path):
    root = tmp_path / "store"
    store = Store.open(str(root))
    for options in (
        ProcessOptions(rotate=False, max_pages=2),
        ProcessOptions(rotate=False, max_total_pixels=2 * 850 * 1100),
    ):
        with pytest.raises(InputError) as err:
            rythmiq.process(
                tiff(three_pages),
                options=options,
                engine=ScriptedEngine(),
                store=store,
                ids=Ids("u", "j", "d"),
                keyring=KEYRING,
            )
        assert err.value.code == "input.too_large"
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"outputs": ("docx",)},
        {"outputs": "pdf"},
        {"max_pages": 10_000},
        {"max_pages": 0},
        {"pdf_dpi": 20},
        {"rotate": "yes"},
        {"max_total_pixels": 1.5},
    ],
)
def test_bad_document_options(kwargs):
    with pytest.raises(OptionsError):
        ProcessOptions(**kwargs)


def test_outputs_are_normalised_and_round_trip_through_dicts():
    options = ProcessOptions(outputs=("pdf", "txt", "pdf"))
    assert options.outputs == ("txt", "pdf")
    assert ProcessOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options


def test_payload_accepts_document_options_and_refuses_unknown_outputs():
    from rythmiq.payload import parse_payload

    body = {
        "version": 1,
        "job_id": "j",
        "user_id": "u",
        "document_id": "a",
        "input": "input/a.pdf",
        "output": "file:///tmp/x",
        "options": {"outputs": ["pdf", "hocr"], "max_pages": 50, "pdf_dpi": 200, "rotate": False},
    }
    parsed = parse_payload(json.dumps(body))
    assert parsed.options.outputs == ("hocr", "pdf") and parsed.options.max_pages == 50
    body["options"]["outputs"] = ["pdf", "docx"]
    with pytest.raises(rythmiq.PayloadError):
        parse_payload(json.dumps(body))


# --------------------------------------------------------------------------- real OCR


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=cwd,
    )


@pytest.fixture
def keyring_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RYTHMIQ_", "AWS_", "SPACES_"))}
    env["RYTHMIQ_KEYRING"] = base64.b64encode(KEYRING.to_json().encode()).decode()
    env["RYTHMIQ_THREADS"] = "2"
    return env


@pytest.mark.integration
def test_cli_pdf_gives_a_searchable_pdf_whose_text_matches_the_ocr(tmp_path, keyring_env):
    """The issue's 'done when': `rythmiq process scan.pdf --pdf --out out/`.

    Page 2 of the scan is upside down, as a sheet fed the wrong way round would be.
    """
    first = render_page(PAGE_LINES[:3], width=1275, height=1650, font_size=36, margin=90)
    second = np.rot90(
        render_page(PAGE_LINES[3:], width=1275, height=1650, font_size=36, margin=90), 2
    )
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scan_pdf([first, np.ascontiguousarray(second)], dpi=150))
    out = tmp_path / "out"
    run = _cli(
        "process", str(scan), "--pdf", "--hocr", "--out", str(out), "--job-id", "j1",
        env=keyring_env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "2 pages (PDF)" in run.stdout and "rotated 180 deg" in run.stdout
    job = out / "output" / "local" / "j1"
    result = json.loads((job / "result.json").read_text())
    assert result["page_count"] == 2
    assert [p["orientation"]["rotation"] for p in result["pages"]] == [0, 180]
    pdf = pdfium.PdfDocument((job / "searchable.pdf").read_bytes())
    assert len(pdf) == 2
    for i, expected in enumerate((PAGE_LINES[:3], PAGE_LINES[3:])):
        ocr_text = result["pages"][i]["ocr"]["text"]
        extracted = pdf[i].get_textpage().get_text_bounded()
        assert word_f1(ocr_text, "\n".join(expected)) >= 0.9, ocr_text
        # What copy/search sees is what OCR read, word for word.
        assert word_f1(extracted, ocr_text) >= 0.98, (extracted, ocr_text)
        # Each OCR line can be found in the PDF text layer.
        for line in result["pages"][i]["ocr"]["lines"]:
            assert pdf[i].get_textpage().search(line["text"]).get_next() is not None, line
    ET.fromstring((job / "text.hocr").read_bytes())
    assert not (job / "text.txt").exists()  # only what was asked for


@pytest.mark.integration
def test_worker_stores_the_outputs_the_payload_asks_for(tmp_path, keyring_env):
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    pages = [render_page(PAGE_LINES[:2], width=1275, height=1650, font_size=36, margin=90)]
    store.write("input/scan.pdf", scan_pdf(pages, dpi=150))
    store.write("input/contract.pdf", text_pdf(1))
    body = {
        "version": 1,
        "job_id": "job-pdf",
        "user_id": "u1",
        "documents": [
            {"document_id": "scan", "input": "input/scan.pdf"},
            {"document_id": "contract", "input": "input/contract.pdf"},
        ],
        "options": {"outputs": ["pdf", "txt"]},
        "output": str(store_dir),
    }
    run = subprocess.run(
        [sys.executable, "-m", "rythmiq.worker"],
        input=json.dumps(body).encode(),
        capture_output=True,
        env=keyring_env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert [d["status"] for d in job["documents"]] == ["ok", "ok"]
    assert job["documents"][0]["page_count"] == 1
    for doc in ("scan", "contract"):
        folder = store_dir / "output" / "u1" / "job-pdf" / doc
        pdf = pdfium.PdfDocument((folder / "searchable.pdf").read_bytes())
        text = pdf[0].get_textpage().get_text_bounded()
        assert text.strip() and (folder / "text.txt").read_text().strip()
    contract = (store_dir / "output/u1/job-pdf/contract/searchable.pdf").read_bytes()
    words = pdfium.PdfDocument(contract)[0].get_textpage().get_text_bounded()
    assert word_f1(words, "Page 1 of the contract") >= 0.8, words
    assert (store_dir / "master/u1/scan/master.pdf.enc").is_file()


def test_image_bytes_still_process_as_before(page):
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, "JPEG", quality=90)
    result = rythmiq.process(buf.getvalue(), options=FAST, engine=ScriptedEngine())
    assert result.page_count == 1 and result.source_format == "JPEG"
    assert result.pages[0].render_dpi is None and result.pages[0].orientation is None


@pytest.mark.integration
@pytest.mark.devdata
@pytest.mark.skipif(not (DEV / "odd" / "ocrmypdf_cardinal.pdf").is_file(), reason="no dev data")
def test_cardinal_pdf_pages_turned_four_ways_read_alike():
    """OCRmyPDF's cardinal.pdf: one two-column scan baked in at 0, 90, 180 and 270 degrees."""
    result = rythmiq.process(
        DEV / "odd" / "ocrmypdf_cardinal.pdf", options=ProcessOptions(threads=2)
    )
    assert result.page_count == 4
    rotations = [p.orientation.rotation for p in result.pages if p.orientation is not None]
    assert sorted(rotations) == [0, 90, 180, 270], rotations
    texts = [p.ocr.text for p in result.pages if p.ocr is not None]
    upright = texts[rotations.index(0)]
    assert len(upright.split()) > 200
    for rotation, text in zip(rotations, texts, strict=True):
        assert word_f1(text, upright) >= 0.95, (rotation, word_f1(text, upright))
    # Every page came out upright in portrait, whatever its orientation in the file.
    assert all(p.image.height > p.image.width for p in result.pages)
