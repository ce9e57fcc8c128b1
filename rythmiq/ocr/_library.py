"""What both engines share: an OCR library object behind a lock, the :class:`OcrEngine`
surface, turning the library's answer into an :class:`OcrResult`, and fork safety.

An engine class finds its own entry of :data:`~rythmiq.ocr.ENGINES` by its name (the entry's
:attr:`~rythmiq.ocr.EngineSpec.cls`), so the registry table is the one place that ties an
engine name to a class.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from rythmiq._errors import OcrError, OptionsError
from rythmiq._registry import ENGINES, EngineSpec
from rythmiq._util import check_image
from rythmiq.ocr.base import Box, OcrLine, OcrResult, sort_reading_order
from rythmiq.ocr.config import EngineConfig
from rythmiq.ocr.models import ResolvedModel

__all__ = ["LibraryEngine", "bgr", "orphan_engines"]

# Engines alive in this process, by id: a forked child must not use or destroy them.
_live: weakref.WeakValueDictionary[int, LibraryEngine] = weakref.WeakValueDictionary()
# What the parent's engines held, kept alive for good in a forked child. Destroying an
# OpenVINO infer request there waits forever on a thread pool that was not forked (seen as a
# hung child after fork), and other runtimes are no safer; so the child never frees them.
# The extra reference keeps the list (and so its items) alive through interpreter shutdown.
_orphans: list[Any] = []
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_orphans))

_E = TypeVar("_E", bound="LibraryEngine")


def orphan_engines() -> None:
    """In a forked child: retire every engine the parent had, without freeing its models."""
    for engine in list(_live.values()):
        engine._orphan()


def _spec_of(cls: type) -> EngineSpec:
    """The :data:`ENGINES` entry that names ``cls``, else the one its parent class serves (a
    subclass of an engine, such as a benchmark's variant, serves the same engine)."""
    for spec in ENGINES.values():
        if spec.cls == cls.__name__:
            return spec
    inherited: EngineSpec | None = getattr(cls, "_spec", None)
    if inherited is None:
        raise TypeError(f"no ENGINES entry names {cls.__name__} (EngineSpec.cls)")
    return inherited


@dataclass
class LibraryEngine:
    """The base of both engines. A subclass loads ``_ocr`` in ``__post_init__`` and says how
    to hand its library an image (:meth:`_library_input`) and read the answer (:meth:`_read`);
    it may read only part of the image (:meth:`_crop`)."""

    config: EngineConfig = field(default_factory=EngineConfig)
    det: ResolvedModel = field(init=False)
    rec: ResolvedModel = field(init=False)
    _ocr: Any = field(init=False, default=None, repr=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)
    _forked: bool = field(init=False, default=False, repr=False)

    _spec: ClassVar[EngineSpec]  # the ENGINES entry this class serves, found by its name
    _library: ClassVar[str]  # the library's name, in error messages

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._spec = _spec_of(cls)

    @classmethod
    def _default_config(cls) -> EngineConfig:
        """The configuration of an engine of this class created without one."""
        return EngineConfig(engine=cls._spec.name)

    def _orphan(self) -> None:
        """In a forked child: keep the parent's library object alive, unused, for good."""
        _orphans.append(self._ocr)
        self._ocr = None
        self._forked = True
        self._lock = threading.Lock()

    def _resolve_config(self) -> EngineConfig:
        """Check ``config.engine`` and fill in its defaults (the first step of loading)."""
        _live[id(self)] = self
        if self.config.engine != self._spec.name:
            raise OptionsError(
                f"{type(self).__name__} needs EngineConfig(engine={self._spec.name!r}, ...), "
                f"got engine={self.config.engine!r}"
            )
        self.config = self.config.resolved()
        return self.config

    @property
    def name(self) -> str:
        """``"<engine>:<det>+<rec>"``, and ``"@<runtime>"`` for the onnx engine."""
        runtime = "" if self.config.runtime == "auto" else f"@{self.config.runtime}"
        return f"{self._spec.name}:{self.det.name}+{self.rec.name}{runtime}"

    def _crop(self, image: NDArray[np.uint8]) -> tuple[int, int, int, int] | None:
        """The part ``(x0, y0, x1, y1)`` of ``image`` the library reads; ``None``: all of it."""
        return None

    def _library_input(self, image: NDArray[np.uint8]) -> Any:
        raise NotImplementedError

    def _read(self, image: Any) -> list[tuple[Any, Any, Any]]:
        """Run the library (under the lock) and return its ``(text, score, polygon)``s."""
        raise NotImplementedError

    def recognize(self, image: NDArray[np.uint8]) -> OcrResult:
        """Read the text of an ``(H, W)`` or ``(H, W, 3)`` RGB ``uint8`` image."""
        check_image(image)
        self._check_open()
        x0, y0 = 0, 0
        crop = self._crop(image)
        if crop is not None:
            x0, y0, x1, y1 = crop
            prepared = self._library_input(image[y0:y1, x0:x1])
        else:
            prepared = self._library_input(image)
        try:
            with self._lock:
                if self._ocr is None:  # closed by another thread meanwhile
                    raise OcrError("engine is closed", code="ocr.closed")
                found = self._read(prepared)
        except OcrError:
            raise
        except Exception as exc:
            raise OcrError(f"{self._library} failed: {type(exc).__name__}: {exc}") from exc
        return _ocr_result(found, image, self.name, offset=(x0, y0))

    def _check_open(self) -> None:
        if self._forked:
            raise OcrError(
                "this engine was created before the process forked and cannot be used in the "
                "child; create a new engine there",
                code="ocr.closed",
            )
        if self._ocr is None:
            raise OcrError("engine is closed", code="ocr.closed")

    def close(self) -> None:
        """Drop the models; the engine cannot be used afterwards."""
        with self._lock:
            self._ocr = None

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bgr(image: NDArray[np.uint8]) -> Any:
    """A 3-channel BGR copy of a grayscale, RGB or RGBA image, for the libraries."""
    import cv2

    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def _ocr_result(
    found: Iterable[tuple[Any, Any, Any]],
    image: NDArray[np.uint8],
    engine: str,
    *,
    offset: tuple[int, int] = (0, 0),
) -> OcrResult:
    """An :class:`OcrResult` from an engine's ``(text, score, polygon)`` triples: blank lines
    dropped, polygons moved by ``offset`` (where the crop the library read starts) and made
    4-point boxes, lines put in reading order."""
    lines: list[OcrLine] = []
    shift = np.asarray(offset, dtype=np.float64)
    for text, score, poly in found:
        if not str(text).strip():
            continue
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2) + shift
        lines.append(OcrLine(text=str(text), confidence=float(score), box=_quad(pts)))
    h, w = image.shape[:2]
    return OcrResult(lines=sort_reading_order(lines), width=w, height=h, engine=engine)


def _quad(pts: NDArray[np.float64]) -> Box:
    """A 4-point box from a polygon: itself if it has 4 points, else its bounding rectangle."""
    if pts.shape[0] != 4:
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return tuple((float(x), float(y)) for x, y in pts)  # type: ignore[return-value]
