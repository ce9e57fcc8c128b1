"""The batch worker shim: ``cat payload.json | python -m rythmiq.worker``.

It reads one payload (stdin, or ``--payload FILE``), processes every document with one OCR
engine loaded once, writes the artifacts and ``output/{user_id}/{job_id}/result.json`` (last:
the completion marker) to the payload's store, and prints exactly one JSON document, the job
result, to stdout. Logs go to stderr. With ``--resume`` (or ``"resume": true`` in the payload)
the documents a previous run of the same job already stored are skipped.

Exit codes (``rythmiq.ExitCode``): 0 ok, 3 partial, 4 invalid payload, 5 input, 6 model,
7 storage, 8 crypto, 1 internal, 143 cancelled by SIGTERM. A payload, keyring, store or
missing-input problem is found before anything is written; then the job result is an error
object and nothing is stored.
"""

from __future__ import annotations

import time

# Taken first, so "import rythmiq" below is measured by the start-up accounting.
_T_WORKER_IMPORT = time.time()

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import posixpath  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from hashlib import sha256  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

from rythmiq._errors import (  # noqa: E402
    ExitCode,
    InputError,
    RythmiqError,
    error_dict,
    exit_code_of,
)
from rythmiq._logging import setup_logging  # noqa: E402
from rythmiq._system import rss_mb  # noqa: E402
from rythmiq._util import error_line, printable  # noqa: E402
from rythmiq.keyring import Keyring, load_keyring  # noqa: E402
from rythmiq.layout import artifact_key, master_extension, master_folder  # noqa: E402
from rythmiq.ocr import OcrEngine, create_engine  # noqa: E402
from rythmiq.payload import (  # noqa: E402
    DocumentSpec,
    Payload,
    parse_payload,
    read_payload_bytes,
)
from rythmiq.persist import store_artifacts, stored_result  # noqa: E402
from rythmiq.pipeline import process  # noqa: E402
from rythmiq.results import ProcessResult  # noqa: E402
from rythmiq.storage import Artifact, Store  # noqa: E402

_T_RYTHMIQ_IMPORTED = time.time()


__all__ = ["EXIT_CANCELLED", "main", "run_job"]

log = logging.getLogger("rythmiq.worker")

EXIT_CANCELLED = 128 + signal.SIGTERM  # 143, the shell's convention for "killed by SIGTERM"


class Cancelled(BaseException):
    """Raised in the main thread by the SIGTERM handler (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` swallows it and every ``finally``/rollback still runs)."""


def _process_start_epoch() -> float | None:
    """When this process started, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class _Stages:
    """Wall and CPU seconds summed per stage over the job's documents."""

    totals: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, name: str, wall: float, cpu: float) -> None:
        t = self.totals.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
        t["wall_s"] += wall
        t["cpu_s"] += cpu

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {k: {n: round(v, 6) for n, v in t.items()} for k, t in self.totals.items()}


def _document_summary(result: ProcessResult) -> dict[str, Any]:
    """A short per-document entry: page count, then each page's verdict, OCR and image."""
    return _stored_summary(result.to_dict())


def _stored_summary(stored: dict[str, Any]) -> dict[str, Any]:
    """:func:`_document_summary` from a result's dict form (``result.json``), as stored.

    Raises KeyError, TypeError or AttributeError when ``stored`` is not such a dict.
    """
    pages = []
    for page in stored["pages"]:
        q, ocr, image, turn = page["quality"], page["ocr"], page["image"], page["orientation"]
        pages.append(
            {
                "quality": {
                    "score": q["score"],
                    "passed": q["passed"],
                    "reasons": list(q["reasons"]),
                },
                "ocr": None
                if ocr is None
                else {
                    # A result stored without its text (encrypt="all") keeps the counts.
                    "lines": ocr["line_count"] if ocr["lines"] is None else len(ocr["lines"]),
                    "text_length": ocr["text_length"] if ocr["text"] is None else len(ocr["text"]),
                    "mean_confidence": ocr["confidence"],
                    "engine": ocr["engine"],
                },
                "ocr_skipped_reason": page["ocr_skipped_reason"],
                "rotation": None if turn is None else turn["rotation"],
                "image": {
                    "width": image["width"],
                    "height": image["height"],
                    "dpi": image["dpi"],
                    "bytes": image["bytes"],
                },
            }
        )
    return {"page_count": stored["page_count"], "passed": stored["passed"], "pages": pages}


def _resumed_entry(store: Store, payload: Payload, spec: DocumentSpec) -> dict[str, Any] | None:
    """The job-result entry of a document a previous run of the job already stored, or None.

    A list-form document is done when its own ``result.json`` is JSON, says ``"status": "ok"``,
    names this user, job and document, and was made with the same options (its
    ``options_sha256``). A single-document job is done when its job result (the same key)
    says so. Anything else is processed again; the reason is logged at INFO.
    """

    key = artifact_key("result", payload.ids(spec), per_document=not payload.single)
    try:
        raw = store.read(key)
    except RythmiqError as exc:
        if exc.code == "storage.not_found":
            log.info("resume: %s has no stored result; processing it", spec.document_id)
        else:
            log.info("resume: cannot read %s (%s); processing it", key, exc.message)
        return None
    entry = _stored_entry(raw, store, key, payload, spec)
    if isinstance(entry, str):
        log.info("resume: %s %s; processing it again", key, entry)
        return None
    log.info("resume: %s is already stored; skipping it", spec.document_id)
    return entry


def _stored_entry(
    raw: bytes, store: Store, key: str, payload: Payload, spec: DocumentSpec
) -> dict[str, Any] | str:
    """The resumed job-result entry built from the stored ``raw`` bytes, or why it cannot be."""
    try:
        stored = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError
        return "is not valid JSON"
    if not isinstance(stored, dict) or stored.get("status") != "ok":
        return "does not say status ok"
    if stored.get("options_sha256") != payload.options.fingerprint():
        return "was made with other options"
    document: Any = stored
    listed = stored.get("artifacts")
    if payload.single:  # the job result: its one document entry holds the result
        documents = stored.get("documents")
        if not isinstance(documents, list) or len(documents) != 1:
            return "is not a single-document job result"
        first = documents[0]
        if not isinstance(first, dict) or first.get("status") != "ok":
            return "does not say status ok"
        document, listed = first.get("result"), first.get("artifacts")
        if not isinstance(document, dict):
            return "holds no result"
    if document.get("ids") != payload.ids(spec).to_dict():
        return "names other ids"
    if not isinstance(listed, list):
        return "lists no artifacts"
    try:
        summary = _stored_summary(document)
    except (KeyError, TypeError, AttributeError):
        return "is not a stored result"
    artifacts = list(listed)
    if not payload.single:
        # The marker is one of the document's artifacts, as in the run that wrote it.
        done = Artifact("result", key, store.url_for(key), len(raw), sha256(raw).hexdigest())
        artifacts.append(done.to_dict())
    entry: dict[str, Any] = {
        "document_id": spec.document_id,
        "input": spec.input_key,
        "status": "ok",
        "resumed": True,
        **summary,
        "artifacts": artifacts,
        # Its processing time was spent, and reported, by the run that stored it.
        "wall_s": 0.0,
        "cpu_s": 0.0,
    }
    if payload.single:
        entry["result"] = document
    return entry


def _remove_leftovers(store: Store, payload: Payload, redo: list[DocumentSpec]) -> None:
    """Delete the temporary files a killed run of this job left in a local store.

    They sit in the job's output folder and in the master folders of the documents it was
    writing, which are among those processed again. A run that cannot list them still runs.
    """
    # Folders named by the layout; the master's extension is not known yet.
    folders = [posixpath.dirname(artifact_key("result", payload.ids(payload.documents[0])))]
    folders += [master_folder(payload.ids(d)).rstrip("/") for d in redo]
    try:
        removed = sum(store.remove_leftovers(folder) for folder in folders)
    except RythmiqError as exc:
        log.warning("resume: could not remove temporary files: %s", exc.message)
        return
    if removed:
        log.info("resume: removed %d temporary file(s) of a run that was killed", removed)


def _open_job(payload_text: str | bytes, job: dict[str, Any]) -> tuple[Payload, Keyring, Store]:
    """Step "open": the payload, the keyring and the store, and every input there, checked
    before anything is written. The worker never creates keys."""
    payload = parse_payload(payload_text)
    job.update(job_id=payload.job_id, user_id=payload.user_id)
    keyring = load_keyring(create=False).keyring
    store = Store.open(payload.output)
    missing = [d.input_key for d in payload.documents if not store.exists(d.input_key)]
    if missing:
        raise InputError(
            f"{len(missing)} input object(s) not found in {payload.output}: "
            + ", ".join(missing[:5]),
            code="input.not_found",
        )
    return payload, keyring, store


def _already_stored(store: Store, payload: Payload) -> dict[str, dict[str, Any]]:
    """Step "resume": the job-result entries of the documents an earlier run stored."""
    resumed: dict[str, dict[str, Any]] = {}
    for spec in payload.documents:
        done = _resumed_entry(store, payload, spec)
        if done is not None:
            resumed[spec.document_id] = done
    log.info("resume: %d of %d document(s) already stored", len(resumed), len(payload.documents))
    _remove_leftovers(
        store, payload, [d for d in payload.documents if d.document_id not in resumed]
    )
    return resumed


def _load_engine(payload: Payload, todo: int) -> OcrEngine | None:
    """The job's one engine, unless OCR is off or nothing is left to do."""
    if not payload.options.ocr or todo == 0:
        return None
    engine = create_engine(payload.options.engine_config())
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        # Paddle installs its own C-level SIGTERM handler when it initialises (to dump a
        # stack and die), which replaces ours: put ours back so a cancel stays clean.
        with contextlib.suppress(ValueError):  # ValueError: not the main thread
            signal.signal(signal.SIGTERM, _on_sigterm)
    return engine


@dataclass
class _Documents:
    """What the job's documents took, summed."""

    stages: _Stages = field(default_factory=_Stages)
    wall: float = 0.0
    cpu: float = 0.0


def _run_document(
    spec: DocumentSpec,
    payload: Payload,
    store: Store,
    keyring: Keyring,
    engine: OcrEngine | None,
    spent: _Documents,
) -> dict[str, Any]:
    """Step "document": read, process and store one document; its job-result entry, whose
    status is ``"cancelled"`` when SIGTERM arrived meanwhile (its artifacts rolled back)."""
    options = payload.options
    entry: dict[str, Any] = {"document_id": spec.document_id, "input": spec.input_key}
    w0, c0 = time.perf_counter(), _cpu()
    try:
        ids = payload.ids(spec)
        data = store.read_input(spec.input_key, max_bytes=options.max_input_bytes)
        w1, c1 = time.perf_counter(), _cpu()
        spent.stages.add("read", w1 - w0, c1 - c0)
        result = process(data, options=options, engine=engine)
        for name, t in result.timings.to_dict().items():
            if name != "total":
                spent.stages.add(name, t["wall_s"], t["cpu_s"])
        w2, c2 = time.perf_counter(), _cpu()
        result = replace(result, ids=ids)
        artifacts = store_artifacts(
            result,
            store,
            ids,
            master=data,
            master_ext=master_extension(result.source_format),
            keyring=keyring,
            per_document=not payload.single,
            marker=not payload.single,
            outputs=options.outputs,
            options_sha256=options.fingerprint(),
            encrypt=options.encrypt,
        )
        spent.stages.add("store", time.perf_counter() - w2, _cpu() - c2)
        entry.update(status="ok", **_document_summary(result))
        entry["artifacts"] = [a.to_dict() for a in artifacts]
        entry["timings"] = result.timings.to_dict()
        if payload.single:  # the job result is stored: in clear only what the policy allows
            entry["result"] = stored_result(result, options.encrypt)
    except Cancelled:
        entry.update(status="cancelled")
        log.warning("cancelled while processing %s; its artifacts were removed", spec.document_id)
    except RythmiqError as exc:
        entry.update(status="failed", error=error_dict(exc))
        log.error("document %s failed: %s", spec.document_id, exc)
    except Exception as exc:  # a bug or a library failure: report it, keep going
        log.debug("internal error on %s", spec.document_id, exc_info=True)
        entry.update(status="failed", error=error_dict(exc))
    wall, cpu = time.perf_counter() - w0, _cpu() - c0
    entry["wall_s"], entry["cpu_s"] = round(wall, 6), round(cpu, 6)
    spent.wall += wall
    spent.cpu += cpu
    return entry


def _job_status(documents: list[dict[str, Any]], cancelled: bool) -> tuple[str, int]:
    """The job's status and exit code from its documents' (see ``docs/payload.md``)."""
    ok = sum(d["status"] == "ok" for d in documents)
    failed = [d for d in documents if d["status"] == "failed"]
    if cancelled:
        return "cancelled", EXIT_CANCELLED
    if not failed:
        return "ok", int(ExitCode.OK)
    if ok:
        return "partial", int(ExitCode.PARTIAL)
    return "failed", int(failed[0]["error"]["exit_code"])


def run_job(payload_text: str | bytes, *, resume: bool = False) -> tuple[int, dict[str, Any]]:
    """Run one job; returns ``(exit_code, job_result)``. Never raises for job problems.

    Args:
        payload_text: The payload (see ``docs/payload.md``).
        resume: Skip the documents a previous run of this job already stored with the same
            options, as the payload's ``"resume": true`` does (either one turns it on).
    """
    t0 = _process_start_epoch() or _T_WORKER_IMPORT
    job: dict[str, Any] = {"version": 1, "status": "error"}
    # Before the engine: a job whose documents are all stored never loads it.
    w_resume = c_resume = 0.0
    try:
        payload, keyring, store = _open_job(payload_text, job)
        w_resume, c_resume = time.perf_counter(), _cpu()
        resumed = _already_stored(store, payload) if resume or payload.resume else {}
        w_resume, c_resume = time.perf_counter() - w_resume, _cpu() - c_resume
        engine = _load_engine(payload, len(payload.documents) - len(resumed))
    except RythmiqError as exc:
        job["error"] = error_dict(exc)
        return exit_code_of(exc), job
    t_engine = time.time()

    spent = _Documents()
    documents: list[dict[str, Any]] = []
    cancelled = False
    for spec in payload.documents:
        if spec.document_id in resumed:  # stored by an earlier run: no processing time here
            documents.append(resumed[spec.document_id])
        elif cancelled:
            documents.append(
                {"document_id": spec.document_id, "input": spec.input_key, "status": "cancelled"}
            )
        else:
            documents.append(_run_document(spec, payload, store, keyring, engine, spent))
            cancelled = documents[-1]["status"] == "cancelled"
    if engine is not None:
        engine.close()

    status, code = _job_status(documents, cancelled)
    job.update(status=status, exit_code=code, documents=documents, resumed=len(resumed))
    job["engine"] = None if engine is None else engine.name
    job["options_sha256"] = payload.options.fingerprint()
    job["encrypt"] = payload.options.encrypt

    def accounting() -> dict[str, Any]:
        job_wall = time.time() - t0
        return {
            "startup": {
                "process_to_rythmiq_imported_s": round(_T_RYTHMIQ_IMPORTED - t0, 6),
                "rythmiq_imported_to_engine_ready_s": round(t_engine - _T_RYTHMIQ_IMPORTED, 6),
                "total_s": round(t_engine - t0, 6),
            },
            # Reading the stored results with resume on (inside the start-up time above).
            "resume_check": {"wall_s": round(w_resume, 6), "cpu_s": round(c_resume, 6)},
            "job": {"wall_s": round(job_wall, 6), "cpu_s": round(_cpu(), 6)},
            "documents": {"wall_s": round(spent.wall, 6), "cpu_s": round(spent.cpu, 6)},
            "stages": spent.stages.to_dict(),
            "peak_rss_mb": rss_mb()[1],
            "efficiency": round(spent.wall / job_wall, 4) if job_wall > 0 else 0.0,
        }

    job["accounting"] = accounting()
    result_key = artifact_key("result", payload.ids(payload.documents[0]))
    try:
        body = json.dumps(job, indent=2).encode("utf-8")
        job["result_url"] = store.write(result_key, body, kind="result").url
    except RythmiqError as exc:
        job["status"], job["error"] = "error", error_dict(exc)
        code = exit_code_of(exc)
        job["exit_code"] = code
    # Recomputed so the printed figures include the result write.
    job["accounting"] = accounting()
    return code, job


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Only the first signal cancels; a second one during clean-up is ignored.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Cancelled()


def main(
    payload_path: str | None = None, *, debug: bool | None = None, resume: bool = False
) -> int:
    """Run the worker: read the payload, run the job, print the job result; return the code.

    Args:
        payload_path: Payload file; ``None`` or ``"-"`` reads stdin.
        debug: Log rythmiq's debug lines and tracebacks to stderr (default: ``$RYTHMIQ_DEBUG``).
        resume: Skip documents already stored by a previous run (see :func:`run_job`).
    """
    if debug is None:
        debug = os.environ.get("RYTHMIQ_DEBUG", "") not in ("", "0")
    setup_logging(debug)
    if payload_path in (None, "-") and sys.stdin.isatty():
        print(
            "rythmiq worker: reading a JSON payload from stdin (end it with Ctrl-D), "
            "or pass --payload FILE",
            file=sys.stderr,
            flush=True,
        )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            text = read_payload_bytes(payload_path)
        except RythmiqError as exc:
            code, job = exit_code_of(exc), {"status": "error", "error": error_dict(exc)}
        else:
            code, job = run_job(text, resume=resume)
    except Cancelled:
        code, job = EXIT_CANCELLED, {"status": "cancelled"}
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.stdout.write(json.dumps(job) + "\n")
    sys.stdout.flush()
    line = _stderr_line(job)
    if line is not None:
        print(line, file=sys.stderr, flush=True)
    return code


def _stderr_line(job: dict[str, Any]) -> str | None:
    """The job's one stderr line when it did not end ``"ok"``: its error, or how many of
    its documents failed and the first one's error (each was logged as it failed)."""
    if job["status"] == "cancelled":
        return "rythmiq worker: cancelled (SIGTERM); see the job result on stdout"
    if "error" in job:
        return error_line(job["error"], prefix=f"rythmiq worker: {job['status']}")
    failed = [d for d in job.get("documents", []) if d["status"] == "failed"]
    if not failed:
        return None
    first = failed[0]
    return error_line(
        first["error"],
        prefix=f"rythmiq worker: {job['status']}: {len(failed)} of {len(job['documents'])} "
        f"documents failed; the first, {printable(first['document_id'])}:",
    )


def _cli(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rythmiq.worker",
        description="Run one rythmiq job from a JSON payload (stdin by default).",
    )
    parser.add_argument("--payload", help="payload file (default: stdin)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="skip documents a previous run of this job already stored with the same options",
    )
    args = parser.parse_args(argv)
    return main(args.payload, resume=args.resume)


if __name__ == "__main__":
    sys.exit(_cli())
