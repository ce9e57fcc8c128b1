"""The docs hold: their snippets run as pasted into a script, their pictures exist, and the
script that draws the pictures works.

The getting-started page (docs/index.md) and the README's "Use it" are run as a user would
run them: the snippet saved as a script and run by a real Python in a folder that holds
``scan.jpg`` and ``scan.pdf`` (the names the snippets use), rendered here with Pillow.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import PAGE_LINES, render_page
from PIL import Image

from rythmiq.export import to_searchable_pdf
from rythmiq.keyring import Keyring
from rythmiq.metrics import word_f1
from rythmiq.ocr import OcrLine, OcrResult

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INDEX = DOCS / "index.md"
README = ROOT / "README.md"
# The sections of docs/index.md whose Python blocks are the getting-started path.
GETTING_STARTED = ("Python in five lines", "Many documents at once")

if not INDEX.is_file():  # an unpacked sdist that leaves the docs out
    pytest.skip("docs/ is not here", allow_module_level=True)


def _load_pictures():
    spec = importlib.util.spec_from_file_location("make_pictures", DOCS / "make_pictures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pictures = _load_pictures()


def python_blocks(markdown: str, heading: str) -> list[str]:
    """The ```python blocks of the section titled ``heading`` (up to the next heading of
    the same or a higher level)."""
    lines = markdown.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {re.escape(heading)}", line)),
        None,
    )
    assert start is not None, f"no section {heading!r}"
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if re.match(rf"#{{1,{level}}} ", lines[i]) and not _inside_fence(lines[start + 1 : i])
        ),
        len(lines),
    )
    section = "\n".join(lines[start + 1 : end])
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)


def _inside_fence(lines: list[str]) -> bool:
    return sum(line.startswith("```") for line in lines) % 2 == 1


def snippet_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment minus rythmiq's and the clouds' settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RYTHMIQ_", "AWS_", "SPACES_")) and k != "XDG_CONFIG_HOME"
    }
    return env | (extra or {})


def scans(folder: Path) -> None:
    """``scan.jpg`` and ``scan.pdf`` in ``folder``: the rendered page, as a JPEG and as a
    one-page PDF holding it as a scan."""
    page = Image.fromarray(render_page(width=1240, height=1754, font_size=34, margin=100))
    page.save(folder / "scan.jpg", quality=90, dpi=(150, 150))
    page.save(folder / "scan.pdf", resolution=150.0)


def run_snippet(code: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = folder / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
        env=env,
    )


# --------------------------------------------------------------------------- the snippets


def test_the_snippets_are_found():
    index = INDEX.read_text(encoding="utf-8")
    for heading in GETTING_STARTED:
        assert python_blocks(index, heading), heading
    five = python_blocks(index, "Python in five lines")
    assert len(five) == 1 and len([line for line in five[0].splitlines() if line.strip()]) <= 5
    # Every process_many is under the main guard: the workers import the script again.
    for heading in GETTING_STARTED:
        for code in python_blocks(index, heading):
            if "process_many" in code:
                assert 'if __name__ == "__main__":' in code
    (readme,) = python_blocks(README.read_text(encoding="utf-8"), "Use it")
    assert 'if __name__ == "__main__":' in readme


@pytest.mark.integration
def test_getting_started_snippets_run_as_scripts(tmp_path):
    scans(tmp_path)
    index = INDEX.read_text(encoding="utf-8")
    (five,) = python_blocks(index, "Python in five lines")
    out = run_snippet(five, tmp_path, snippet_env())
    assert out.returncode == 0, out.stderr[-3000:]
    score, *text = out.stdout.splitlines()
    value, passed, reasons = score.split(" ", 2)
    assert 0.8 <= float(value) <= 1.0 and passed == "True" and reasons == "()"
    assert word_f1("\n".join(text), "\n".join(PAGE_LINES)) > 0.9

    (many,) = python_blocks(index, "Many documents at once")
    out = run_snippet(many, tmp_path, snippet_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(out.stdout.splitlines()) == ["scan.jpg True", "scan.pdf True"]


@pytest.mark.integration
def test_readme_snippet_runs_as_a_script(tmp_path, s3_env):
    """The README's "Use it", with its s3:// store on the moto server: every call runs once
    (the workers of process_many do not run it again) and the store gets the document."""
    scans(tmp_path)
    (code,) = python_blocks(README.read_text(encoding="utf-8"), "Use it")
    assert "s3://my-space/" in code
    code = code.replace("s3://my-space/", f"s3://{s3_env['bucket']}/")
    keyring = Keyring.generate("docs-k1")
    names = ("RYTHMIQ_S3_ENDPOINT", "RYTHMIQ_S3_REGION", "SPACES_KEY", "SPACES_SECRET")
    env = snippet_env({name: os.environ[name] for name in names})
    env["RYTHMIQ_KEYRING"] = base64.b64encode(keyring.to_json().encode()).decode()
    out = run_snippet(code, tmp_path, env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    score = [line for line in lines if line.endswith(" True ()")]
    assert len(score) == 1, out.stdout  # process("scan.jpg") ran once, not once per worker
    assert word_f1(out.stdout, "\n".join(PAGE_LINES)) > 0.5
    assert sum(line.startswith("1 [0] ") for line in lines) == 1  # the PDF: 1 page, upright
    assert sorted(lines[-2:]) == ["scan.jpg True", "scan.pdf True"]

    import rythmiq

    stored = rythmiq.Store.open(f"s3://{s3_env['bucket']}/rythmiq").list()
    assert "output/u-42/job-7/result.json" in stored
    assert any(key.startswith("master/u-42/scan/") for key in stored)


# --------------------------------------------------------------------------- the pictures

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
SNIPPET = re.compile(r'^--8<-- "([^"]+)"', flags=re.M)


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_every_picture_the_docs_show_exists_and_every_picture_is_shown():
    shown: set[Path] = set()
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for link in IMAGE_LINK.findall(text):
            target = (page.parent / link).resolve()
            assert target.is_file(), f"{page.relative_to(ROOT)} shows {link}, which is missing"
            shown.add(target)
        for name in SNIPPET.findall(text):  # pymdownx.snippets: relative to the repository
            target = (ROOT / name).resolve()
            assert target.is_file(), f"{page.relative_to(ROOT)} includes {name}, which is missing"
            shown.add(target)
    unshown = sorted(p.name for p in (DOCS / "img").iterdir() if p.resolve() not in shown)
    assert not unshown, f"docs/img files no page shows: {unshown}"


def test_the_drawn_pictures_are_small_and_the_card_is_the_library_s():
    for name in ("ocr_boxes.png", "normalize_before_after.png", "searchable_pdf.png"):
        assert (DOCS / "img" / name).stat().st_size <= pictures.PNG_BUDGET, name
    card = (DOCS / "img" / "card.html").read_text(encoding="utf-8")
    assert len(card.encode()) <= pictures.PNG_BUDGET
    assert card.count('<div class="rythmiq-card">') == 1
    assert card.count("data:image/jpeg;base64,") == 1  # the preview, with its OCR boxes
    assert "HARBOUR LANE STATIONERY" in card  # the OCR text of the invoice, as read
    # One line after the comment: a Markdown page includes it as one raw-HTML block.
    assert len(card.strip().splitlines()) == 2


def test_the_page_drawing_functions(tmp_path):
    page = pictures.render_invoice()
    assert page.size == pictures.PAGE_SIZE
    gray = np.asarray(page.convert("L"))
    assert (gray < 128).sum() > 10_000  # text was drawn

    photo = pictures.photo_of(page, size=(600, 800))
    assert photo.size == (600, 800)
    assert np.asarray(photo.convert("L")).mean() < 0.75 * gray.mean()  # dim
    stored = pictures.phone_jpeg(photo)
    with Image.open(io.BytesIO(stored)) as im:
        assert im.size == (800, 600)  # stored on its side...
        assert im.getexif()[0x0112] == 6  # ...with the EXIF turn that puts it upright

    row = pictures.side_by_side(
        [pictures.caption(page, ["a", "b"], width=200), pictures.caption(photo, ["c"], width=300)]
    )
    assert row.width == 200 + 300 + 36 + 24
    size = pictures.save_png(row, tmp_path / "row.png")
    with Image.open(tmp_path / "row.png") as im:
        assert im.mode == "P" and size <= pictures.PNG_BUDGET


def test_the_pdf_picture_shades_the_text_layer():
    buf = io.BytesIO()
    Image.new("RGB", (800, 300), "white").save(buf, "JPEG")
    box = ((40.0, 100.0), (760.0, 100.0), (760.0, 160.0), (40.0, 160.0))
    ocr = OcrResult((OcrLine("Total due 127.80", 0.97, box),), 800, 300)
    pdf = to_searchable_pdf([(buf.getvalue(), ocr, 100.0)])
    picture = np.asarray(pictures.pdf_picture(pdf, height=300).convert("L"))
    # side_by_side: a 12 px margin, the two renders (800 px wide, as the page) 36 px apart.
    assert picture.shape[1] == 12 + 800 + 36 + 800 + 12
    band = (slice(12 + 125, 12 + 135), slice(100, 700))  # inside the line's box
    plain = picture[band[0], 12 + band[1].start : 12 + band[1].stop]
    shaded = picture[band[0], 12 + 800 + 36 + band[1].start : 12 + 800 + 36 + band[1].stop]
    # The image is blank: the plain render shows nothing of the invisible text; the other
    # shades the line's rectangle, and outlines the hit of "Total" at its left end.
    assert plain.min() > 240
    assert shaded.max() < 235


@pytest.mark.integration
def test_make_pictures_draws_every_picture(tmp_path):
    out = subprocess.run(
        [sys.executable, str(DOCS / "make_pictures.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=snippet_env(),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("ocr_boxes.png", "normalize_before_after.png", "searchable_pdf.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and min(im.size) > 300
    assert (tmp_path / "card.html").stat().st_size < pictures.PNG_BUDGET
    # What the captions claim: the photo was turned by its EXIF tag, levelled and resized.
    report = out.stdout.splitlines()[-1]
    assert re.search(r"skew \+(3\.[5-9]|4\.[0-5])", report), report
    # Its 72 dpi would make a 56-inch page: a camera's figure, so the default is used.
    assert "exif_orientation, deskewed, dpi_default, resized" in report, report
