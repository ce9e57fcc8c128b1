"""Getting the bytes: a path or an in-memory buffer read into ``bytes``, within a size limit.

A file is refused from its size before it is read, and never more than ``max_input_bytes``
plus one byte is read, so ``/dev/zero``, a pipe or a growing file cannot exhaust memory. A
missing file is ``input.not_found``, an empty input ``input.empty``. An array source is not
read here: it is pixels already (:func:`rythmiq.io.raster.array_pixels`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq.io.limits import too_large

__all__ = ["Source", "read_source"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | NDArray[np.uint8]


def read_source(source: object, max_input_bytes: int) -> tuple[bytes, str]:
    """The bytes of a path or buffer source, and the label that names it in messages.

    Raises:
        InputError: ``input.not_found``, ``input.empty``, ``input.too_large`` (over
            ``max_input_bytes``), or ``input.unreadable`` (a directory, a path with a NUL,
            an unreadable file).
        OptionsError: ``source`` is not a path or a buffer.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = _read_buffer(source, max_input_bytes), "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = repr(str(path))
        data = _read_file(path, label, max_input_bytes)
    else:
        raise OptionsError(
            f"source must be a path, bytes or a numpy array, got {type(source).__name__}"
        )
    if not data:
        raise InputError(f"{label} is empty (0 bytes)", code="input.empty")
    return data, label


def _read_buffer(source: bytes | bytearray | memoryview, max_input_bytes: int) -> bytes:
    size = memoryview(source).nbytes
    if size > max_input_bytes:
        raise too_large(
            "<bytes>",
            f"is {size} bytes, over the limit of {max_input_bytes}; raise max_input_bytes "
            "if this is expected",
        )
    return bytes(source)


def _read_file(path: Path, label: str, max_input_bytes: int) -> bytes:
    if "\x00" in str(path):  # os.stat would raise ValueError
        raise InputError(f"{label} is not a valid path: it contains a NUL character")
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{label} is a directory, not an image file")
        if stat.S_ISREG(info.st_mode) and info.st_size > max_input_bytes:
            raise too_large(label, f"is {info.st_size} bytes, over the limit of {max_input_bytes}")
        with path.open("rb") as fh:
            # A device or pipe has no size: read one byte past the limit to detect it.
            data = fh.read(max_input_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"no such file: {label}", code="input.not_found") from None
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or exc}") from exc
    if len(data) > max_input_bytes:
        raise too_large(label, f"is over the limit of {max_input_bytes} bytes")
    return data
