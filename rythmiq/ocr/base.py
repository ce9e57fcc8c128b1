"""What every OCR engine returns and what the pipeline asks of one: the result types, the
reading order, the :class:`OcrEngine` protocol, and the one check of what an engine returns
(:func:`checked_result`, applied by :func:`checked_engine`).

Images are numpy arrays in the Pillow convention: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB,
``uint8``. Only the engines convert to OpenCV's BGR, once, right before inference.

Boxes are 4-point polygons ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))`` in pixel coordinates
of the image that was passed to :meth:`OcrEngine.recognize`, clockwise from the top-left.

Nothing here loads numpy: the arrays appear in annotations only.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rythmiq._errors import OcrError, OptionsError
from rythmiq._public import public
from rythmiq._util import short_repr

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "Box",
    "CheckedEngine",
    "OcrEngine",
    "OcrLine",
    "OcrResult",
    "Point",
    "checked_engine",
    "checked_result",
    "clean_text",
    "sort_reading_order",
]

log = logging.getLogger("rythmiq.ocr")

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

    __repr__ = short_repr

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


# --------------------------------------------------------------------------- engine output

# What no text may hold: NUL, and UTF-16 surrogates, which no UTF-8 writer can encode.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as every writer can store it: a surrogate pair left in a ``str`` (UTF-16
    decoded by hand) joined into its character, and each lone surrogate and NUL replaced by
    U+FFFD. Anything else, control characters included, is kept: the writers escape what
    their format needs (hOCR, the terminal), and the text is the page's data."""
    text = str.__str__(text)  # a plain str, whatever subclass came in
    if _UNSTORABLE.search(text) is None:
        return text
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Unusable(Exception):
    """Why an engine's answer cannot be used; :func:`checked_result` makes it an OcrError."""


def _number(value: object, what: str) -> float:
    """``value``, a real number, as a float (``inf`` when too large for one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _Unusable(f"{what} is {type(value).__name__}, not a number")
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError) as exc:
        raise _Unusable(f"{what} is not a number ({exc})") from None


def _confidence(value: object, what: str) -> float:
    """A confidence in ``[0, 1]``: clamped, and 0.0 when not finite (nothing can be trusted)."""
    number = _number(value, what)
    return min(max(number, 0.0), 1.0) if math.isfinite(number) else 0.0


def _items(value: object, count: int, what: str) -> list[Any]:
    """The ``count`` items of a list or tuple ``value`` (or of any iterable but a string)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _Unusable(f"{what} is {type(value).__name__}, not a sequence of {count}")
    items = list(value) if isinstance(value, (tuple, list)) else [*_first(value, count + 1)]
    if len(items) != count:
        raise _Unusable(f"{what} has {len(items)} items, not {count}")
    return items


def _first(value: Iterable[Any], n: int) -> Iterable[Any]:
    for i, item in enumerate(value):
        if i >= n:
            return
        yield item


def _box(box: object, width: int, height: int, what: str) -> Box | None:
    """``box`` as 4 float points clipped to the image, or ``None`` when a coordinate is not
    finite (NaN or infinite: the line has no place on the page)."""
    points: list[Point] = []
    for i, point in enumerate(_items(box, 4, f"{what} box")):
        x, y = (_number(v, f"{what} box point {i}") for v in _items(point, 2, f"{what} box"))
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        points.append((min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))))
    return (points[0], points[1], points[2], points[3])


def _side(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _Unusable(f"{what} must be a positive integer, got {value!r:.40}")
    return int(value)


def _checked_lines(result: OcrResult, width: int, height: int, source: str) -> list[OcrLine]:
    lines = result.lines
    if not isinstance(lines, (tuple, list)):
        raise _Unusable(f"lines is {type(lines).__name__}, not a tuple of OcrLine")
    out: list[OcrLine] = []
    dropped = 0
    for number, line in enumerate(lines, start=1):
        what = f"line {number}"
        if not isinstance(line, OcrLine):
            raise _Unusable(f"{what} is {type(line).__name__}, not an OcrLine")
        if not isinstance(line.text, str):
            raise _Unusable(f"{what} text is {type(line.text).__name__}, not a str")
        confidence = _confidence(line.confidence, f"{what} confidence")
        box = _box(line.box, width, height, what)
        if box is None:
            dropped += 1
            continue
        out.append(OcrLine(text=clean_text(line.text), confidence=confidence, box=box))
    if dropped:
        log.warning("%s: dropped %d line(s) whose box is not finite", source, dropped)
    return out


def checked_result(
    result: object, *, source: str, size: tuple[int, int] | None = None
) -> OcrResult:
    """What an engine returned, checked and made safe for every writer, once.

    The pipeline applies it to every answer of every engine (:func:`checked_engine`), the
    writers of :mod:`rythmiq.export` to the results they are given. It is idempotent.

    - ``width`` and ``height`` must be positive integers (and equal ``size``, the image the
      engine was given, when that is known); ``lines`` a tuple or list of :class:`OcrLine`,
      each with a ``str`` text, a real-number confidence and a box of 4 points of 2 real
      numbers.
    - Text goes through :func:`clean_text` (no lone surrogate, no NUL); the engine name too.
    - A confidence is clamped to ``[0, 1]``; a NaN or infinite one becomes 0.0.
    - A box coordinate is clipped to the image (``0..width``, ``0..height``); a line with a
      NaN or infinite coordinate is **dropped** (logged as a warning), since it has no place
      on the page.

    Args:
        result: What the engine returned.
        source: Names where ``result`` came from in the error, e.g. ``"the OCR engine
            'onnx:...'"``.
        size: ``(width, height)`` of the image the engine read, when known.

    Returns:
        A new :class:`OcrResult` that every writer can write.

    Raises:
        OcrError: ``ocr.bad_output``, naming ``source``: ``result`` is not an
            :class:`OcrResult`, or is not of the shape above.
    """
    if not isinstance(result, OcrResult):
        raise OcrError(
            f"unusable OCR output from {source}: {type(result).__name__}, not an OcrResult",
            code="ocr.bad_output",
        )
    try:
        width, height = _side(result.width, "width"), _side(result.height, "height")
        if size is not None and (width, height) != size:
            raise _Unusable(f"it is for a {width}x{height} image, given {size[0]}x{size[1]}")
        if not isinstance(result.engine, str):
            raise _Unusable(f"engine is {type(result.engine).__name__}, not a str")
        lines = _checked_lines(result, width, height, source)
    except _Unusable as exc:
        raise OcrError(f"unusable OCR output from {source}: {exc}", code="ocr.bad_output") from None
    return OcrResult(tuple(lines), width, height, clean_text(result.engine))


def _checked_read(read: object, count: int, source: str) -> list[tuple[str, float]]:
    """``read_lines``'s answer: ``count`` ``(text, confidence)`` pairs, made safe as above."""
    try:
        out = []
        for i, item in enumerate(_items(read, count, "read_lines' answer")):
            text, confidence = _items(item, 2, f"line {i + 1}")
            if not isinstance(text, str):
                raise _Unusable(f"line {i + 1} text is {type(text).__name__}, not a str")
            out.append((clean_text(text), _confidence(confidence, f"line {i + 1} confidence")))
        return out
    except _Unusable as exc:
        raise OcrError(f"unusable OCR output from {source}: {exc}", code="ocr.bad_output") from None


def _engine_name(engine: object) -> str:
    name = getattr(engine, "name", None)
    return clean_text(name) if isinstance(name, str) else type(engine).__name__


@dataclass(frozen=True)
class CheckedEngine:
    """An :class:`OcrEngine` whose every answer has passed :func:`checked_result`.

    Made by :func:`checked_engine`; :func:`rythmiq.process` reads every page through one,
    whatever engine it was given, so nothing an engine returns reaches a result unchecked.
    """

    engine: OcrEngine

    @property
    def name(self) -> str:
        """The engine's name (its class's, when it has no ``str`` name)."""
        return _engine_name(self.engine)

    def _source(self) -> str:
        return f"the OCR engine {self.name!r}"

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """The engine's answer for ``image``, checked against the image's size."""
        h, w = image.shape[:2]
        answer = self.engine.recognize(image)
        return checked_result(answer, source=self._source(), size=(int(w), int(h)))

    def close(self) -> None:
        """Close the engine."""
        self.engine.close()


@dataclass(frozen=True)
class _CheckedLineEngine(CheckedEngine):
    """A :class:`CheckedEngine` for an engine that also reads cut-out lines (``read_lines``,
    as :class:`~rythmiq.ocr.OnnxEngine` does, for :mod:`rythmiq.orientation`)."""

    def read_lines(self, images: Sequence[NDArray[np.uint8]]) -> list[tuple[str, float]]:
        """The engine's ``(text, confidence)`` per image, checked: one pair per image."""
        read = self.engine.read_lines(images)  # type: ignore[attr-defined]
        return _checked_read(read, len(images), self._source())


def checked_engine(engine: OcrEngine) -> CheckedEngine:
    """``engine`` behind a :class:`CheckedEngine` (itself when it is one already).

    Raises:
        OptionsError: ``engine`` is not an :class:`OcrEngine` (it lacks ``name``,
            ``recognize`` or ``close``, or is a class rather than an instance).
    """
    if isinstance(engine, CheckedEngine):
        return engine
    if isinstance(engine, type):
        raise OptionsError(
            f"engine must be an OcrEngine, got the class {engine.__name__}: pass an instance"
        )
    if not isinstance(engine, OcrEngine):
        raise OptionsError(
            f"engine must be an OcrEngine (name, recognize, close), got {type(engine).__name__}"
        )
    if callable(getattr(engine, "read_lines", None)):
        return _CheckedLineEngine(engine)
    return CheckedEngine(engine)
