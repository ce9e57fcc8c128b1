"""Many documents on every core: :func:`process_many` over a pool of worker processes.

Each worker process loads its OCR engine once and then takes documents one at a time over a
pipe, so the parent always knows which document each worker holds. That is what makes the
failure rules exact:

* a document that fails with a :class:`~rythmiq.RythmiqError` comes back as that document's
  error; any other exception comes back as an ``internal`` error; nothing is raised;
* a worker that dies while it holds a document (SIGKILL, the OOM killer, a crash in native
  code) is replaced, and that one document is reported as ``batch.worker_died``;
* with ``timeout``, a document that runs too long has its worker killed and replaced, and is
  reported as ``batch.timeout``;
* a worker is retired after ``max_docs_per_worker`` documents and a fresh one takes its
  place, which bounds PaddleOCR's memory growth over long runs.

Only errors that would fail every document are raised: invalid options, and OCR models that
cannot be loaded (:class:`~rythmiq.ModelError`).

Workers are started with the ``spawn`` method by default (no fork of a process that may hold
threads or a loaded model). Under ``spawn`` a script that calls :func:`process_many` at
module level needs the usual ``if __name__ == "__main__":`` guard, and an ``engine_factory``
must be picklable (a module-level function or class).
"""

from __future__ import annotations

import ast
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from rythmiq._backend import (
    EngineFactory,
    IdsSpec,
    WorkerSetup,
    describe,
    ids_for,
    run_document,
    untyped,
    worker_main,
)
from rythmiq._errors import (
    BatchError,
    InputError,
    OptionsError,
    RythmiqError,
    error_dict,
)
from rythmiq._public import public
from rythmiq._system import usable_cpus
from rythmiq._util import positive_int, short_repr
from rythmiq.io import Source
from rythmiq.keyring import Keyring, load_keyring
from rythmiq.options import ProcessOptions
from rythmiq.results import ProcessResult
from rythmiq.storage import Store

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess


__all__ = [
    "DEFAULT_MAX_DOCS_PER_WORKER",
    "BatchProgress",
    "BatchResult",
    "EngineFactory",
    "plan_workers",
    "process_many",
    "run_document",
]

log = logging.getLogger("rythmiq.batch")

DEFAULT_MAX_DOCS_PER_WORKER = 200
"""Documents a worker process handles before it is replaced (bounds memory growth)."""

_START_FAILURES_ALLOWED = 3


# --------------------------------------------------------------------------- result types


@public
@dataclass(frozen=True)
class BatchResult:
    """The outcome of one document of a batch: a result or an error, never both.

    Attributes:
        index: Position of the document in the input sequence.
        source: The input as text: the path or URL, or ``<bytes N>`` / ``<array HxW>``.
        result: The :class:`~rythmiq.ProcessResult`, ``None`` when the document failed.
        error: The typed error, ``None`` when the document succeeded.
        worker_pid: PID of the worker process that handled it (``None`` if it never ran).
        worker_rss_mb: Resident memory of that worker right after the document.
        worker_peak_rss_mb: Peak resident memory of that worker so far.
        wall_s: Seconds from handing the document to a worker to receiving its outcome.
    """

    index: int
    source: str
    result: ProcessResult | None = None
    error: RythmiqError | None = None
    worker_pid: int | None = None
    worker_rss_mb: float | None = None
    worker_peak_rss_mb: float | None = None
    wall_s: float = 0.0

    __repr__ = short_repr

    @property
    def ok(self) -> bool:
        """Whether the document was processed."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: ``index``, ``source``, ``ok``, ``error`` and ``result`` dicts."""
        error = None if self.error is None else error_dict(self.error)
        return {
            "index": self.index,
            "source": self.source,
            "ok": self.ok,
            "error": error,
            "result": self.result.to_dict() if self.result is not None else None,
            "worker_pid": self.worker_pid,
            "worker_rss_mb": self.worker_rss_mb,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
            "wall_s": round(self.wall_s, 6),
        }


@public
@dataclass(frozen=True)
class BatchProgress:
    """Where a batch stands; passed to ``on_progress`` after every document.

    Attributes:
        done: Documents finished (succeeded or failed).
        failed: Documents that failed.
        total: Documents in the batch, ``None`` when the sources are an iterator of
            unknown length.
        elapsed_s: Seconds since the batch started (worker start-up included).
        last: The document that just finished.
    """

    done: int
    failed: int
    total: int | None
    elapsed_s: float
    last: BatchResult

    __repr__ = short_repr

    @property
    def docs_per_s(self) -> float:
        """Throughput so far."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current throughput; ``None`` when unknown."""
        if self.total is None or self.done == 0:
            return None
        return (self.total - self.done) / self.docs_per_s


# --------------------------------------------------------------------------- planning


def plan_workers(
    workers: int | None = None, threads: int | None = None, *, cores: int | None = None
) -> tuple[int, int]:
    """``(workers, threads_per_worker)`` such that workers x threads <= usable cores.

    ``cores`` defaults to :func:`rythmiq._system.usable_cpus` (CPU affinity and cgroup quota).
    With neither given, every core gets a worker with one OCR thread, which is the fastest
    layout for many documents. More workers than cores are reduced to the core count, and
    threads are reduced to fit; both are logged.
    """
    n = usable_cpus() if cores is None else cores
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None:
            positive_int(value, name)
    t = threads or 1
    w = workers if workers is not None else max(1, n // t)
    if w > n:
        log.warning("%d workers asked for but %d usable core(s): using %d", w, n, n)
        w = n
    if w * t > n:
        fitted = max(1, n // w)
        log.warning(
            "%d workers x %d threads exceeds %d usable core(s): using %d thread(s) per worker",
            w,
            t,
            n,
            fitted,
        )
        t = fitted
    return w, t


# --------------------------------------------------------------------------- the pool

#: Seconds a busy worker gets to roll its document back after SIGTERM before it is killed.
STOP_GRACE_S = 10.0


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False
    pid: int | None = None
    done: int = 0
    task: tuple[int, str, float] | None = None  # (index, description, start time)


@dataclass
class _Pool:
    ctx: BaseContext
    size: int
    setup: WorkerSetup
    max_docs: int | None
    timeout: float | None
    workers: list[_Worker] = field(default_factory=list)
    retired: list[BaseProcess] = field(default_factory=list)
    start_failures: int = 0

    def spawn(self) -> _Worker:
        parent_end, child_end = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(child_end, self.setup), name="rythmiq-worker", daemon=True
        )
        proc.start()
        child_end.close()
        worker = _Worker(proc, parent_end)
        self.workers.append(worker)
        return worker

    def retire(self, worker: _Worker, *, kill: bool = False) -> None:
        self.workers.remove(worker)
        if kill:
            worker.process.kill()
        else:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        worker.conn.close()
        self.retired.append(worker.process)
        self.retired = [p for p in self.retired if p.is_alive() or not _reap(p)]

    def shutdown(self) -> None:
        """Stop every worker: idle ones are told to, busy ones get SIGTERM and
        :data:`STOP_GRACE_S` to roll back the document they hold (Ctrl-C, an error, or the
        caller leaving the loop early), and whatever is still alive then is killed."""
        for worker in list(self.workers):
            if worker.task is not None and worker.process.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    worker.process.terminate()
                self.workers.remove(worker)
                worker.conn.close()
                self.retired.append(worker.process)
            else:  # idle ones stop cleanly; still-loading ones have nothing to keep
                self.retire(worker, kill=not worker.ready)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.retired:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            _reap(proc)
        self.retired.clear()


def _reap(proc: BaseProcess) -> bool:
    try:
        proc.close()
    except ValueError:  # still running
        return False
    return True


def _death(worker: _Worker) -> str:
    code = worker.process.exitcode
    if code is None:
        return "the worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process (pid {worker.pid}) was killed by {name}"
    return f"the worker process (pid {worker.pid}) exited with status {code}"


@public
def process_many(
    sources: Iterable[Source],
    *,
    options: ProcessOptions | None = None,
    workers: int | None = None,
    store: Store | str | None = None,
    ids: IdsSpec = None,
    keyring: Keyring | None = None,
    ordered: bool = False,
    max_docs_per_worker: int | None = DEFAULT_MAX_DOCS_PER_WORKER,
    timeout: float | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
    engine_factory: EngineFactory | None = None,
    start_method: str = "spawn",
) -> Iterator[BatchResult]:
    """Process many documents on a pool of worker processes; yield each as it finishes.

    Args:
        sources: Paths, URLs (read by the worker that takes the document), encoded bytes or
            arrays, as for :func:`rythmiq.process`. May be a lazy iterator: only a few
            documents per worker are taken ahead.
        options: :class:`~rythmiq.ProcessOptions` for every document. ``options.threads`` is
            the OCR threads per worker (default 1, see :func:`plan_workers`).
        workers: Worker processes; default: usable cores // threads per worker. Workers x
            threads never exceed the usable cores (CPU affinity and cgroup quota).
        store: A :class:`~rythmiq.storage.Store` or store URL to write every document's
            artifacts to; needs ``ids``. ``memory://`` stores are refused: they live inside
            one process.
        ids: The :class:`~rythmiq.layout.Ids` of each document: a sequence parallel to
            ``sources``, or a function ``(index, source) -> Ids`` called in this process.
        keyring: Keyring for the encrypted masters; with a store and none given,
            :func:`rythmiq.load_keyring` finds one here, before any worker starts.
        ordered: Yield in input order instead of completion order (finished documents wait
            for the ones before them).
        max_docs_per_worker: Replace a worker after this many documents; ``None`` never.
        timeout: Seconds one document may take on its worker (engine start-up excluded);
            past it the worker is killed and the document reported as ``batch.timeout``.
        on_progress: Called with a :class:`BatchProgress` after every document, in this
            process.
        engine_factory: A picklable callable returning the :class:`~rythmiq.ocr.OcrEngine`
            each worker uses; default: the engine ``options.engine`` names (see
            :func:`rythmiq.ocr.create_engine`), created once per worker.
        start_method: The multiprocessing start method, ``"spawn"`` (default),
            ``"forkserver"`` or ``"fork"``.

    Yields:
        One :class:`BatchResult` per source, exactly once each.

    Raises:
        OptionsError: An argument is invalid.
        ModelError: The OCR engine cannot be created in the workers.
        CryptoError: A store was given and no keyring can be found.
        BatchError: ``batch.worker_start_failed``: workers keep dying before they start.
    """
    opts = _checked_options(options, max_docs_per_worker, timeout, start_method)
    _check_main_module(start_method)
    total = len(sources) if isinstance(sources, Sequence) else None
    if total is not None and workers is None:
        workers = min(total, plan_workers(None, opts.threads)[0]) or 1
    n_workers, threads = plan_workers(workers, opts.threads)
    if threads != opts.threads:
        opts = replace(opts, threads=threads)
    store_obj, keyring = _store_and_keyring(store, ids, keyring, total)
    return _run(
        iter(sources),
        total=total,
        pool=_Pool(
            multiprocessing.get_context(start_method),
            n_workers,
            WorkerSetup(opts, engine_factory, store_obj, keyring),
            max_docs_per_worker,
            float(timeout) if timeout is not None else None,
        ),
        ids=ids,
        ordered=ordered,
        on_progress=on_progress,
    )


def _check_main_module(start_method: str) -> None:
    """Refuse, before any worker starts, a main script that "spawn" workers cannot import.

    A "spawn" or "forkserver" worker imports the main script again (as ``__mp_main__``).
    That fails when the script has no file (``python - <<EOF``: its ``__file__`` is
    ``"<stdin>"``), and it re-runs a ``process_many`` call written at the script's top level
    instead of under ``if __name__ == "__main__":``, which multiprocessing refuses in the
    child. Either way every worker would die at start with its error on stderr only.
    """
    if start_method == "fork":
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:  # a notebook or the interactive prompt: not re-run
        return
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if spec_name == "__main__" or spec_name.endswith(".__main__"):
        return  # python -m package: multiprocessing does not import a __main__ module again
    hint = 'or pass start_method="fork" (Linux), or call rythmiq.process() in a loop'
    if not os.path.isfile(path):
        raise BatchError(
            f"process_many starts its workers with {start_method!r}, which imports the main "
            f"script again, and this one has no file ({path!r}: a script read from stdin or "
            f"given with -c); save it as a file and run that, {hint}",
            code="batch.main_not_importable",
        )
    line = _main_level_line(main.__dict__)
    if line is not None and not _under_main_guard(path, line):
        raise BatchError(
            f"process_many is called at the top level of {path} (line {line}), outside an "
            f'`if __name__ == "__main__":` block; its {start_method!r} workers import the '
            f"script again and would run this call once more each. Put the call under that "
            f"guard, {hint}",
            code="batch.main_not_importable",
        )


def _main_level_line(main_globals: dict[str, Any]) -> int | None:
    """The line of the main script's top-level code that is running now, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main_globals and frame.f_code.co_name == "<module>":
            return frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _under_main_guard(path: str, line: int) -> bool:
    """Whether ``line`` of the script at ``path`` is inside ``if __name__ == "__main__":``;
    ``True`` when the source cannot be read or parsed (nothing to tell then)."""
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return True
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and "__name__" in ast.unparse(node.test)
            and "__main__" in ast.unparse(node.test)
            and node.body[0].lineno <= line <= (node.body[-1].end_lineno or line)
        ):
            return True
    return False


def _checked_options(
    options: ProcessOptions | None,
    max_docs_per_worker: int | None,
    timeout: float | None,
    start_method: str,
) -> ProcessOptions:
    """The options of :func:`process_many`, checked before any worker starts."""
    opts = options if options is not None else ProcessOptions()
    if not isinstance(opts, ProcessOptions):
        raise OptionsError(f"options must be a ProcessOptions, got {type(opts).__name__}")
    if max_docs_per_worker is not None:
        positive_int(max_docs_per_worker, "max_docs_per_worker")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise OptionsError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if start_method not in multiprocessing.get_all_start_methods():
        raise OptionsError(
            f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
            f"got {start_method!r}"
        )
    return opts


def _store_and_keyring(
    store: Store | str | None, ids: IdsSpec, keyring: Keyring | None, total: int | None
) -> tuple[Store | None, Keyring | None]:
    """The opened store and the keyring its masters need (found here, before any worker)."""
    store_obj = _open_store(store)
    if store_obj is not None:
        if ids is None:
            raise OptionsError("ids (a sequence or a function of (index, source)) is needed")
        if keyring is None:
            keyring = load_keyring().keyring
    elif ids is not None:
        raise OptionsError("ids are only used with a store")
    if isinstance(ids, Sequence) and total is not None and len(ids) != total:
        raise OptionsError(f"got {len(ids)} ids for {total} sources")
    return store_obj, keyring


class Collector:
    """Counts finished documents, reports progress, and restores input order if asked."""

    def __init__(
        self,
        total: int | None,
        ordered: bool,
        on_progress: Callable[[BatchProgress], None] | None,
    ) -> None:
        self.total, self.ordered, self.on_progress = total, ordered, on_progress
        self.t0 = time.monotonic()
        self.done = self.failed = self.next_out = 0
        self.held: dict[int, BatchResult] = {}  # finished, waiting for their turn

    def finish(self, outcome: BatchResult) -> list[BatchResult]:
        """Record ``outcome``; return the results that may be yielded now."""
        self.done += 1
        self.failed += not outcome.ok
        if self.on_progress is not None:
            elapsed = time.monotonic() - self.t0
            self.on_progress(BatchProgress(self.done, self.failed, self.total, elapsed, outcome))
        if not self.ordered:
            return [outcome]
        self.held[outcome.index] = outcome
        out = []
        while self.next_out in self.held:
            out.append(self.held.pop(self.next_out))
            self.next_out += 1
        return out


def _open_store(store: Store | str | None) -> Store | None:
    if store is None:
        return None
    obj = Store.open(store) if isinstance(store, str) else store
    if not isinstance(obj, Store):
        raise OptionsError(f"store must be a Store or a URL, got {type(store).__name__}")
    if "memory" in ((obj.fs.protocol,) if isinstance(obj.fs.protocol, str) else obj.fs.protocol):
        raise OptionsError("a memory:// store lives in one process; use a folder or s3:// URL")
    return obj


def _run(
    sources: Iterator[Source],
    *,
    total: int | None,
    pool: _Pool,
    ids: IdsSpec,
    ordered: bool,
    on_progress: Callable[[BatchProgress], None] | None,
) -> Iterator[BatchResult]:
    pending: deque[tuple[int, Source]] = deque()
    exhausted = False
    next_index = 0
    collector = Collector(total, ordered, on_progress)
    finish = collector.finish

    def refill() -> None:
        nonlocal exhausted, next_index
        while not exhausted and len(pending) < 2 * pool.size:
            try:
                pending.append((next_index, next(sources)))
            except StopIteration:
                exhausted = True
            else:
                next_index += 1

    try:
        refill()
        while pending or any(w.task is not None for w in pool.workers):
            # Hand documents to idle workers.
            for worker in list(pool.workers):
                if not (worker.ready and worker.task is None):
                    continue
                if pool.max_docs is not None and worker.done >= pool.max_docs:
                    pool.retire(worker)
                    continue
                if not pending:
                    continue
                index, source = pending.popleft()
                refill()
                description = describe(source)
                try:
                    doc_ids = ids_for(ids, index, source)
                except RythmiqError as exc:
                    yield from finish(BatchResult(index, description, error=exc))
                    continue
                try:
                    worker.conn.send((index, source, doc_ids))
                except (OSError, EOFError):  # the worker died while idle: try another
                    pending.appendleft((index, source))
                    pool.retire(worker, kill=True)
                    continue
                except Exception as exc:  # the source cannot be sent to a process
                    error = InputError(
                        f"cannot hand this source to a worker process: {untyped(exc)}",
                        code="input.unsupported",
                    )
                    yield from finish(BatchResult(index, description, error=error))
                    continue
                worker.task = (index, description, time.monotonic())
            # Keep the pool at its size while there is work no starting worker will take.
            starting = sum(not w.ready for w in pool.workers)
            while len(pool.workers) < pool.size and len(pending) > starting:
                pool.spawn()
                starting += 1
            busy = [w for w in pool.workers if w.task is not None or not w.ready]
            if not busy:
                continue
            wait_for: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
            deadline = None
            if pool.timeout is not None:
                starts = [w.task[2] for w in busy if w.task is not None]
                if starts:
                    deadline = max(0.0, min(starts) + pool.timeout - time.monotonic())
            ready = set(connection.wait(wait_for, deadline))
            for worker in busy:
                outcome = _collect(pool, worker, ready)
                if outcome is not None:
                    yield from finish(outcome)
    finally:
        pool.shutdown()


def _collect(pool: _Pool, worker: _Worker, ready: set[Any]) -> BatchResult | None:
    """Read what ``worker`` has to say, or notice that it died or overran its time."""
    message: Any = None
    if worker.conn in ready or worker.process.sentinel in ready:
        try:
            if worker.conn.poll():
                message = worker.conn.recv()
        except (EOFError, OSError):
            message = None
    if message is not None:
        kind = message[0]
        if kind == "ready":
            worker.ready, worker.pid = True, message[1]
            pool.start_failures = 0
            return None
        if kind == "fatal":
            raise message[1]
        _, index, outcome, rss, peak = message
        assert worker.task is not None and worker.task[0] == index
        _, description, started = worker.task
        worker.task = None
        worker.done += 1
        wall = time.monotonic() - started
        if isinstance(outcome, RythmiqError):
            return BatchResult(index, description, None, outcome, worker.pid, rss, peak, wall)
        return BatchResult(index, description, outcome, None, worker.pid, rss, peak, wall)
    if worker.process.sentinel in ready or not worker.process.is_alive():
        worker.process.join(1)
        reason = _death(worker)
        pool.retire(worker, kill=True)
        if worker.task is None:  # died while loading its engine
            pool.start_failures += 1
            if pool.start_failures >= _START_FAILURES_ALLOWED:
                raise BatchError(
                    f"{pool.start_failures} worker processes died before their first document; "
                    f"last: {reason}",
                    code="batch.worker_start_failed",
                )
            return None
        index, description, started = worker.task
        log.error("document %d (%s) lost: %s", index, description, reason)
        error = BatchError(f"{reason} while processing this document", code="batch.worker_died")
        return BatchResult(
            index, description, None, error, worker.pid, None, None, time.monotonic() - started
        )
    if worker.task is not None and pool.timeout is not None:
        index, description, started = worker.task
        elapsed = time.monotonic() - started
        if elapsed >= pool.timeout:
            log.error("document %d (%s) timed out after %.1f s", index, description, elapsed)
            pool.retire(worker, kill=True)
            error = BatchError(
                f"the document took longer than {pool.timeout:g} s; its worker was killed",
                code="batch.timeout",
            )
            return BatchResult(index, description, None, error, worker.pid, None, None, elapsed)
    return None
