"""Creating engines: :func:`create_engine` makes the class :data:`~rythmiq.ocr.ENGINES` names
for a configuration, and :func:`default_engine` keeps one shared engine per configuration,
emptied in a forked child and by :func:`clear_engine_cache`.
"""

from __future__ import annotations

import os
import threading

from rythmiq._public import public
from rythmiq._registry import ENGINES
from rythmiq.ocr._library import LibraryEngine, orphan_engines
from rythmiq.ocr.base import OcrEngine
from rythmiq.ocr.config import EngineConfig
from rythmiq.ocr.onnx import OnnxEngine
from rythmiq.ocr.paddle import PaddleEngine

__all__ = ["clear_engine_cache", "create_engine", "default_engine"]

#: The engine classes by name; :attr:`EngineSpec.cls` of an :data:`ENGINES` entry is the key.
_CLASSES: dict[str, type[LibraryEngine]] = {cls.__name__: cls for cls in (OnnxEngine, PaddleEngine)}

_cache: dict[EngineConfig, OcrEngine] = {}
_cache_lock = threading.Lock()


def create_engine(config: EngineConfig | None = None) -> OcrEngine:
    """A new engine for ``config``, not cached: the class :data:`ENGINES` names for
    ``config.engine`` (:class:`OnnxEngine` by default, or :class:`PaddleEngine`).

    The caller owns it and closes it. Workers (the batch pool, Dask, the worker shim) create
    their engine this way once per process.
    """
    key = (config or EngineConfig()).resolved()
    return _CLASSES[ENGINES[key.engine].cls](key)


@public
def default_engine(config: EngineConfig | None = None) -> OcrEngine:
    """The shared engine for ``config``, created on first use (see :func:`create_engine`).

    The cache is keyed by the effective configuration, is emptied in a forked child (a model
    loaded by the parent is not safe to use there), and is cleared by :func:`clear_engine_cache`.
    """
    key = (config or EngineConfig()).resolved()
    with _cache_lock:
        engine = _cache.get(key)
        if engine is None:
            engine = create_engine(key)
            _cache[key] = engine
        return engine


@public
def clear_engine_cache() -> None:
    """Close and forget every cached default engine."""
    with _cache_lock:
        engines = list(_cache.values())
        _cache.clear()
    for engine in engines:
        engine.close()


def _reset_after_fork() -> None:
    global _cache_lock
    orphan_engines()
    _cache.clear()
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
