"""Getting the bytes: a path or an in-memory buffer read into ``bytes``, within a size limit.

Only a regular file is read (:func:`rythmiq._localfs.read_regular`): a directory, a FIFO, a
device such as ``/dev/zero`` or a socket is ``input.not_regular``, refused from its ``stat``
before it is opened, so it can neither block nor fill memory. A file is refused from its size
before it is read, and never more than ``max_input_bytes`` plus one byte is read, so a file
that grows cannot exhaust memory either. A missing file is ``input.not_found``, an empty input
``input.empty``. An array source is not read here: it is pixels already
(:func:`rythmiq.io.raster.array_pixels`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import InputError, OptionsError
from rythmiq._localfs import NotRegular, TooLarge, read_regular
from rythmiq.io.limits import too_large

__all__ = ["Source", "read_source"]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | NDArray[np.uint8]


def read_source(source: object, max_input_bytes: int) -> tuple[bytes, str]:
    """The bytes of a path or buffer source, and the label that names it in messages.

    Raises:
        InputError: ``input.not_found``, ``input.empty``, ``input.too_large`` (over
            ``max_input_bytes``), ``input.not_regular`` (a directory, a FIFO, a device, a
            socket), or ``input.unreadable`` (a path with a NUL, an unreadable file).
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
        return read_regular(str(path), max_bytes=max_input_bytes)
    except NotRegular as exc:
        raise InputError(
            f"{label} is {exc.kind}, not a regular file: only image and PDF files are read",
            code="input.not_regular",
        ) from None
    except TooLarge as exc:
        if exc.size is None:  # it grew while it was read
            raise too_large(label, f"is over the limit of {max_input_bytes} bytes") from None
        raise too_large(
            label, f"is {exc.size} bytes, over the limit of {max_input_bytes}"
        ) from None
    except FileNotFoundError:
        raise InputError(f"no such file: {label}", code="input.not_found") from None
    except OSError as exc:
        raise InputError(f"cannot read {label}: {exc.strerror or exc}") from exc
