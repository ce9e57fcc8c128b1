"""rythmiq on a Dask distributed cluster, for batches bigger than one machine.

Install the extra: ``pip install "rythmiq[dask]"``. Then::

    from distributed import Client
    from rythmiq.dask import process_on_cluster

    client = Client("tcp://scheduler:8786")
    for item in process_on_cluster(client, ["s3://scans/input/a.jpg", ...]):
        print(item.index, item.ok, item.result.quality.score if item.ok else item.error)

How it maps onto Dask:

* :class:`EnginePlugin` is a worker plugin: each Dask worker creates its OCR engine once,
  when the plugin is registered (or when the worker starts later), and closes it on exit.
  The plugin also carries the options, the store and the keyring, so tasks carry only
  ``(index, source, ids)``.
* Each document is one task running :func:`rythmiq.batch.run_document`, the same
  per-document function as :func:`rythmiq.process_many`. Sources are read on the workers:
  paths must exist there and URLs (``s3://...``) are read with the workers' environment.
* Results come back as :class:`~rythmiq.batch.BatchResult` objects (normalized image and
  preview bytes included), or their JSON-safe dicts with ``as_dict=True``.
* A worker that dies holding a document: Dask retries the task on another worker up to
  ``distributed.scheduler.allowed-failures`` times, then the document is reported as
  ``batch.worker_died``.

Run workers with one thread each (``dask worker ... --nthreads 1``), one worker process per
core, and recycle them with ``--lifetime`` to bound memory growth; see docs/batch.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rythmiq._backend import describe, ids_for, untyped
from rythmiq._errors import BatchError, OptionsError, RythmiqError
from rythmiq._system import rss_mb
from rythmiq._util import positive_int
from rythmiq.batch import (
    BatchProgress,
    BatchResult,
    Collector,
    EngineFactory,
    run_document,
)
from rythmiq.keyring import Keyring, load_keyring
from rythmiq.ocr import create_engine
from rythmiq.options import ProcessOptions
from rythmiq.storage import Store

try:
    from distributed import Client, WorkerPlugin, as_completed, get_worker
    from distributed.client import Future
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("rythmiq.dask needs Dask distributed: pip install 'rythmiq[dask]'") from exc

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from rythmiq.io import Source
    from rythmiq.layout import Ids
    from rythmiq.ocr import OcrEngine, OcrResult

__all__ = ["PLUGIN_NAME", "EnginePlugin", "process_on_cluster", "restore_malloc_thresholds"]

PLUGIN_NAME = "rythmiq-engine"

log = logging.getLogger("rythmiq.dask")


class _SerialEngine:
    """One engine shared by a worker's task threads, one page at a time."""

    def __init__(self, engine: OcrEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._engine.name

    def recognize(self, image: NDArray[Any]) -> OcrResult:
        with self._lock:
            return self._engine.recognize(image)

    def close(self) -> None:
        self._engine.close()


# glibc mallopt() parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# What glibc's dynamic thresholds grow to on 64-bit Linux (DEFAULT_MMAP_THRESHOLD_MAX is
# 32 MiB; the trim threshold follows at twice the mmap threshold).
_MMAP_THRESHOLD = 32 * 2**20
_TRIM_THRESHOLD = 64 * 2**20


def restore_malloc_thresholds() -> bool:
    """Undo a small ``MALLOC_TRIM_THRESHOLD_`` in this process (glibc only).

    Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ`` default). Setting that variable also freezes
    glibc's mmap threshold at 128 KiB, so each of PaddleOCR's large temporary tensors becomes
    an ``mmap``/``munmap`` pair with fresh page faults, and OCR runs several times slower per
    page (``docs/benchmarks.md``, "Batches"). This sets the trim and mmap thresholds to the
    values glibc's own dynamic thresholds grow to (64 MiB and 32 MiB) with ``mallopt``, which
    restores the speed.

    Returns whether the thresholds were changed: only when the variable is set below 64 MiB
    and the C library is glibc.
    """
    import ctypes
    import platform

    value = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    if value is None or platform.libc_ver()[0] != "glibc":
        return False
    try:
        if int(value) >= _TRIM_THRESHOLD:
            return False
    except ValueError:
        pass
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1) and ok
    if ok:
        log.info(
            "MALLOC_TRIM_THRESHOLD_=%s (set by Dask's nanny) slows PaddleOCR down; "
            "malloc thresholds restored to glibc's dynamic maximums",
            value,
        )
    return ok


class EnginePlugin(WorkerPlugin):
    """Loads the OCR engine once per Dask worker and holds what every task needs.

    Args:
        options: The :class:`~rythmiq.ProcessOptions` of every document.
        engine_factory: A picklable callable returning the engine; default: a
            :func:`~rythmiq.ocr.create_engine` for ``options.engine_config()`` (one OCR thread
            unless ``options.threads`` says otherwise).
        store: A store URL, opened on each worker with the worker's environment (so
            credentials stay on the workers), or a :class:`~rythmiq.storage.Store`.
        keyring: A keyring to ship to the workers; ``None`` makes each worker load its own
            with :func:`rythmiq.load_keyring` when there is a store.
        tune_malloc: Call :func:`restore_malloc_thresholds` on each worker (default). Dask's
            nanny environment otherwise makes PaddleOCR about 3x slower.
    """

    name = PLUGIN_NAME

    def __init__(
        self,
        options: ProcessOptions,
        engine_factory: EngineFactory | None = None,
        store: Store | str | None = None,
        keyring: Keyring | None = None,
        tune_malloc: bool = True,
    ) -> None:
        self.options = options
        self.tune_malloc = tune_malloc
        self.malloc_tuned = False
        self.engine_factory = engine_factory
        self.store_spec = store
        self.keyring = keyring
        self.engine: OcrEngine | None = None
        self.store: Store | None = None

    def setup(self, worker: Any = None) -> None:
        """Create the engine, open the store and find the keyring (raises what fails)."""
        if self.tune_malloc:
            self.malloc_tuned = restore_malloc_thresholds()
        if isinstance(self.store_spec, str):
            self.store = Store.open(self.store_spec)
        else:
            self.store = self.store_spec
        if self.store is not None and self.keyring is None:
            self.keyring = load_keyring().keyring
        engine: OcrEngine | None = None
        if self.engine_factory is not None:
            engine = self.engine_factory()
        elif self.options.ocr:
            engine = create_engine(self.options.engine_config())
        self.engine = _SerialEngine(engine) if engine is not None else None

    def teardown(self, worker: Any = None) -> None:
        """Close the engine."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _task(index: int, source: Source, ids: Ids | None) -> BatchResult:
    """One document on a Dask worker, through the worker's :class:`EnginePlugin`."""
    plugin = get_worker().plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, EnginePlugin):
        raise RuntimeError("the rythmiq engine plugin is not registered on this worker")
    t0 = time.monotonic()
    outcome = run_document(
        source,
        options=plugin.options,
        engine=plugin.engine,
        store=plugin.store,
        ids=ids,
        keyring=plugin.keyring,
    )
    current, peak = rss_mb()
    wall = time.monotonic() - t0
    error = outcome if isinstance(outcome, RythmiqError) else None
    result = None if isinstance(outcome, RythmiqError) else outcome
    return BatchResult(index, describe(source), result, error, os.getpid(), current, peak, wall)


def process_on_cluster(
    client: Client,
    sources: Iterable[Source],
    *,
    options: ProcessOptions | None = None,
    store: Store | str | None = None,
    ids: Sequence[Ids] | Callable[[int, Source], Ids] | None = None,
    keyring: Keyring | None = None,
    ordered: bool = False,
    as_dict: bool = False,
    max_in_flight: int | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    engine_factory: EngineFactory | None = None,
    tune_malloc: bool = True,
) -> Iterator[Any]:
    """Process documents on a Dask cluster; yield each outcome as it finishes.

    Args:
        client: A connected :class:`distributed.Client`.
        sources: Paths or URLs the workers can read (or bytes/arrays, shipped with the task).
        options: Options of every document; ``options.threads`` is the OCR threads per worker
            (default 1).
        store: Where workers write artifacts: a URL (opened on each worker, with the
            worker's environment) or a :class:`~rythmiq.storage.Store`; needs ``ids``.
        ids: As for :func:`rythmiq.process_many`.
        keyring: A keyring shipped to the workers; by default each worker loads its own.
        ordered: Yield in input order.
        as_dict: Yield :meth:`BatchResult.to_dict` dicts (JSON-safe, no image bytes).
        max_in_flight: Tasks submitted ahead; default 4 per worker thread. Lazy
            ``sources`` are read only that far ahead.
        on_progress: Called with a :class:`~rythmiq.batch.BatchProgress` per document.
        engine_factory: As for :func:`rythmiq.process_many`.
        tune_malloc: Undo the malloc setting of Dask's nanny on each worker (see
            :func:`restore_malloc_thresholds`).

    Yields:
        One :class:`~rythmiq.batch.BatchResult` (or dict) per source, exactly once each.

    Raises:
        OptionsError: An argument is invalid.
        ModelError: A worker could not create the OCR engine (raised by plugin set-up).
    """
    opts = options if options is not None else ProcessOptions()
    if not isinstance(opts, ProcessOptions):
        raise OptionsError(f"options must be a ProcessOptions, got {type(opts).__name__}")
    if opts.threads is None:
        opts = replace(opts, threads=1)
    if (store is None) != (ids is None):
        raise OptionsError("a store and ids go together")
    total = len(sources) if isinstance(sources, Sequence) else None
    if isinstance(ids, Sequence) and total is not None and len(ids) != total:
        raise OptionsError(f"got {len(ids)} ids for {total} sources")
    if max_in_flight is not None:
        positive_int(max_in_flight, "max_in_flight")
    client.register_plugin(EnginePlugin(opts, engine_factory, store, keyring, tune_malloc))
    if max_in_flight is None:
        threads = sum(client.nthreads().values()) or 1
        max_in_flight = 4 * threads
    collector = Collector(total, ordered, on_progress)
    return _run(client, iter(sources), ids, as_dict, max_in_flight, collector)


def _run(
    client: Client,
    sources: Iterator[Source],
    ids: Sequence[Ids] | Callable[[int, Source], Ids] | None,
    as_dict: bool,
    max_in_flight: int,
    collector: Collector,
) -> Iterator[Any]:
    from distributed.scheduler import KilledWorker

    flight: dict[Any, tuple[int, str, Future[Any]]] = {}
    done = as_completed()
    index = 0
    exhausted = False

    def submit() -> Iterator[BatchResult]:
        """Top the cluster up to ``max_in_flight`` tasks; yield documents that failed early."""
        nonlocal index, exhausted
        while not exhausted and len(flight) < max_in_flight:
            try:
                source = next(sources)
            except StopIteration:
                exhausted = True
                return
            i, index = index, index + 1
            try:
                doc_ids = ids_for(ids, i, source)
            except RythmiqError as exc:
                yield BatchResult(i, describe(source), error=exc)
                continue
            future = client.submit(_task, i, source, doc_ids, pure=False)
            flight[future.key] = (i, describe(source), future)
            done.add(future)

    def emit(item: BatchResult) -> Iterator[Any]:
        for ready in collector.finish(item):
            yield ready.to_dict() if as_dict else ready

    try:
        for item in submit():
            yield from emit(item)
        while flight:
            future = next(done)
            i, description, _ = flight.pop(future.key)
            try:
                value = future.result()
            except KilledWorker as exc:
                error = BatchError(
                    f"the Dask workers running this document died: {exc}",
                    code="batch.worker_died",
                )
                value = BatchResult(i, description, error=error)
            except RythmiqError as exc:
                value = BatchResult(i, description, error=exc)
            except Exception as exc:  # e.g. the plugin is missing on a new worker
                value = BatchResult(i, description, error=untyped(exc))
            future.release()
            yield from emit(value)
            for item in submit():
                yield from emit(item)
    finally:
        if flight:
            client.cancel([f for _, _, f in flight.values()])
