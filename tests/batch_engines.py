"""Engines for the batch tests, importable by spawned worker processes.

A page's pixel (0, 0) is a command: red kills the worker with SIGKILL, blue raises an untyped
exception, green hangs. Pixel (0, 1) carries the document number as (n // 256, n % 256, 200),
which the engine reads back as its only OCR line, so a result can be matched to its input.
"""

from __future__ import annotations

import io
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from rythmiq.ocr import OcrLine, OcrResult
from rythmiq.storage import Artifact, Store

KILL = (255, 0, 0)
RAISE = (0, 0, 255)
HANG = (0, 255, 0)
PLAIN = (128, 128, 128)


def page_png(number: int, command: tuple[int, int, int] = PLAIN, size: int = 48) -> bytes:
    """A small PNG whose pixels carry a command and a document number."""
    rng = np.random.default_rng(number)
    pixels = rng.integers(60, 200, size=(size, size, 3), dtype=np.uint8)
    pixels[0, 0] = command
    pixels[0, 1] = (number // 256, number % 256, 200)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class CommandEngine:
    """An OCR engine that obeys the command pixel and reports the document number."""

    @property
    def name(self) -> str:
        return "command"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        h, w = image.shape[:2]
        box = ((0.0, 0.0), (float(w), 0.0), (float(w), 10.0), (0.0, 10.0))
        if image.ndim != 3:
            # A grayscale image (e.g. orientation detection's line crops) carries no
            # command: read it as a plain page with no document number.
            return OcrResult((OcrLine("doc ?", 0.99, box),), w, h, self.name)
        command = tuple(int(v) for v in image[0, 0])
        if command == KILL:
            os.kill(os.getpid(), signal.SIGKILL)
        if command == RAISE:
            raise RuntimeError("poisoned page")
        if command == HANG:
            time.sleep(600)
        hi, lo, _ = (int(v) for v in image[0, 1])
        return OcrResult((OcrLine(f"doc {hi * 256 + lo}", 0.99, box),), w, h, self.name)

    def close(self) -> None:
        pass


def command_engine() -> CommandEngine:
    return CommandEngine()


class SlowStore(Store):
    """A store that, after writing a master, marks the moment in the file named by
    ``$RYTHMIQ_TEST_FLAG`` and pauses: a document caught between its first and last write."""

    def write(self, key: str, data: bytes, *, kind: str = "object") -> Artifact:
        artifact = super().write(key, data, kind=kind)
        if kind == "master":
            Path(os.environ["RYTHMIQ_TEST_FLAG"]).write_text(key)
            time.sleep(120)
        return artifact
