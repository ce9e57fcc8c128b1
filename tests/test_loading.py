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


# --- every Pillow mode ----------------------------------------------------------------------


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
    from rythmiq._loading import _to_uint8

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
        pixels = _to_uint8(im)
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


# --- metadata that is broken, not the image ------------------------------------------------


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


def test_corrupt_file_of_a_supported_format_is_unreadable():
    data = bytearray(sample_png()[0])
    data[29] ^= 0xFF  # IHDR CRC
    with pytest.raises(InputError) as info:
        load_image(bytes(data))
    assert info.value.code == "input.unreadable"
    assert "PNG" in info.value.message


@pytest.mark.parametrize(
    ("fmt", "named"), [("EPS", "PostScript"), ("ICO", "binary"), ("PCX", "binary")]
)
def test_formats_outside_the_allow_list_are_unsupported(fmt, named):
    from rythmiq._loading import SUPPORTED_FORMATS

    data = encode(Image.new("RGB", (16, 16), "white"), fmt)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt  # Pillow itself would open it
    with pytest.raises(InputError) as info:
        load_image(data)
    assert info.value.code == "input.unsupported"
    assert named in info.value.message
    assert fmt not in SUPPORTED_FORMATS


# --- input size limit --------------------------------------------------------------------


def test_max_input_bytes_for_bytes():
    from rythmiq._loading import DEFAULT_MAX_INPUT_BYTES

    assert DEFAULT_MAX_INPUT_BYTES == 200 * 1024 * 1024
    data, _ = sample_png()
    assert load_image(data, max_input_bytes=len(data)).byte_size == len(data)
    for source in (data, bytearray(data), memoryview(data)):
        with pytest.raises(InputError) as info:
            load_image(source, max_input_bytes=len(data) - 1)
        assert info.value.code == "input.too_large"
        assert "max_input_bytes" in info.value.message


def test_max_input_bytes_refuses_a_file_from_its_size(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as fh:
        fh.truncate(10 * 1024**3)  # sparse: 10 GiB that is never read
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        load_image(big)
    assert info.value.code == "input.too_large"
    assert time.perf_counter() - start < 1.0


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_max_input_bytes_bounds_reading_a_device():
    with pytest.raises(InputError) as info:
        load_image("/dev/zero", max_input_bytes=4096)
    assert info.value.code == "input.too_large"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_limits_must_be_positive_integers(bad):
    data, _ = sample_png()
    with pytest.raises(OptionsError):
        load_image(data, max_input_bytes=bad)
    with pytest.raises(OptionsError):
        load_image(data, max_pixels=bad)


def test_process_options_max_input_bytes(engine):
    from rythmiq import ProcessOptions, process

    data, _ = sample_png()
    assert ProcessOptions().max_input_bytes == 200 * 1024 * 1024
    with pytest.raises(InputError) as info:
        process(data, options=ProcessOptions(max_input_bytes=len(data) - 1), engine=engine)
    assert info.value.code == "input.too_large"
    assert process(data, options=ProcessOptions(max_input_bytes=len(data)), engine=engine)
    assert ProcessOptions.from_dict({"max_input_bytes": 1e6}).max_input_bytes == 1_000_000
    for bad in (0, -5, 1.5, True, "big"):
        with pytest.raises(OptionsError):
            ProcessOptions(max_input_bytes=bad)


# --- frames --------------------------------------------------------------------------------


def test_frames_are_counted_without_decoding_them(monkeypatch):
    import rythmiq._loading as loading

    assert loading.FRAME_COUNT_LIMIT == 1024
    monkeypatch.setattr(loading, "FRAME_COUNT_LIMIT", 20)
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


# --- structure limits ----------------------------------------------------------------------


def jpeg_scans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each scan (SOS header and its entropy-coded data)."""
    out, pos = [], 2
    while pos < len(data) and data[pos + 1] != 0xD9:
        marker, length = data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        if marker != 0xDA:
            pos += 2 + length
            continue
        end = pos + 2 + length
        while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
            end += 1
        out.append((pos, end))
        pos = end
    return out


def many_scan_jpeg(total: int, side: int = 64) -> bytes:
    base = encode(Image.new("L", (side, side), 200), "JPEG", progressive=True)
    scans = jpeg_scans(base)
    start, end = scans[-1]
    return base[:end] + base[start:end] * (total - len(scans)) + base[end:]


def test_jpeg_scan_limit():
    from rythmiq._loading import MAX_JPEG_SCANS

    at_limit = many_scan_jpeg(MAX_JPEG_SCANS)
    assert at_limit.count(b"\xff\xda") == MAX_JPEG_SCANS
    assert load_image(at_limit).pixels.shape == (64, 64)
    with pytest.raises(InputError) as info:
        load_image(many_scan_jpeg(MAX_JPEG_SCANS + 1))
    assert info.value.code == "input.too_large" and "scans" in info.value.message


def png_with_chunks(count: int) -> bytes:
    base = encode(Image.new("L", (8, 8), 9), "PNG")
    chunk = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    return base[:33] + chunk * (count - 3) + base[33:]  # + IHDR, IDAT, IEND


def gif_with_comment_blocks(count: int) -> bytes:
    base = encode(Image.new("P", (8, 8), 1), "GIF")
    head = 13 + ((3 << ((base[10] & 7) + 1)) if base[10] & 0x80 else 0)
    return base[:head] + b"!\xfe" + b"\x01A" * count + b"\x00" + base[head:]


def tiff_with_strips(count: int) -> bytes:
    """An uncompressed 1 x ``count`` grey TIFF, one row per strip."""

    def entry(tag: int, typ: int, n: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, typ, n, value)

    offsets_at = 8 + 2 + 12 * 9 + 4
    counts_at = offsets_at + 4 * count
    pixels_at = counts_at + 4 * count
    ifd = [
        entry(256, 4, 1, 1),
        entry(257, 4, 1, count),
        entry(258, 3, 1, 8),
        entry(259, 3, 1, 1),
        entry(262, 3, 1, 1),
        entry(273, 4, count, offsets_at),
        entry(277, 3, 1, 1),
        entry(278, 4, 1, 1),
        entry(279, 4, count, counts_at),
    ]
    offsets = np.arange(pixels_at, pixels_at + count, dtype="<u4").tobytes()
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", len(ifd))
        + b"".join(ifd)
        + struct.pack("<I", 0)
        + offsets
        + np.ones(count, dtype="<u4").tobytes()
        + b"\x80" * count
    )


def jp2_with_boxes(count: int) -> bytes:
    base = encode(Image.new("L", (8, 8), 3), "JPEG2000")
    ftyp_end = 12 + struct.unpack_from(">I", base, 12)[0]
    return base[:ftyp_end] + b"\x00\x00\x00\x08free" * (count - 2) + base[ftyp_end:]


def ppm_with_comment_lines(count: int) -> bytes:
    return b"P5\n" + b"#\n" * count + b"8 8\n255\n" + b"\x80" * 64


def rle_bmp(width: int, height: int) -> bytes:
    row = b"\x01\x05" * width + b"\x00\x00"  # runs of one pixel, end of line
    pixels = row * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 0, 0)
    return header + info + palette + pixels


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
    import rythmiq._loading as loading

    monkeypatch.setattr(loading, limit, small)
    under = {"_PPM_HEADER_WINDOW": (small - 20) // 2, "MAX_HEADER_UNITS": small - 8}
    assert load_image(make(under.get(limit, small))).pixels.size > 0
    with pytest.raises(InputError) as info:
        load_image(make(small * 2))
    assert info.value.code == "input.too_large"
    assert what in info.value.message


def test_jpeg_marker_segment_limit(monkeypatch):
    import rythmiq._loading as loading

    monkeypatch.setattr(loading, "MAX_HEADER_UNITS", 40)
    base = encode(Image.new("L", (8, 8), 1), "JPEG")
    assert load_image(base[:2] + b"\xff\xfe\x00\x02" * 20 + base[2:]).pixels.shape == (8, 8)
    for padding in (b"\xff\xfe\x00\x02" * 50, b"\xff" * 50, b"\x00" * 50):
        with pytest.raises(InputError) as info:
            load_image(base[:2] + padding + base[2:])
        assert info.value.code == "input.too_large"


def test_rle_bmp_pixel_limit(monkeypatch):
    import rythmiq._loading as loading

    monkeypatch.setattr(loading, "MAX_RLE_BMP_PIXELS", 64 * 64)
    assert load_image(rle_bmp(64, 64)).pixels.shape[:2] == (64, 64)
    with pytest.raises(InputError) as info:
        load_image(rle_bmp(65, 64))
    assert info.value.code == "input.too_large" and "RLE" in info.value.message


def test_tiff_entry_limit(monkeypatch):
    import rythmiq._loading as loading

    monkeypatch.setattr(loading, "MAX_HEADER_UNITS", 8)
    with pytest.raises(InputError) as info:
        load_image(tiff_with_strips(4))  # 9 entries
    assert info.value.code == "input.too_large" and "entries" in info.value.message


def test_real_structure_limits_refuse_quickly():
    """Just over each real limit, refusal costs a fraction of a second (no decode)."""
    from rythmiq import _loading as loading

    hostile = [
        png_with_chunks(loading.MAX_PNG_CHUNKS + 1),
        gif_with_comment_blocks(loading.MAX_HEADER_UNITS + 1),
        tiff_with_strips(loading.MAX_TIFF_STRIPS + 1),
        jp2_with_boxes(loading.MAX_HEADER_UNITS + 1),
        ppm_with_comment_lines(loading._PPM_HEADER_WINDOW),
        many_scan_jpeg(loading.MAX_JPEG_SCANS + 1, side=16),
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
    import rythmiq._loading as loading

    monkeypatch.setattr(loading, "MAX_HEADER_UNITS", 20)
    assert load_image(tiff_with_exif_ifd(20)).pixels.shape == (8, 8)
    with pytest.raises(InputError) as info:
        load_image(tiff_with_exif_ifd(21))
    assert info.value.code == "input.too_large" and "metadata IFD" in info.value.message


def test_oversized_exif_block_is_ignored(monkeypatch):
    import rythmiq._loading as loading

    exif = Image.Exif()
    exif[0x0112] = 6
    for tag in range(0x9000, 0x9008):
        exif[tag] = 1
    data = encode(Image.fromarray(quadrants()), "PNG", exif=exif)  # an eXIf chunk
    assert load_image(data).orientation == 6
    monkeypatch.setattr(loading, "MAX_HEADER_UNITS", 4)  # 9 entries is now too many
    loaded = load_image(data)
    assert loaded.orientation == 1 and loaded.pixels.shape == (32, 64, 3)
    # A BigTIFF-style EXIF block claiming 2**40 entries: not even looked at.
    bigtiff = b"II+\x00\x08\x00\x00\x00" + struct.pack("<QQ", 16, 1 << 40) + bytes(40)
    monkeypatch.setattr(loading, "MAX_HEADER_UNITS", 1 << 16)
    assert load_image(encode(Image.new("L", (4, 4)), "PNG", exif=bigtiff)).orientation == 1


def test_path_with_nul_is_an_input_error():
    with pytest.raises(InputError) as info:
        load_image("scan\x00.png")
    assert "NUL" in info.value.message


def test_gif_frame_count_stops_at_its_budget(monkeypatch):
    import rythmiq._loading as loading

    frames = [Image.new("RGB", (16, 16), (15 * i, 0, 255 - 15 * i)) for i in range(12)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(gif).frames == 12
    monkeypatch.setattr(loading, "_GIF_COUNT_BUDGET", 10)  # sub-blocks walked in all
    counted = load_image(gif).frames
    assert 1 <= counted < 12
