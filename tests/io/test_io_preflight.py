"""rythmiq.io.preflight: pixel and structure limits refuse before decoding; frames are counted
from the structure."""

from __future__ import annotations

import io
import struct
import time

import numpy as np
import pytest
from _helpers import (
    encode,
    gif_with_comment_blocks,
    jp2_with_boxes,
    many_scan_jpeg,
    png_claiming,
    png_with_chunks,
    ppm_with_comment_lines,
    rle_bmp,
    sample_png,
    tiff_with_strips,
)
from PIL import Image

from rythmiq import InputError, OptionsError, load_image
from rythmiq.io import preflight

# --- pixels, from the header -----------------------------------------------------------------


def test_max_pixels_is_enforced():
    data, _ = sample_png()  # 12 x 10 = 120 pixels
    assert load_image(data, max_pixels=120).pixels.shape == (10, 12, 3)
    with pytest.raises(InputError) as info:
        load_image(data, max_pixels=119)
    assert info.value.code == "input.too_large"
    with pytest.raises(InputError) as info:
        load_image(np.zeros((10, 12), dtype=np.uint8), max_pixels=119)
    assert info.value.code == "input.too_large"
    with pytest.raises(OptionsError):
        load_image(data, max_pixels=0)


def test_forged_header_helper():
    with Image.open(io.BytesIO(png_claiming(900, 700))) as im:
        assert im.size == (900, 700)
    # Its pixel data is that of 8x8, so decoding it fails as truncated.
    with pytest.raises(InputError) as info:
        load_image(png_claiming(900, 700))
    assert info.value.code == "input.unreadable"


def test_too_large_is_refused_before_decoding():
    # Same forged file: over the limit it is refused from the header, never decoded.
    with pytest.raises(InputError) as info:
        load_image(png_claiming(900, 700), max_pixels=900 * 700 - 1)
    assert info.value.code == "input.too_large"


@pytest.mark.parametrize(("width", "height"), [(12_000, 10_000), (60_000, 60_000)])
def test_huge_header_is_refused_quickly(width, height):
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        load_image(png_claiming(width, height))  # default max_pixels (100 Mpx)
    assert info.value.code == "input.too_large"
    assert "pixels" in info.value.message
    assert time.perf_counter() - start < 2.0


# --- frames ----------------------------------------------------------------------------------


def test_frames_are_counted_without_decoding_them(monkeypatch):
    assert preflight.FRAME_COUNT_LIMIT == 1024
    monkeypatch.setattr(preflight, "FRAME_COUNT_LIMIT", 20)
    frames = [Image.new("RGB", (4, 4), (10 * i, 255 - 10 * i, 0)) for i in range(25)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:15])
    assert load_image(gif).frames == 15
    assert (
        load_image(encode(frames[0], "GIF", save_all=True, append_images=frames[1:])).frames == 20
    )
    pages = [Image.new("L", (4, 4), 10 * i) for i in range(25)]
    tif = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert load_image(tif).frames == 20
    tif = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:7])
    assert load_image(tif).frames == 7
    colours = [Image.new("RGB", (4, 4), (60 * i, 0, 255 - 60 * i)) for i in range(4)]
    webp = encode(colours[0], "WEBP", save_all=True, append_images=colours[1:], lossless=True)
    assert load_image(webp).frames == 4


def test_tiff_ifd_loop_ends():
    data = bytearray(encode(Image.new("L", (8, 8), 7), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * entries, first)  # next IFD = itself
    loaded = load_image(bytes(data))
    assert loaded.frames == 1 and loaded.pixels.shape == (8, 8)


def gif_with_huge_second_frame() -> bytes:
    """Frame 0 is 8x8; frame 1's descriptor claims 65535 x 65535 (4.3 Gpx)."""
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    data = bytearray(encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    second = data.index(b",", data.index(b",") + 1)  # the second image descriptor
    struct.pack_into("<HH", data, second + 5, 65535, 65535)
    return bytes(data)


def test_a_bomb_in_a_later_frame_is_never_decoded():
    loaded = load_image(gif_with_huge_second_frame())
    assert loaded.pixels.shape == (8, 8, 3)
    assert loaded.frames >= 1


def test_gif_frame_count_stops_at_its_budget(monkeypatch):
    frames = [Image.new("RGB", (16, 16), (15 * i, 0, 255 - 15 * i)) for i in range(12)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(gif).frames == 12
    monkeypatch.setattr(preflight, "_GIF_COUNT_BUDGET", 10)  # sub-blocks walked in all
    counted = load_image(gif).frames
    assert 1 <= counted < 12


# --- structure limits ------------------------------------------------------------------------


def test_jpeg_scan_limit():
    at_limit = many_scan_jpeg(preflight.MAX_JPEG_SCANS)
    assert at_limit.count(b"\xff\xda") == preflight.MAX_JPEG_SCANS
    assert load_image(at_limit).pixels.shape == (64, 64)
    with pytest.raises(InputError) as info:
        load_image(many_scan_jpeg(preflight.MAX_JPEG_SCANS + 1))
    assert info.value.code == "input.too_large" and "scans" in info.value.message


@pytest.mark.parametrize(
    ("limit", "make", "small", "what"),
    [
        ("MAX_PNG_CHUNKS", png_with_chunks, 50, "chunks"),
        ("MAX_HEADER_UNITS", gif_with_comment_blocks, 50, "extension blocks"),
        ("MAX_TIFF_STRIPS", tiff_with_strips, 50, "strips"),
        ("MAX_HEADER_UNITS", jp2_with_boxes, 50, "boxes"),
        ("_PPM_HEADER_WINDOW", ppm_with_comment_lines, 64, "header"),
    ],
)
def test_structure_limits(monkeypatch, limit, make, small, what):
    """At a (lowered) limit the file loads; one unit over, it is refused before decoding."""
    monkeypatch.setattr(preflight, limit, small)
    under = {"_PPM_HEADER_WINDOW": (small - 20) // 2, "MAX_HEADER_UNITS": small - 8}
    assert load_image(make(under.get(limit, small))).pixels.size > 0
    with pytest.raises(InputError) as info:
        load_image(make(small * 2))
    assert info.value.code == "input.too_large"
    assert what in info.value.message


def test_jpeg_marker_segment_limit(monkeypatch):
    monkeypatch.setattr(preflight, "MAX_HEADER_UNITS", 40)
    base = encode(Image.new("L", (8, 8), 1), "JPEG")
    assert load_image(base[:2] + b"\xff\xfe\x00\x02" * 20 + base[2:]).pixels.shape == (8, 8)
    for padding in (b"\xff\xfe\x00\x02" * 50, b"\xff" * 50, b"\x00" * 50):
        with pytest.raises(InputError) as info:
            load_image(base[:2] + padding + base[2:])
        assert info.value.code == "input.too_large"


def test_rle_bmp_pixel_limit(monkeypatch):
    monkeypatch.setattr(preflight, "MAX_RLE_BMP_PIXELS", 64 * 64)
    assert load_image(rle_bmp(64, 64)).pixels.shape[:2] == (64, 64)
    with pytest.raises(InputError) as info:
        load_image(rle_bmp(65, 64))
    assert info.value.code == "input.too_large" and "RLE" in info.value.message


def test_tiff_entry_limit(monkeypatch):
    monkeypatch.setattr(preflight, "MAX_HEADER_UNITS", 8)
    with pytest.raises(InputError) as info:
        load_image(tiff_with_strips(4))  # 9 entries
    assert info.value.code == "input.too_large" and "entries" in info.value.message


def test_real_structure_limits_refuse_quickly():
    """Just over each real limit, refusal costs a fraction of a second (no decode)."""
    hostile = [
        png_with_chunks(preflight.MAX_PNG_CHUNKS + 1),
        gif_with_comment_blocks(preflight.MAX_HEADER_UNITS + 1),
        tiff_with_strips(preflight.MAX_TIFF_STRIPS + 1),
        jp2_with_boxes(preflight.MAX_HEADER_UNITS + 1),
        ppm_with_comment_lines(preflight._PPM_HEADER_WINDOW),
        many_scan_jpeg(preflight.MAX_JPEG_SCANS + 1, side=16),
    ]
    for data in hostile:
        start = time.perf_counter()
        with pytest.raises(InputError) as info:
            load_image(data)
        assert info.value.code == "input.too_large"
        assert time.perf_counter() - start < 1.0, info.value.message


def tiff_with_exif_ifd(entries: int) -> bytes:
    """An 8x8 grey TIFF whose EXIF IFD has ``entries`` (dummy) entries."""

    def entry(tag: int, typ: int, n: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, typ, n, value)

    ifd_at = 8
    exif_at = ifd_at + 2 + 12 * 10 + 4
    pixels_at = exif_at + 2 + 12 * entries + 4
    ifd = [
        entry(256, 4, 1, 8),
        entry(257, 4, 1, 8),
        entry(258, 3, 1, 8),
        entry(259, 3, 1, 1),
        entry(262, 3, 1, 1),
        entry(273, 4, 1, pixels_at),
        entry(277, 3, 1, 1),
        entry(278, 4, 1, 8),
        entry(279, 4, 1, 64),
        entry(0x8769, 4, 1, exif_at),
    ]
    exif = [entry(0x9000 + k, 3, 1, k) for k in range(entries)]
    return (
        b"II*\x00"
        + struct.pack("<I", ifd_at)
        + struct.pack("<H", len(ifd))
        + b"".join(ifd)
        + struct.pack("<I", 0)
        + struct.pack("<H", len(exif))
        + b"".join(exif)
        + struct.pack("<I", 0)
        + b"\x80" * 64
    )


def test_tiff_metadata_ifd_limit(monkeypatch):
    monkeypatch.setattr(preflight, "MAX_HEADER_UNITS", 20)
    assert load_image(tiff_with_exif_ifd(20)).pixels.shape == (8, 8)
    with pytest.raises(InputError) as info:
        load_image(tiff_with_exif_ifd(21))
    assert info.value.code == "input.too_large" and "metadata IFD" in info.value.message
