"""rythmiq.io.raster: every Pillow mode to uint8, EXIF orientation, declared DPI, arrays, and
decoder errors mapped to InputError."""

from __future__ import annotations

import hashlib
import io
import struct

import numpy as np
import pytest
from _helpers import (
    encode,
    sample_png,
)
from PIL import Image, ImageOps

from rythmiq import InputError, load_image
from rythmiq.io import preflight
from rythmiq.io.raster import to_uint8

# --- Pillow modes ----------------------------------------------------------------------------


def check_pixels(pixels: np.ndarray, ndim: int) -> None:
    assert pixels.dtype == np.uint8
    assert pixels.ndim == ndim
    if ndim == 3:
        assert pixels.shape[2] == 3


def test_mode_1_becomes_black_and_white_gray():
    im = Image.new("1", (8, 4), 1)
    im.putpixel((2, 1), 0)
    loaded = load_image(encode(im, "PNG"))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode == "1" and loaded.format == "PNG"
    assert loaded.pixels[1, 2] == 0
    assert set(np.unique(loaded.pixels).tolist()) == {0, 255}
    assert int((loaded.pixels == 0).sum()) == 1


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_mode_l_is_unchanged(fmt):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    loaded = load_image(encode(Image.fromarray(values), fmt))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode == "L"
    np.testing.assert_array_equal(loaded.pixels, values)


def test_mode_la_is_composited_on_white():
    la = np.array([[[0, 0], [0, 255], [0, 128], [100, 255]]], dtype=np.uint8)
    im = Image.fromarray(la, "LA")
    loaded = load_image(encode(im, "PNG"))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode == "LA"
    assert loaded.pixels[0, 0] == 255  # fully transparent -> white paper
    assert loaded.pixels[0, 1] == 0  # opaque black stays black
    assert abs(int(loaded.pixels[0, 2]) - 127) <= 1  # half transparent black -> mid grey
    assert loaded.pixels[0, 3] == 100


def test_mode_rgba_is_composited_on_white():
    rgba = np.array(
        [[[10, 20, 30, 0], [200, 0, 0, 255], [0, 0, 0, 128], [0, 0, 255, 255]]], dtype=np.uint8
    )
    loaded = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    check_pixels(loaded.pixels, 3)
    assert loaded.mode == "RGBA"
    assert loaded.pixels[0, 0].tolist() == [255, 255, 255]
    assert loaded.pixels[0, 1].tolist() == [200, 0, 0]
    assert all(abs(int(v) - 127) <= 1 for v in loaded.pixels[0, 2])
    assert loaded.pixels[0, 3].tolist() == [0, 0, 255]


def palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 - 3) * 3)
    im.putdata([0, 1, 2])
    return im


def test_mode_p_without_transparency_becomes_rgb():
    loaded = load_image(encode(palette_image(), "PNG"))
    check_pixels(loaded.pixels, 3)
    assert loaded.mode == "P"
    assert loaded.pixels[0].tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_mode_p_with_transparency_is_composited_on_white(fmt):
    loaded = load_image(encode(palette_image(), fmt, transparency=0))
    check_pixels(loaded.pixels, 3)
    assert loaded.mode == "P"
    # Index 0 is black but transparent: it must come out as white paper, not black.
    assert loaded.pixels[0].tolist() == [[255, 255, 255], [255, 0, 0], [0, 0, 255]]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_mode_i16_is_scaled_not_clipped(fmt):
    values = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    loaded = load_image(encode(im, fmt))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode.startswith("I;16")
    assert loaded.pixels[0].tolist() == [0, 1, 4, 128, 255]


def test_mode_i_with_16_bit_values_is_scaled():
    values = np.array([[0, 255, 32768, 65535]], dtype=np.int32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode == "I"
    assert loaded.pixels[0].tolist() == [0, 1, 128, 255]


def test_mode_i_with_8_bit_values_is_kept():
    values = np.array([[0, 17, 128, 255]], dtype=np.int32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    assert loaded.mode == "I"
    assert loaded.pixels[0].tolist() == [0, 17, 128, 255]


def test_mode_f_unit_range_is_scaled_to_255():
    values = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    check_pixels(loaded.pixels, 2)
    assert loaded.mode == "F"
    assert loaded.pixels[0].tolist() == [0, 64, 128, 255]


def test_mode_f_other_range_is_stretched():
    values = np.array([[-10.0, 0.0, 10.0]], dtype=np.float32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    assert loaded.mode == "F"
    assert loaded.pixels[0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_mode_cmyk_becomes_rgb(fmt):
    im = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan
    loaded = load_image(encode(im, fmt))
    check_pixels(loaded.pixels, 3)
    assert loaded.mode == "CMYK"
    r, g, b = (int(v) for v in loaded.pixels[8, 8])
    assert r <= 5 and g >= 250 and b >= 250


def test_rgb_jpeg_roundtrip():
    rgb = np.zeros((16, 24, 3), dtype=np.uint8)
    rgb[:, :12] = (220, 30, 30)
    data = encode(Image.fromarray(rgb), "JPEG", quality=95)
    loaded = load_image(data)
    check_pixels(loaded.pixels, 3)
    assert (loaded.format, loaded.mode, loaded.orientation, loaded.frames) == ("JPEG", "RGB", 1, 1)
    assert np.abs(loaded.pixels.astype(int) - rgb.astype(int)).max() < 40
    assert loaded.byte_size == len(data)


# --- EXIF orientation ------------------------------------------------------------------------


def quadrants(w: int = 64, h: int = 32) -> np.ndarray:
    """Four flat colour blocks, so JPEG noise does not blur which corner went where."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)  # top-left red
    img[: h // 2, w // 2 :] = (0, 255, 0)  # top-right green
    img[h // 2 :, : w // 2] = (0, 0, 255)  # bottom-left blue
    img[h // 2 :, w // 2 :] = (255, 255, 255)  # bottom-right white
    return img


def nearest_colour(pixel: np.ndarray) -> str:
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}
    return min(colours, key=lambda c: np.abs(np.array(colours[c]) - pixel.astype(int)).sum())


@pytest.mark.parametrize(
    ("orientation", "corners"),
    [
        # Stored top-left red; orientation 6 means "rotate 90 degrees clockwise to view".
        (6, {"tl": "blue", "tr": "red", "bl": "white", "br": "green"}),
        (8, {"tl": "green", "tr": "white", "bl": "red", "br": "blue"}),
        (3, {"tl": "white", "tr": "blue", "bl": "green", "br": "red"}),
    ],
)
def test_exif_orientation_is_applied(orientation, corners):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(quadrants()), "JPEG", quality=95, exif=exif)
    loaded = load_image(data)
    assert loaded.orientation == orientation
    expected_shape = (64, 32, 3) if orientation in (6, 8) else (32, 64, 3)
    assert loaded.pixels.shape == expected_shape
    with Image.open(io.BytesIO(data)) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(loaded.pixels, upright)
    px = loaded.pixels
    found = {"tl": px[2, 2], "tr": px[2, -3], "bl": px[-3, 2], "br": px[-3, -3]}
    assert {k: nearest_colour(v) for k, v in found.items()} == corners


def test_no_exif_means_orientation_1():
    loaded = load_image(encode(Image.fromarray(quadrants()), "PNG"))
    assert loaded.orientation == 1
    np.testing.assert_array_equal(loaded.pixels, quadrants())


# --- DPI -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "dpi"),
    [("JPEG", (200, 200)), ("JPEG", (300, 600)), ("PNG", (300, 300)), ("TIFF", (150, 150))],
)
def test_declared_dpi_is_read(fmt, dpi):
    loaded = load_image(encode(Image.new("RGB", (20, 10), "white"), fmt, dpi=dpi))
    assert loaded.declared_dpi == pytest.approx(dpi, abs=0.01)  # PNG stores dots per metre


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF"])
def test_missing_dpi_is_none(fmt):
    loaded = load_image(encode(Image.new("RGB", (20, 10), "white"), fmt))
    assert loaded.declared_dpi is None


def _exif(**tags: float) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # an orientation, as every phone writes
    for tag, value in tags.items():
        exif[{"xres": 0x011A, "yres": 0x011B, "unit": 0x0128}[tag]] = value
    return exif


def test_a_jpeg_with_exif_but_no_resolution_declares_no_dpi():
    # Pillow reports 72 dpi for every JPEG with EXIF and no resolution in it: made up.
    page = Image.new("RGB", (850, 1100), "white")
    loaded = load_image(encode(page, "JPEG", exif=_exif()))
    assert loaded.declared_dpi is None and loaded.orientation == 6


@pytest.mark.parametrize(
    ("kwargs", "dpi"),
    [
        ({"exif": _exif(xres=150.0, yres=150.0, unit=2)}, (150, 150)),  # EXIF resolution
        ({"exif": _exif(), "dpi": (200, 200)}, (200, 200)),  # the JFIF header's
        ({"exif": _exif(xres=72.0, yres=72.0, unit=2)}, (72, 72)),  # a written 72 stays
    ],
)
def test_a_resolution_the_jpeg_really_holds_is_read(kwargs, dpi):
    loaded = load_image(encode(Image.new("RGB", (850, 1100), "white"), "JPEG", **kwargs))
    assert loaded.declared_dpi == pytest.approx(dpi)


# --- arrays ----------------------------------------------------------------------------------


def test_gray_array_is_used_as_is():
    gray = np.arange(30, dtype=np.uint8).reshape(5, 6)
    loaded = load_image(gray)
    np.testing.assert_array_equal(loaded.pixels, gray)
    assert (loaded.format, loaded.mode, loaded.byte_size, loaded.orientation) == (None, "L", 0, 1)
    assert loaded.declared_dpi is None and loaded.frames == 1
    assert loaded.sha256 == hashlib.sha256(gray.tobytes()).hexdigest()


def test_single_channel_array_is_squeezed():
    arr = np.arange(30, dtype=np.uint8).reshape(5, 6, 1)
    loaded = load_image(arr)
    assert loaded.pixels.shape == (5, 6) and loaded.mode == "L"
    np.testing.assert_array_equal(loaded.pixels, arr[:, :, 0])


def test_rgb_array_is_used_as_is():
    rgb = (np.arange(90) % 256).astype(np.uint8).reshape(5, 6, 3)
    loaded = load_image(rgb)
    assert loaded.mode == "RGB"
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.sha256 == hashlib.sha256(rgb.tobytes()).hexdigest()


def test_rgba_array_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)
    rgba[0, 1] = (10, 20, 30, 255)
    rgba[1, 0] = (0, 0, 0, 128)
    rgba[1, 1] = (255, 0, 0, 255)
    loaded = load_image(rgba)
    check_pixels(loaded.pixels, 3)
    assert loaded.pixels[0, 0].tolist() == [255, 255, 255]
    assert loaded.pixels[0, 1].tolist() == [10, 20, 30]
    assert all(abs(int(v) - 127) <= 1 for v in loaded.pixels[1, 0])
    assert loaded.pixels[1, 1].tolist() == [255, 0, 0]


def test_non_contiguous_array_hash_is_of_its_values():
    base = (np.arange(200) % 256).astype(np.uint8).reshape(10, 20)
    view = base[:, ::2]
    assert load_image(view).sha256 == hashlib.sha256(view.copy().tobytes()).hexdigest()


def test_wrong_array_dtype_and_shape():
    for bad in (
        np.zeros((4, 4), dtype=np.float32),
        np.zeros((4, 4), dtype=np.uint16),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((2, 4, 4, 3), dtype=np.uint8),
    ):
        with pytest.raises(InputError) as info:
            load_image(bad)
        assert info.value.code == "input.invalid_array", bad.shape


# --- multi-frame files -----------------------------------------------------------------------


def test_multi_frame_gif_uses_first_frame():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (8, 6), c) for c in colours]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(data)
    assert (loaded.format, loaded.frames) == ("GIF", 3)
    assert loaded.pixels.shape == (6, 8, 3)
    assert np.all(loaded.pixels == np.array(colours[0], dtype=np.uint8))


def test_multi_page_tiff_uses_first_page():
    pages = [Image.new("L", (8, 6), v) for v in (30, 200)]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    loaded = load_image(data)
    assert (loaded.format, loaded.frames) == ("TIFF", 2)
    assert loaded.pixels.shape == (6, 8)
    assert np.all(loaded.pixels == 30)


# --- every Pillow mode -----------------------------------------------------------------------


def test_lab_tiff_becomes_rgb():
    from PIL import ImageCms

    to_lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    colours = [(119, 119, 119), (255, 255, 255), (0, 0, 0), (200, 40, 40), (30, 90, 200)]
    rgb = np.array([colours], dtype=np.uint8)
    lab = ImageCms.applyTransform(Image.fromarray(rgb), to_lab)
    assert lab.mode == "LAB"
    # L*=50, a*=b*=0 is mid grey: Pillow stores L* x 255/100 and a*, b* offset by 128.
    assert lab.getpixel((0, 0)) == (128, 128, 128)
    data = encode(lab, "TIFF")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "LAB"
    loaded = load_image(data)
    check_pixels(loaded.pixels, 3)
    assert loaded.mode == "LAB"
    assert loaded.pixels[0, 0].tolist() == [119, 119, 119]
    # 8-bit Lab quantises a little; each colour comes back within a few levels.
    assert np.abs(loaded.pixels.astype(int) - rgb.astype(int)).max() <= 4


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_every_pillow_mode_becomes_gray_or_rgb(mode):
    """A file in any mode Pillow can write loads as uint8 L/RGB; others convert directly."""

    im = Image.new(mode, (5, 3))
    for fmt in ("TIFF", "PNG", "WEBP"):
        try:
            data = encode(im, fmt)
        except (OSError, ValueError, KeyError):
            continue
        loaded = load_image(data)
        check_pixels(loaded.pixels, loaded.pixels.ndim)
        assert loaded.pixels.shape[:2] == (3, 5)
        return
    try:
        pixels = to_uint8(im)
    except InputError as exc:
        assert exc.code == "input.unsupported"
        return
    check_pixels(pixels, pixels.ndim)
    assert pixels.shape[:2] == (3, 5)


def test_mode_pa_keeps_its_colours():
    im = palette_image().convert("PA")
    im.putpixel((0, 0), (0, 0))  # index 0 (black), fully transparent
    loaded = load_image(encode(im, "TIFF"))
    assert loaded.mode == "PA"
    assert loaded.pixels[0].tolist() == [[255, 255, 255], [255, 0, 0], [0, 0, 255]]


def test_float_nan_and_infinity_do_not_warn_or_crash():
    values = np.array([[0.0, 0.5, np.nan, np.inf, -np.inf, 1.0]], dtype=np.float32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    assert loaded.pixels[0].tolist() == [0, 128, 0, 255, 0, 255]
    all_nan = np.full((2, 2), np.nan, dtype=np.float32)
    assert load_image(encode(Image.fromarray(all_nan), "TIFF")).pixels.tolist() == [[0, 0]] * 2


def test_signed_integers_are_stretched():
    values = np.array([[-100, 0, 100]], dtype=np.int32)
    loaded = load_image(encode(Image.fromarray(values), "TIFF"))
    assert loaded.mode == "I"
    assert loaded.pixels[0].tolist() == [0, 128, 255]


def test_large_16_bit_image_is_converted_in_blocks():
    # Taller than one conversion block, so the block edges are exercised.
    values = (np.arange(3000 * 2000, dtype=np.uint32) % 65536).astype(np.uint16)
    values = values.reshape(3000, 2000)
    loaded = load_image(encode(Image.fromarray(values), "PNG"))
    expected = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    np.testing.assert_array_equal(loaded.pixels, expected)


# --- metadata that is broken, not the image --------------------------------------------------


def exif_block(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """Raw little-endian EXIF (TIFF) bytes with one IFD of ``(tag, type, count, value)``."""
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


@pytest.mark.parametrize(
    "exif",
    [
        exif_block([(0x0112, 2, 4, b"six\x00")]),  # orientation as text
        exif_block([(0x0112, 3, 1, struct.pack("<H", 77))]),  # out of range
        exif_block([(0x0112, 3, 1000, struct.pack("<I", 10_000))]),  # points past the end
        b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 10,  # 65535 entries, 10 bytes
        b"\xff" * 40,  # not even a TIFF header
    ],
)
def test_corrupt_exif_is_ignored(exif):
    data = encode(Image.fromarray(quadrants()), "JPEG", quality=95, exif=exif)
    loaded = load_image(data)  # no warning escapes, nothing raises
    assert loaded.orientation == 1
    assert loaded.pixels.shape == (32, 64, 3)


def test_oversized_exif_block_is_ignored(monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6
    for tag in range(0x9000, 0x9008):
        exif[tag] = 1
    data = encode(Image.fromarray(quadrants()), "PNG", exif=exif)  # an eXIf chunk
    assert load_image(data).orientation == 6
    monkeypatch.setattr(preflight, "MAX_HEADER_UNITS", 4)  # 9 entries is now too many
    loaded = load_image(data)
    assert loaded.orientation == 1 and loaded.pixels.shape == (32, 64, 3)
    # A BigTIFF-style EXIF block claiming 2**40 entries: not even looked at.
    bigtiff = b"II+\x00\x08\x00\x00\x00" + struct.pack("<QQ", 16, 1 << 40) + bytes(40)
    monkeypatch.setattr(preflight, "MAX_HEADER_UNITS", 1 << 16)
    assert load_image(encode(Image.new("L", (4, 4)), "PNG", exif=bigtiff)).orientation == 1


def test_pillow_bomb_warning_is_not_raised(monkeypatch):
    # Between Pillow's limit and twice it, Pillow only warns; our max_pixels decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    data = encode(Image.new("L", (8, 8), 255), "PNG")  # 64 pixels
    assert load_image(data).pixels.shape == (8, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 64 > 2 x 20: Pillow refuses
    with pytest.raises(InputError) as info:
        load_image(data)
    assert info.value.code == "input.too_large"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (OSError("broken"), "input.unreadable"),
        (SyntaxError("broken"), "input.unreadable"),
        (ValueError("broken"), "input.unreadable"),
        (struct.error("broken"), "input.unreadable"),
        (EOFError("broken"), "input.unreadable"),
        (IndexError("broken"), "input.unreadable"),
        (KeyError("broken"), "input.unreadable"),
        (TypeError("broken"), "input.unreadable"),
        (ZeroDivisionError("broken"), "input.unreadable"),
        (OverflowError("broken"), "input.unreadable"),
        (RecursionError("broken"), "input.unreadable"),
        (NotImplementedError("broken"), "input.unreadable"),
        (MemoryError(), "input.too_large"),
        (Image.DecompressionBombError("broken"), "input.too_large"),
    ],
)
def test_decoder_errors_become_input_errors(monkeypatch, error, code):
    from PIL import ImageFile

    def load(self):
        raise error

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(InputError) as info:
        load_image(sample_png()[0])
    assert info.value.code == code
    assert info.value.__cause__ is error
