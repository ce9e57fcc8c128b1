"""What every OCR engine returns and what the pipeline asks of one: the result types, the
reading order and the :class:`OcrEngine` protocol.

Images are numpy arrays in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB,
``uint8``. Only the engines convert to OpenCV's BGR, once, right before inference.

Boxes are 4-point polygons ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))`` in pixel coordinates
of the image that was passed to :meth:`OcrEngine.recognize`, clockwise from the top-left.

Nothing here loads numpy: the arrays appear in annotations only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rythmiq._public import public

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Box", "OcrEngine", "OcrLine", "OcrResult", "Point", "sort_reading_order"]

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]


@public
@dataclass(frozen=True)
class OcrLine:
    """One recognised text line.

    Attributes:
        text: The recognised text.
        confidence: Recognition confidence in ``[0, 1]``.
        box: 4-point polygon in pixel coordinates of the OCR'd image.
    """

    text: str
    confidence: float
    box: Box

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounds ``(left, top, right, bottom)`` of :attr:`box`."""
        xs = [p[0] for p in self.box]
        ys = [p[1] for p in self.box]
        return (min(xs), min(ys), max(xs), max(ys))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "box": [list(p) for p in self.box],
        }


@public
@dataclass(frozen=True)
class OcrResult:
    """Text found in one image, lines in reading order (top-to-bottom, then left-to-right).

    Attributes:
        lines: The recognised lines.
        width: Width of the image the boxes refer to.
        height: Height of the image the boxes refer to.
        engine: Name of the engine and models that produced it.
    """

    lines: tuple[OcrLine, ...]
    width: int
    height: int
    engine: str = ""

    @property
    def text(self) -> str:
        """The page text: one row per line, the lines of a row joined by a space.

        A row is lines whose vertical centres are within half a line height of each other,
        so a table row or a receipt's ``TOTAL`` and its amount read as one line.
        """
        return "\n".join(" ".join(line.text for line in row) for row in _rows(self.lines))

    @property
    def confidence(self) -> float:
        """Mean line confidence; 0.0 when no text was found."""
        if not self.lines:
            return 0.0
        return float(sum(line.confidence for line in self.lines) / len(self.lines))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with ``text``, ``confidence`` and ``lines``."""
        return {
            "text": self.text,
            "confidence": self.confidence,
            "width": self.width,
            "height": self.height,
            "engine": self.engine,
            "lines": [line.to_dict() for line in self.lines],
        }

    def __repr__(self) -> str:
        n = len(self.lines)
        engine = self.engine if len(self.engine) <= 60 else self.engine[:57] + "..."
        return (
            f"OcrResult({n} line{'s' if n != 1 else ''}, confidence={self.confidence:.2f}, "
            f"{self.width}x{self.height}, engine={engine!r})"
        )

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: a table of the lines, confidences coloured as in viz."""
        from rythmiq._html import ocr_result_html  # upward, lazy: notebook display only

        return ocr_result_html(self)


def _rows(lines: Iterable[OcrLine]) -> list[list[OcrLine]]:
    """Group lines into rows, top to bottom; each row sorted left to right.

    Two lines share a row when their vertical centres are closer than half the smaller line
    height, which keeps a receipt's label and amount (``TOTAL ... 12.50``) together even when
    the detector returns them as separate boxes a few pixels apart.
    """
    items = sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2)
    rows: list[list[OcrLine]] = []
    row_centre = 0.0
    row_height = 0.0
    for line in items:
        _, top, _, bottom = line.bbox
        centre, height = (top + bottom) / 2, max(bottom - top, 1.0)
        if rows and abs(centre - row_centre) < 0.5 * min(height, row_height):
            rows[-1].append(line)
            row_centre += (centre - row_centre) / len(rows[-1])
            row_height = min(row_height, height)
        else:
            rows.append([line])
            row_centre, row_height = centre, height
    return [sorted(row, key=lambda ln: ln.bbox[0]) for row in rows]


def sort_reading_order(lines: Iterable[OcrLine]) -> tuple[OcrLine, ...]:
    """Order lines top-to-bottom, then left-to-right within a row (see :attr:`OcrResult.text`)."""
    return tuple(line for row in _rows(lines) for line in row)


@public
@runtime_checkable
class OcrEngine(Protocol):
    """What :func:`rythmiq.process` needs from an OCR engine.

    An engine is created once, used for many images, and closed. ``recognize`` takes an
    ``(H, W)`` or ``(H, W, 3)`` RGB ``uint8`` array and returns lines in reading order, with
    boxes in that array's pixel coordinates.
    """

    @property
    def name(self) -> str:
        """Engine and model identifier, recorded in every :class:`OcrResult`."""
        ...

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """Read the text of one image."""
        ...

    def close(self) -> None:
        """Release the models. Calling it twice is harmless."""
        ...
