"""rythmiq.io.source: paths and buffers read within max_input_bytes; missing, empty and odd
sources."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import sample_png, within

from rythmiq import InputError, OptionsError, load_image
from rythmiq.io import DEFAULT_MAX_INPUT_BYTES

# --- sources ---------------------------------------------------------------------------------


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


@pytest.mark.parametrize("source", [42, 3.5, None, ["a.png"]])
def test_unsupported_source_type(source):
    with pytest.raises(OptionsError):
        load_image(source)


def test_path_with_nul_is_an_input_error():
    with pytest.raises(InputError) as info:
        load_image("scan\x00.png")
    assert "NUL" in info.value.message


# --- errors ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_image(tmp_path / "nope.png")
    assert info.value.code == "input.not_found"
    assert "nope.png" in info.value.message


def test_directory(tmp_path):
    with pytest.raises(InputError) as info:
        load_image(tmp_path)
    assert info.value.code == "input.not_regular"
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


# --- input size limit ------------------------------------------------------------------------


def test_max_input_bytes_for_bytes():
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


# --- only regular files are read (issue 18, finding 3) -------------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused_before_it_is_opened(path):
    # /dev/zero used to be read up to the limit (200 MiB by default) before it was refused.
    with pytest.raises(InputError) as info:
        within(5, lambda: load_image(path))
    assert info.value.code == "input.not_regular"
    assert "character device" in info.value.message


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "scan.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as info:
        within(5, lambda: load_image(fifo))  # no writer: an open(2) would wait for ever
    assert info.value.code == "input.not_regular" and "FIFO" in info.value.message


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(InputError) as info:
            within(5, lambda: load_image(path))
    assert info.value.code == "input.not_regular" and "socket" in info.value.message


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_link_to_a_device_is_refused_and_a_link_to_a_file_is_read(tmp_path):
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    with pytest.raises(InputError) as info:
        within(5, lambda: load_image(tmp_path / "zero.png", max_input_bytes=1 << 30))
    assert info.value.code == "input.not_regular"
    data, _ = sample_png()
    (tmp_path / "real.png").write_bytes(data)
    (tmp_path / "alias.png").symlink_to(tmp_path / "real.png")
    assert load_image(tmp_path / "alias.png").byte_size == len(data)  # a path's link is the
    # caller's own choice: followed
