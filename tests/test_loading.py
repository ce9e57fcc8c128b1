"""rythmiq.load_image: every Pillow mode, EXIF orientation, DPI, source kinds and errors."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from rythmiq import InputError, OptionsError, load_image


def encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def check_pixels(pixels: np.ndarray, ndim: int) -> None:
    assert pixels.dtype == np.uint8
    assert pixels.ndim == ndim
    if ndim == 3:
        assert pixels.shape[2] == 3


# --- Pillow modes -------------------------------------------------------------------------


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


# --- EXIF orientation ---------------------------------------------------------------------


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


# --- DPI ------------------------------------------------------------------------------------


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


# --- sources --------------------------------------------------------------------------------


def sample_png() -> tuple[bytes, np.ndarray]:
    rgb = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(10, 12, 3)
    return encode(Image.fromarray(rgb), "PNG"), rgb


@pytest.mark.parametrize("kind", ["str", "path", "bytes", "bytearray", "memoryview"])
def test_encoded_sources(tmp_path, kind):
    data, rgb = sample_png()
    file = tmp_path / "page.png"
    file.write_bytes(data)
    source = {
        "str": str(file),
        "path": Path(file),
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
    }[kind]
    loaded = load_image(source)
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    assert loaded.byte_size == len(data)
    assert loaded.format == "PNG" and loaded.frames == 1


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


# --- errors -------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_image(tmp_path / "nope.png")
    assert info.value.code == "input.not_found"
    assert "nope.png" in info.value.message


def test_directory(tmp_path):
    with pytest.raises(InputError) as info:
        load_image(tmp_path)
    assert info.value.code.startswith("input.")
    assert "directory" in info.value.message


@pytest.mark.parametrize("source", [b"", bytearray()])
def test_empty_bytes(source):
    with pytest.raises(InputError) as info:
        load_image(source)
    assert info.value.code == "input.empty"


def test_empty_file(tmp_path):
    file = tmp_path / "empty.jpg"
    file.write_bytes(b"")
    with pytest.raises(InputError) as info:
        load_image(file)
    assert info.value.code == "input.empty"


def test_pdf_is_unsupported_and_named():
    with pytest.raises(InputError) as info:
        load_image(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n")
    assert info.value.code == "input.unsupported"
    assert "PDF" in info.value.message


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"hello, this is a plain text note and not a picture at all\n" * 4, "text"),
        (b"PK\x03\x04" + bytes(60), "ZIP"),
        (b'{"not": "an image"}', "JSON"),
    ],
)
def test_non_images_are_unsupported(data, named):
    with pytest.raises(InputError) as info:
        load_image(data)
    assert info.value.code == "input.unsupported"
    assert named in info.value.message


def test_truncated_png_is_unreadable():
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(InputError) as info:
        load_image(data[: len(data) // 2])
    assert info.value.code == "input.unreadable"


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


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR is patched to claim ``width x height`` (CRC fixed up)."""
    data = bytearray(encode(Image.new("L", (8, 8), 255), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


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


@pytest.mark.parametrize("source", [42, 3.5, None, ["a.png"]])
def test_unsupported_source_type(source):
    with pytest.raises(OptionsError):
        load_image(source)


# --- multi-frame files --------------------------------------------------------------------


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
