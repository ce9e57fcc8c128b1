"""What the batch backends share, and what runs inside a process_many worker.

:func:`run_document` is the per-document function of every backend: ``process_many``'s
worker processes and Dask's tasks call it alike. :func:`worker_main` is the body of a
``process_many`` worker process: it loads the engine once and serves documents until it is
told to stop, and SIGTERM makes it roll back the document it holds. The small helpers name a
source for reports, turn an unexpected exception into a typed error, and pick a document's
ids. ``rythmiq.batch`` builds the pool on top of this, ``rythmiq.dask`` the cluster runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from rythmiq._errors import ModelError, RythmiqError
from rythmiq._redact import redact
from rythmiq._system import rss_mb
from rythmiq.io import Source
from rythmiq.keyring import Keyring
from rythmiq.layout import Ids
from rythmiq.ocr import OcrEngine, create_engine
from rythmiq.options import ProcessOptions
from rythmiq.pipeline import process
from rythmiq.results import ProcessResult
from rythmiq.storage import Store

__all__ = [
    "EngineFactory",
    "IdsSpec",
    "WorkerSetup",
    "describe",
    "ids_for",
    "run_document",
    "untyped",
    "worker_main",
]

#: A picklable callable that returns the engine a worker uses.
EngineFactory = Callable[[], OcrEngine]
#: The ``ids`` of a batch: one per source, a function of (index, source), or none.
IdsSpec = Sequence[Ids] | Callable[[int, Source], Ids] | None


def describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source) if not isinstance(source, bytes) else repr(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes {len(source)}>"
    shape = getattr(source, "shape", None)
    if shape is not None and len(shape) >= 2:
        return f"<array {shape[0]}x{shape[1]}>"
    return f"<{type(source).__name__}>"


def ids_for(ids: IdsSpec, index: int, source: Source) -> Ids | None:
    if ids is None:
        return None
    if callable(ids):
        return ids(index, source)
    return ids[index]


def untyped(exc: BaseException) -> RythmiqError:
    return RythmiqError(redact(f"{type(exc).__name__}: {exc}"))


def run_document(
    source: Source,
    *,
    options: ProcessOptions,
    engine: OcrEngine | None,
    store: Store | None,
    ids: Ids | None,
    keyring: Keyring | None,
) -> ProcessResult | RythmiqError:
    """The per-document function of every batch backend: a result or a typed error.

    It never raises for a document's problem: a :class:`~rythmiq.RythmiqError` is returned
    as is, and any other exception (a bug, a library failure) becomes an ``internal`` error
    whose message names the exception type, with secrets redacted.
    """
    try:
        return process(
            source, options=options, engine=engine, store=store, ids=ids, keyring=keyring
        )
    except RythmiqError as exc:
        return exc
    except Exception as exc:
        return untyped(exc)


class WorkerSetup(NamedTuple):
    """What a ``process_many`` worker process is started with."""

    options: ProcessOptions
    engine_factory: EngineFactory | None
    store: Store | None
    keyring: Keyring | None


def worker_main(conn: Connection, setup: WorkerSetup) -> None:
    """Body of a worker process: load the engine, then process documents until told to stop."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent stops a busy worker with SIGTERM: _Stopped unwinds the document, and its
    # store transaction deletes what it wrote (see _Pool.shutdown).
    signal.signal(signal.SIGTERM, _on_stop)
    with contextlib.suppress(_Stopped):  # stopped by the parent: the document is rolled back
        _serve(conn, setup)


def _serve(conn: Connection, setup: WorkerSetup) -> None:
    options, engine_factory, store, keyring = setup
    engine: OcrEngine | None = None
    try:
        if engine_factory is not None:
            engine = engine_factory()
        elif options.ocr:
            engine = create_engine(options.engine_config())
    except RythmiqError as exc:
        conn.send(("fatal", exc))
        return
    except Exception as exc:
        conn.send(("fatal", ModelError(f"the OCR engine could not be created: {untyped(exc)}")))
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                task = conn.recv()
            except EOFError:  # the parent is gone
                return
            if task is None:
                return
            index, source, ids = task
            result = run_document(
                source, options=options, engine=engine, store=store, ids=ids, keyring=keyring
            )
            current, peak = rss_mb()
            try:
                conn.send(("done", index, result, current, peak))
            except (BrokenPipeError, EOFError):
                return
            except Exception as exc:  # the outcome would not pickle
                conn.send(("done", index, untyped(exc), current, peak))
    finally:
        if engine is not None:
            engine.close()


class _Stopped(BaseException):
    """Raised in a worker by SIGTERM. A BaseException, so that no ``except Exception`` of the
    document's code swallows it and every rollback on the way out runs."""


def _on_stop(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal does not cut the rollback
    raise _Stopped()
