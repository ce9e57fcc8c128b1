"""A corpus of odd and hostile files: each ends in a result or an InputError, in bounded time
and memory.

The files are processed in a child process (this file run as a script) under a 3 GiB address
space limit and a wall-clock timeout; the child reports each file's outcome and its peak RSS,
which must stay under 2 GiB. The generated corpus always runs; the third-party files in
``../shared/data/dev/odd`` run when they are present and are compared with their manifest.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _helpers import (
    DEV,
    dev_rows,
    encode,
    gif_with_comment_blocks,
    jp2_with_boxes,
    many_scan_jpeg,
    png_claiming,
    png_with_chunks,
    ppm_with_comment_lines,
    rle_bmp,
    tiff_with_strips,
)
from PIL import Image, ImageCms

from rythmiq.io import preflight

CHILD_TIMEOUT_S = 120
ADDRESS_SPACE_LIMIT = 3 * 1024**3
MAX_RSS = 2 * 1024**3

# --- the generated corpus -----------------------------------------------------------------


def page() -> Image.Image:
    """A small page: grey paper with dark text-like bars and a little noise."""
    rng = np.random.default_rng(3)
    pixels = np.full((260, 200, 3), 236, dtype=np.uint8)
    for top in range(30, 230, 24):
        pixels[top : top + 9, 20 : 150 + top % 40] = 25
    pixels += rng.integers(0, 10, pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiff_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 grey TIFF whose ImageWidth/ImageLength tags are patched."""
    data = bytearray(encode(Image.new("L", (8, 8), 255), "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", data, at)[0]
        if tag in (256, 257):
            struct.pack_into("<HHII", data, at, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (4, 4)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def corrupt_exif_jpeg(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = bytearray(encode(image, "JPEG", exif=exif))
    at = data.index(b"Exif\x00\x00") + 6
    data[at + 8 : at + 20] = b"\xff" * 12  # the IFD's entry count and first entry
    return bytes(data)


def generated_corpus() -> dict[str, tuple[bytes, str]]:
    """``name -> (bytes, expect)``; expect is ``ok``, ``error``, ``any`` or an error code."""
    img = page()
    jpeg, png = encode(img, "JPEG", quality=90), encode(img, "PNG")
    tiff = encode(img, "TIFF", compression="tiff_deflate")
    cases: dict[str, tuple[bytes, str]] = {
        "empty.bin": (b"", "input.empty"),
        "note.txt": (b"just a note, not a scan\n" * 20, "input.unsupported"),
        "page.html": (b"<!DOCTYPE html><html><body><img src=x></body></html>", "input.unsupported"),
        # process() reads PDFs: a PDF header with no document after it is corrupt, not foreign.
        "header-only.pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "input.unreadable"),
        "pillow.pdf": (encode(img, "PDF"), "ok"),
        "archive.zip": (b"PK\x03\x04" + bytes(100), "input.unsupported"),
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "input.unsupported"),
        "postscript.eps": (encode(img, "EPS"), "input.unsupported"),
        "icon.ico": (encode(img, "ICO"), "input.unsupported"),
        "noise.bin": (np.random.default_rng(1).bytes(4096), "input.unsupported"),
    }
    for ext, data in (("jpg", jpeg), ("png", png), ("tif", tiff)):
        for cut in (2, 8, 33, len(data) // 10, len(data) // 2, len(data) - 2):
            cases[f"truncated-{cut}.{ext}"] = (data[:cut], "any" if cut > 1000 else "error")
    gif_frames = [Image.new("RGB", (16, 12), (i % 256, (7 * i) % 256, 90)) for i in range(1000)]
    webp_frames = [img.rotate(angle) for angle in (0, 90, 180, 270)]
    lab = ImageCms.applyTransform(
        img,
        ImageCms.buildTransform(
            ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
        ),
    )
    exif = Image.Exif()
    exif[0x0112] = 6
    floats = np.linspace(0.0, 1.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    floats[3, 4], floats[5, 6] = np.nan, np.inf
    units = preflight.MAX_HEADER_UNITS
    rle_header = bytearray(rle_bmp(16, 16))  # a header claiming more RLE pixels than allowed
    struct.pack_into("<ii", rle_header, 18, 4097, 4096)
    bad_ihdr, bad_idat = bytearray(png), bytearray(png)
    bad_ihdr[29] ^= 0xFF
    idat = png.index(b"IDAT")
    bad_idat[idat + 4 + struct.unpack_from(">I", png, idat - 4)[0]] ^= 0xFF
    cases |= {
        "frames-1000.gif": (
            encode(gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:]),
            "ok",
        ),
        "one-pixel.png": (encode(Image.new("L", (1, 1), 0), "PNG"), "ok"),
        "strip-1x100000.png": (encode(Image.new("L", (1, 100_000), 255), "PNG"), "ok"),
        "strip-100000x1.png": (encode(Image.new("L", (100_000, 1), 255), "PNG"), "ok"),
        "huge-header.png": (png_claiming(100_000, 100_000), "input.too_large"),
        "huge-header.bmp": (bmp_claiming(50_000, 50_000), "input.too_large"),
        "huge-header.tif": (tiff_claiming(100_000, 100_000), "input.too_large"),
        "over-max-pixels.png": (png_claiming(11_000, 10_000), "input.too_large"),
        "cmyk.jpg": (encode(img.convert("CMYK"), "JPEG"), "ok"),
        "grey-16bit.png": (
            encode(Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257), "PNG"),
            "ok",
        ),
        "float.tif": (encode(Image.fromarray(floats), "TIFF"), "ok"),
        "grey-alpha.png": (encode(img.convert("LA"), "PNG"), "ok"),
        "palette-trns.png": (encode(img.convert("P"), "PNG", transparency=0), "ok"),
        "lab.tif": (encode(lab, "TIFF"), "ok"),
        "exif-rotated.jpg": (encode(img, "JPEG", exif=exif), "ok"),
        "corrupt-exif.jpg": (corrupt_exif_jpeg(img), "ok"),
        "bad-crc-ihdr.png": (bytes(bad_ihdr), "input.unreadable"),
        "bad-crc-idat.png": (bytes(bad_idat), "any"),
        "animated.webp": (
            encode(webp_frames[0], "WEBP", save_all=True, append_images=webp_frames[1:]),
            "ok",
        ),
        "progressive.jpg": (encode(img, "JPEG", progressive=True), "ok"),
        "page.jp2": (encode(img, "JPEG2000"), "ok"),
        "page.bmp": (encode(img, "BMP"), "ok"),
        "page.pgm": (encode(img.convert("L"), "PPM"), "ok"),
        "g4.tif": (encode(img.convert("1"), "TIFF", compression="group4"), "ok"),
        "jpeg-in.tif": (encode(img, "TIFF", compression="jpeg"), "ok"),
        "pages-3.tif": (encode(img, "TIFF", save_all=True, append_images=[img, img]), "ok"),
        "stereo.mpo": (encode(img, "MPO", save_all=True, append_images=[img]), "ok"),
        # One unit over each structure limit (the loading tests check the limits themselves).
        "too-many-scans.jpg": (many_scan_jpeg(preflight.MAX_JPEG_SCANS + 1, 32), "input.too_large"),
        "too-many-chunks.png": (png_with_chunks(preflight.MAX_PNG_CHUNKS + 1), "input.too_large"),
        "comment-blocks.gif": (gif_with_comment_blocks(units + 1), "input.too_large"),
        "too-many-strips.tif": (tiff_with_strips(preflight.MAX_TIFF_STRIPS + 1), "input.too_large"),
        "too-many-boxes.jp2": (jp2_with_boxes(units + 1), "input.too_large"),
        "long-header.pgm": (ppm_with_comment_lines(units), "input.too_large"),
        "rle-too-big.bmp": (bytes(rle_header), "input.too_large"),
    }
    return cases


# --- the child: process each file, report one JSON line each --------------------------------


def run_child(files: list[dict[str, str]]) -> None:
    """Process each file with a scripted engine; print one JSON line per file, then RSS."""
    import time
    import warnings

    from _helpers import ScriptedEngine

    from rythmiq import InputError, process

    warnings.simplefilter("error")  # as in the test suite: a warning is a failure
    for item in files:
        data = Path(item["path"]).read_bytes()
        start = time.perf_counter()
        report: dict[str, Any] = {"name": item["name"]}
        try:
            result = process(data, engine=ScriptedEngine())
        except InputError as exc:
            report |= {"outcome": exc.code, "detail": exc.message[:200]}
        except BaseException as exc:  # what this test exists to find
            report |= {"outcome": "crash", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            report |= {
                "outcome": "ok",
                "size": list(result.image.original_size),
                "pages": result.page_count,
            }
        report["seconds"] = round(time.perf_counter() - start, 3)
        print(json.dumps(report), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"max_rss": rss}), flush=True)


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def process_in_child(files: list[dict[str, str]], tmp_path: Path) -> tuple[dict[str, Any], int]:
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps(files))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, str(listing)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            preexec_fn=limit_memory,
            env=env,
            cwd=Path(__file__).parent,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        done = [json.loads(line)["name"] for line in out.splitlines() if '"name"' in line]
        hung = files[len(done)]["name"] if len(done) < len(files) else "?"
        pytest.fail(f"corpus did not finish in {CHILD_TIMEOUT_S} s; stuck on {hung}")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines and "max_rss" in lines[-1], proc.stderr[-3000:]
    reports = {line["name"]: line for line in lines[:-1]}
    assert sorted(reports) == sorted(f["name"] for f in files)
    return reports, int(lines[-1]["max_rss"])


def matches(outcome: str, expect: str) -> bool:
    if expect == "any":
        return outcome != "crash"
    if expect == "error":
        return outcome.startswith("input.")
    return outcome == expect


def table(reports: dict[str, Any], expected: dict[str, str]) -> str:
    rows = [f"{'file':<42} {'expect':<18} {'outcome':<18} {'s':>6}  detail"]
    for name in sorted(reports):
        r = reports[name]
        detail = r.get("detail", "x".join(map(str, r.get("size", []))))
        rows.append(
            f"{name:<42} {expected[name][:18]:<18} {r['outcome']:<18} {r['seconds']:>6.2f}  "
            f"{detail[:90]}"
        )
    return "\n".join(rows)


def test_generated_corpus(tmp_path):
    corpus = generated_corpus()
    files = []
    for name, (data, _) in corpus.items():
        path = tmp_path / name
        path.write_bytes(data)
        files.append({"name": name, "path": str(path)})
    reports, max_rss = process_in_child(files, tmp_path)
    expected = {name: expect for name, (_, expect) in corpus.items()}
    print("\n" + table(reports, expected) + f"\npeak RSS {max_rss / 1024**2:.0f} MiB")
    wrong = [n for n, r in reports.items() if not matches(r["outcome"], expected[n])]
    assert not wrong, table({n: reports[n] for n in wrong}, expected)
    assert max_rss <= MAX_RSS
    assert reports["frames-1000.gif"]["size"] == [16, 12]
    assert reports["exif-rotated.jpg"]["size"] == [260, 200]  # turned upright
    # Multi-page documents are read whole; multi-frame images are still one page.
    assert reports["pages-3.tif"]["pages"] == 3
    assert reports["pillow.pdf"]["pages"] == 1 and reports["pillow.pdf"]["size"] == [200, 260]
    assert reports["frames-1000.gif"]["pages"] == 1
    assert "corrupt" in reports["header-only.pdf"]["detail"]


def expected_outcome(row: dict[str, Any]) -> str:
    """``ok`` or ``error``, from a dev manifest row's ``expect``."""
    expect = str(row["expect"])
    if expect.startswith("ok") or "PDF-capable loader should succeed" in expect:
        return "ok"
    return "error"


@pytest.mark.devdata
def test_odd_dev_corpus(tmp_path):
    rows = dev_rows("odd")
    files = [{"name": row["file"], "path": str(DEV / "odd" / row["file"])} for row in rows]
    reports, max_rss = process_in_child(files, tmp_path)
    # The manifest says what Pillow does: "ok ..." must load, "error: ..." must be refused;
    # except that rythmiq reads PDFs itself, so the valid PDFs ("a PDF-capable loader should
    # succeed") must load too.
    expected = {row["file"]: expected_outcome(row) for row in rows}
    print("\n" + table(reports, expected) + f"\npeak RSS {max_rss / 1024**2:.0f} MiB")
    wrong = [n for n, r in reports.items() if not matches(r["outcome"], expected[n])]
    assert not wrong, table({n: reports[n] for n in wrong}, expected)
    assert max_rss <= MAX_RSS
    # Pillow applies this TIFF's orientation while loading; it must not be applied twice.
    assert reports["pillow_g4_orientation_6.tif"]["size"] == [590, 88]
    pdfs = sorted(n for n in reports if n.endswith(".pdf"))
    assert pdfs and all(expected[n] == "ok" for n in pdfs)
    for pdf in pdfs:
        assert reports[pdf]["outcome"] == "ok", reports[pdf]
        assert reports[pdf]["pages"] == (4 if pdf == "ocrmypdf_cardinal.pdf" else 1)


if __name__ == "__main__":
    run_child(json.loads(Path(sys.argv[1]).read_text()))
