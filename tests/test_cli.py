"""The `rythmiq` command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PAGE_LINES, render_page
from PIL import Image

from rythmiq.metrics import word_f1

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args], capture_output=True, text=True, timeout=600, **kw
    )


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "page.png"
    Image.fromarray(render_page()).save(path, dpi=(200, 200))
    return path


def test_no_ocr_json(page_file, tmp_path):
    out = run("process", "--no-ocr", "--json", "--out", str(tmp_path), str(page_file))
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    d = json.loads(line)
    assert d["source"] == str(page_file) and d["quality"]["passed"] is True
    assert d["ocr"] is None and d["ocr_skipped_reason"] == "disabled"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "page.jpg",
        "page.json",
        "page.preview.jpg",
    ]
    assert json.loads((tmp_path / "page.json").read_text())["image"]["dpi"] == 200


def test_missing_file_exits_with_input_code(tmp_path):
    out = run("process", str(tmp_path / "nope.jpg"))
    assert out.returncode == 5
    assert "input.not_found" in out.stderr and out.stdout == ""


def test_not_an_image_names_the_type(tmp_path):
    bad = tmp_path / "doc.pdf"
    bad.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    out = run("process", str(bad))
    assert out.returncode == 5 and "PDF" in out.stderr


def test_partial_batch(page_file, tmp_path):
    out = run("process", "--no-ocr", "--json", str(page_file), str(tmp_path / "missing.png"))
    assert out.returncode == 3, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["quality"]["passed"] and rows[1]["error"]["code"] == "input.not_found"


def test_usage_errors_exit_2():
    assert run("process").returncode == 2
    assert run("process", "--box", "big", "x.jpg").returncode == 2
    out = run("process", "--threshold", "7", "x.jpg")
    assert out.returncode == 2 and "threshold" in out.stderr


@pytest.mark.integration
def test_process_with_ocr_prints_text(page_file):
    out = run("process", "--threads", "2", str(page_file))
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout
    text = out.stdout.split("  text:\n", 1)[1]
    assert word_f1(text, "\n".join(PAGE_LINES)) >= 0.95
    # Library logs and model chatter stay off stdout's first line.
    assert out.stdout.splitlines()[0] == str(page_file)


@pytest.mark.integration
def test_bundled_sample_runs():
    sample = ROOT / "examples" / "data" / "sample.jpg"
    out = run("process", "--json", str(sample))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["quality"]["passed"] and "127.80" in d["ocr"]["text"]
