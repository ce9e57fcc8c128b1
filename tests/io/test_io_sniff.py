"""rythmiq.io.sniff: files of no supported format are input.unsupported and named; corrupt
files of a supported format are input.unreadable."""

from __future__ import annotations

import io

import numpy as np
import pytest
from _helpers import (
    encode,
    sample_png,
)
from PIL import Image

from rythmiq import InputError, load_image
from rythmiq.io import SUPPORTED_FORMATS


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
    data = encode(Image.new("RGB", (16, 16), "white"), fmt)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt  # Pillow itself would open it
    with pytest.raises(InputError) as info:
        load_image(data)
    assert info.value.code == "input.unsupported"
    assert named in info.value.message
    assert fmt not in SUPPORTED_FORMATS
