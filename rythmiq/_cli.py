"""The ``rythmiq`` command line: the one place that turns errors into exit codes."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import click

from rythmiq._errors import (
    ExitCode,
    InputError,
    OptionsError,
    RythmiqError,
    StorageError,
    error_dict,
)
from rythmiq._logging import setup_logging
from rythmiq._redact import redact
from rythmiq._registry import (
    BUNDLE_COMPRESSIONS,
    BUNDLE_INSTALLERS,
    DEFAULT_BUNDLE_PLATFORM,
    DEFAULT_BUNDLE_PYTHON,
    DEFAULT_ENGINE,
    ENGINES,
    RUNTIMES,
)
from rythmiq._util import format_bytes
from rythmiq._version import __version__

if TYPE_CHECKING:
    from rythmiq.keyring import Keyring
    from rythmiq.options import ProcessOptions
    from rythmiq.results import PageResult, ProcessResult
    from rythmiq.storage import Store

log = logging.getLogger("rythmiq.cli")

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pdf"}
)

# An input is a local path, or a URL string that rythmiq.process reads through fsspec.
Input = Path | str

_EXIT_CODES = (
    "Exit codes: 0 ok, 1 internal, 2 usage, 3 partial (some inputs failed), 4 payload, "
    "5 input, 6 model, 7 storage, 8 crypto, 9 bundle. See docs/errors.md."
)


# --------------------------------------------------------------------------- helpers


def _box(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {value!r}") from None
    return (w, h)


def _is_url(text: str) -> bool:
    return "://" in text


def _images_under(folder: Path) -> list[Path]:
    """Image files below ``folder``, sorted; hidden files and folders are skipped, as by glob."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def _expand_inputs(args: Sequence[str]) -> list[Input]:
    """Files as given, folders recursed for images, glob patterns expanded, URLs kept.

    A path that does not exist and is no pattern is kept, so that processing reports it as
    ``input.not_found``. A pattern (or folder) that matches nothing contributes nothing.
    """
    found: list[Input] = []
    for arg in args:
        if arg.startswith("file://"):
            arg = unquote(urlparse(arg).path)
        elif _is_url(arg):
            found.append(arg)
            continue
        path = Path(arg)
        if path.is_dir():
            found.extend(_images_under(path))
        elif not path.exists() and any(c in arg for c in "*?["):
            # The shell did not expand it (quoted, or no match there): expand it here.
            for match in sorted(glob.glob(arg, recursive=True)):
                m = Path(match)
                found.extend(_images_under(m) if m.is_dir() else [m])
        else:
            found.append(path)
    return list(dict.fromkeys(found))  # drop repeats, keep order


def _document_id(source: Input) -> str:
    """A document id from a file or URL name, or from the content hash when the name is unsafe."""
    from rythmiq.layout import validate_id

    if isinstance(source, str):
        stem = PurePosixPath(unquote(urlparse(source).path)).stem
    else:
        stem = source.stem
    try:
        return validate_id(stem)
    except RythmiqError:
        pass
    if isinstance(source, str):
        from rythmiq.storage import read_url

        data = read_url(source)
    else:
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            raise InputError(f"no such file: {str(source)!r}", code="input.not_found") from None
        except OSError as exc:
            raise InputError(f"cannot read {str(source)!r}: {exc.strerror or exc}") from exc
    return f"doc-{hashlib.sha256(data).hexdigest()[:16]}"


def _keyring_for_cli() -> Keyring:
    from rythmiq.keyring import load_keyring

    loaded = load_keyring(create=True)
    if loaded.created:
        click.echo(
            f"rythmiq: created a new keyring at {loaded.path} (mode 0600). Back it up: "
            "without it the stored masters cannot be decrypted.",
            err=True,
        )
    return loaded.keyring


def _shown(source: Input) -> str:
    """An input as printed: a presigned URL's signature or a URL's credentials blanked."""
    return redact(str(source))


def _page_summary(page: PageResult, indent: str) -> list[str]:
    q, im = page.quality, page.image
    verdict = "PASS" if q.passed else "FAIL"
    reasons = f" ({', '.join(q.reasons)})" if q.reasons else ""
    lines = [
        f"{indent}quality  {q.score:.2f} {verdict}{reasons}  threshold {q.threshold:.2f}  "
        f"sharpness {q.sharpness:.2f}  exposure {q.exposure:.2f}",
        f"{indent}image    {im.width}x{im.height} at {im.dpi:g} dpi ({im.dpi_source}), "
        f"JPEG q{im.jpeg_quality}, {len(im.data) / 1024:.0f} KiB",
    ]
    o = page.orientation
    if o is not None and (o.rotation or "deskewed" in im.corrections):
        turned = [f"rotated {o.rotation} deg"] if o.rotation else []
        if "deskewed" in im.corrections:
            turned.append(f"deskewed {o.skew:+.1f} deg")
        lines.append(f"{indent}upright  {', '.join(turned)}")
    if page.ocr is None:
        lines.append(f"{indent}ocr      skipped ({page.ocr_skipped_reason})")
    else:
        lines.append(
            f"{indent}ocr      {len(page.ocr.lines)} lines, mean confidence "
            f"{page.ocr.confidence:.2f}, {page.timings.ocr.wall_s:.2f} s"
        )
    return lines


def _summary(source: Input, r: ProcessResult) -> str:
    lines = [_shown(source)]
    if r.page_count == 1:
        lines.extend(_page_summary(r.pages[0], "  "))
    else:
        failed = sum(not p.quality.passed for p in r.pages)
        verdict = "all pages PASS" if not failed else f"{failed} page(s) FAIL"
        lines.append(f"  {r.page_count} pages ({r.source_format}), quality: {verdict}")
        for page in r.pages:
            lines.append(f"  page {page.index + 1}")
            lines.extend(_page_summary(page, "    "))
    t = r.timings
    lines.append(f"  time     {t.total.wall_s:.2f} s wall, {t.total.cpu_s:.2f} s CPU")
    for artifact in r.artifacts:
        if artifact.kind in ("text", "hocr", "pdf"):
            lines.append(f"  {artifact.kind:<8} {redact(artifact.url)}")
    text = r.text
    if text:
        lines.append("  text:")
        for number, page_text in enumerate(text.split("\f"), start=1):
            if r.page_count > 1:
                lines.append(f"    --- page {number} ---")
            lines.extend(f"    {line}" for line in page_text.splitlines())
    return "\n".join(lines)


class _Progress:
    """A progress line on stderr for runs over several inputs: count, docs/s and ETA.

    By default it is shown only when stderr is a terminal (``force`` overrides that). stdout
    carries only results, so a pipe or file never sees it. On a terminal the line is redrawn
    in place and wiped before each result or log line; elsewhere each step is its own line.
    """

    WIDTH = 24

    def __init__(self, total: int, force: bool | None = None) -> None:
        self._total = total
        self._t0 = time.monotonic()
        self._done = 0
        self._tty = sys.stderr.isatty()
        self._show = total > 1 and (self._tty if force is None else force)

    def __enter__(self) -> _Progress:
        self._draw()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._show and self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def line(self) -> str:
        """The progress line: bar, count, throughput and ETA."""
        done, total = self._done, self._total
        filled = self.WIDTH * done // total if total else self.WIDTH
        elapsed = time.monotonic() - self._t0
        rate = done / elapsed if done and elapsed > 0 else 0.0
        if rate > 0 and done < total:
            eta = time.strftime("%H:%M:%S", time.gmtime((total - done) / rate))
        else:
            eta = "--:--:--"
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"rythmiq [{bar}] {done}/{total}  {rate:.2f} docs/s  ETA {eta}"

    def _draw(self) -> None:
        if not self._show:
            return
        if self._tty:
            sys.stderr.write("\r\033[K" + self.line())
        else:
            sys.stderr.write(self.line() + "\n")
        sys.stderr.flush()

    def clear(self) -> None:
        if self._show and self._tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def echo(self, text: str) -> None:
        self.clear()
        click.echo(text)
        if self._show and self._tty:
            self._draw()

    def step(self) -> None:
        self._done += 1
        self._draw()


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


# --------------------------------------------------------------------------- commands


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=_EXIT_CODES,
    no_args_is_help=False,
)
@click.version_option(__version__, prog_name="rythmiq", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Log details and tracebacks to stderr.")
def cli(debug: bool) -> None:
    """Document image quality scoring, normalization and OCR."""
    setup_logging(debug)


@cli.command(epilog=_EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, metavar="PATH|DIR|GLOB|URL...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result per line.")
@click.option(
    "--out",
    metavar="URL",
    help="Store artifacts here (a folder, file://, s3://bucket/prefix, memory://...).",
)
@click.option("--user-id", default="local", show_default=True, help="Owner id for --out.")
@click.option("--job-id", help="Job id for --out (default: generated per input).")
@click.option("--document-id", help="Document id for --out (default: from the file name).")
@click.option("--threshold", type=float, help="Quality gate (default 0.80).")
@click.option("--skip-ocr-on-fail", is_flag=True, help="No OCR for failing images.")
@click.option("--no-ocr", is_flag=True, help="Quality and normalization only.")
@click.option(
    "--box", callback=_box, metavar="WxH", help="Fit into WIDTHxHEIGHT (default 2480x3508)."
)
@click.option("--target-dpi", type=float, help="Resample to this DPI.")
@click.option("--max-bytes", type=int, help="Byte budget of the normalized JPEG.")
@click.option("--threads", type=int, help="OCR threads (default: usable cores).")
@click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    help="OCR engine: "
    + "; ".join(f"{n} ({e.summary})" for n, e in ENGINES.items())
    + ". paddle needs rythmiq[paddle].",
)
@click.option(
    "--runtime",
    type=click.Choice(list(RUNTIMES)),
    help="What runs the onnx engine: auto (default: OpenVINO if installed, else ONNX "
    "Runtime), openvino or onnxruntime.",
)
@click.option("--det-model", metavar="NAME", help="Detection model (default: the engine's).")
@click.option("--rec-model", metavar="NAME", help="Recognition model (default: the engine's).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes, each with its own OCR engine; at most the usable cores.",
)
@click.option(
    "--max-docs-per-worker",
    type=click.IntRange(min=1),
    help="Replace a worker process after this many documents (default 200).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="With --workers: seconds one document may take before its worker is killed.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show the progress bar on stderr (default: only when stderr is a terminal).",
)
@click.option("--pdf", "want_pdf", is_flag=True, help="With --out: store a searchable PDF.")
@click.option("--hocr", "want_hocr", is_flag=True, help="With --out: store hOCR (text.hocr).")
@click.option(
    "--txt",
    "want_txt",
    is_flag=True,
    help="With --out: store the plain text (text.txt). The default when no output is named.",
)
@click.option(
    "--rotate/--no-rotate",
    default=True,
    show_default=True,
    help="Detect pages turned 90/180/270 degrees and turn them upright.",
)
@click.option(
    "--deskew/--no-deskew", default=True, show_default=True, help="Straighten small skew."
)
@click.option("--pdf-dpi", type=float, help="DPI PDF pages are rendered at (default 300).")
@click.option("--max-pages", type=click.IntRange(min=1), help="Page limit (default 200).")
def process(
    paths: tuple[str, ...],
    as_json: bool,
    out: str | None,
    user_id: str,
    job_id: str | None,
    document_id: str | None,
    threshold: float | None,
    skip_ocr_on_fail: bool,
    no_ocr: bool,
    box: tuple[int, int] | None,
    target_dpi: float | None,
    max_bytes: int | None,
    threads: int | None,
    engine: str | None,
    runtime: str | None,
    det_model: str | None,
    rec_model: str | None,
    workers: int,
    max_docs_per_worker: int | None,
    timeout: float | None,
    progress: bool | None,
    want_pdf: bool,
    want_hocr: bool,
    want_txt: bool,
    rotate: bool,
    deskew: bool,
    pdf_dpi: float | None,
    max_pages: int | None,
) -> int:
    """Score, normalize and OCR document images and PDFs.

    Each PATH is an image or PDF file, a folder (searched recursively for .jpg .jpeg .png
    .tif .tiff .bmp .gif .webp .pdf, in sorted order), a glob pattern such as
    'scans/**/*.jpg', or a URL (s3://bucket/key.jpg, memory://...). Results go to stdout,
    in input order; a progress bar with docs/s and an ETA goes to stderr when it is a
    terminal.

    With --workers N the inputs are spread over N worker processes (one OCR thread each
    unless --threads says otherwise); a document whose worker crashes is reported as failed
    and the others go on.

    A PDF or multi-page TIFF is one document: every page is scored, turned upright and
    read, and with --out each page gets its own normalized image under pages/NNNN/. --pdf,
    --hocr and --txt choose the document outputs stored next to them (default: --txt).
    """
    from rythmiq.options import ProcessOptions
    from rythmiq.pipeline import process as run_process

    given = {
        "threshold": threshold,
        "box": box,
        "target_dpi": target_dpi,
        "max_bytes": max_bytes,
        "threads": threads,
        "engine": engine,
        "runtime": runtime,
        "det_model": det_model,
        "rec_model": rec_model,
        "pdf_dpi": pdf_dpi,
        "max_pages": max_pages,
    }
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    kwargs["rotate"], kwargs["deskew"] = rotate, deskew
    named = [name for name, on in (("txt", want_txt), ("hocr", want_hocr), ("pdf", want_pdf)) if on]
    if named:
        if out is None:
            raise OptionsError("--pdf, --hocr and --txt write files: give --out DIR|URL")
        kwargs["outputs"] = tuple(named)
    if no_ocr:
        kwargs["ocr"] = False
    if skip_ocr_on_fail:
        kwargs["on_quality_fail"] = "skip_ocr"
    options: ProcessOptions = ProcessOptions(**kwargs)

    inputs = _expand_inputs(paths)
    if not inputs:
        raise click.UsageError(f"no input matched {' '.join(paths)}")

    store: Store | None = None
    keyring: Keyring | None = None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if out is not None:
        from rythmiq.storage import Store

        if len(inputs) > 1 and (job_id or document_id):
            raise OptionsError("--job-id and --document-id need a single input")
        store = Store.open(out)
        keyring = _keyring_for_cli()
    elif job_id or document_id or user_id != "local":
        raise OptionsError("--user-id, --job-id and --document-id need --out")

    def extra(source: Input) -> dict[str, Any]:
        if store is None:
            return {}
        from rythmiq.layout import Ids

        job = job_id or f"job-{stamp}-{uuid.uuid4().hex[:8]}"
        ids = Ids(user_id, job, document_id or _document_id(source))
        return {"store": store, "ids": ids, "keyring": keyring}

    if (max_docs_per_worker is not None or timeout is not None) and workers == 1:
        raise OptionsError("--max-docs-per-worker and --timeout need --workers 2 or more")

    def outcomes(bar: _Progress) -> Iterator[tuple[Input, ProcessResult | RythmiqError]]:
        """Each input's result or error, in input order; steps the progress line."""
        if workers == 1 or len(inputs) == 1:
            for source in inputs:
                try:
                    yield source, run_process(source, options=options, **extra(source))
                except RythmiqError as exc:
                    yield source, exc
                bar.step()
            return
        from rythmiq.batch import DEFAULT_MAX_DOCS_PER_WORKER, process_many

        for item in process_many(
            inputs,
            options=options,
            workers=workers,
            store=store,
            ids=(lambda i, _source: extra(inputs[i])["ids"]) if store is not None else None,
            keyring=keyring,
            ordered=True,
            max_docs_per_worker=max_docs_per_worker or DEFAULT_MAX_DOCS_PER_WORKER,
            timeout=timeout,
            # Progress counts documents as they finish, even those held back for order.
            on_progress=lambda _progress: bar.step(),
        ):
            source = inputs[item.index]  # process_many got the list, so indexes match
            if item.error is not None:
                yield source, item.error
            else:
                assert item.result is not None
                yield source, item.result

    failures = 0
    with _Progress(len(inputs), progress) as bar:
        for source, outcome in outcomes(bar):
            if isinstance(outcome, RythmiqError):
                exc = outcome
                if exc.code.startswith(("model.", "options.")) or len(inputs) == 1:
                    bar.clear()
                    raise exc
                failures += 1
                bar.clear()
                log.error("%s: %s", source, exc)
                if as_json:
                    error = error_dict(exc)
                    bar.echo(json.dumps({"source": _shown(source), "error": error}))
            elif as_json:
                bar.echo(json.dumps({"source": _shown(source), **outcome.to_dict()}))
            else:
                bar.echo(_summary(source, outcome))
    return int(ExitCode.PARTIAL if failures else ExitCode.OK)


@cli.command()
@click.option("--payload", metavar="FILE", help="Payload file (default: stdin).")
@click.option(
    "--resume",
    is_flag=True,
    help="Skip documents a previous run of this job already stored with the same options "
    '(as "resume": true in the payload does).',
)
@click.pass_context
def worker(ctx: click.Context, payload: str | None, resume: bool) -> int:
    """Run one batch job from a JSON payload; print one JSON job result.

    The same as `python -m rythmiq.worker`. Artifacts and
    output/{user_id}/{job_id}/result.json (written last) go to the payload's store.
    """
    # Imported here so the other commands work without the worker's dependencies.
    from rythmiq.worker import main as worker_main

    debug = bool(ctx.find_root().params.get("debug"))
    return worker_main(payload, debug=True if debug else None, resume=resume)


@cli.group("payload", no_args_is_help=False)
def payload_group() -> None:
    """Work with worker payloads."""


@payload_group.command("split", epilog=_EXIT_CODES)
@click.argument("source", metavar="PAYLOAD")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    metavar="N",
    help="Number of job payloads (default 4, more when one would hold over 1000 documents).",
)
@click.option(
    "--per-job",
    type=click.IntRange(min=1),
    metavar="M",
    help="Instead of --shards: at most M documents per job payload.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the job payloads, DIR/<job_id>.json (created if missing).",
)
@click.option("--force", is_flag=True, help="Replace job payload files that already exist.")
def payload_split(
    source: str, shards: int | None, per_job: int | None, out_dir: Path, force: bool
) -> int:
    """Cut a payload's documents into job payloads, one per worker job.

    PAYLOAD is a payload file in the list form (or - for stdin); it may hold more than the
    1000 documents of one job, up to 64 MiB. The documents are cut into contiguous runs of
    balanced size, in order; each job payload keeps the user, output and options, gets the
    job id <job_id>-<i>of<N> and "resume": true. One line per job payload is printed: its
    path and number of documents.
    """
    from rythmiq.payload import (
        CAMBER_CONCURRENT_JOBS,
        MAX_SPLIT_BYTES,
        read_payload_bytes,
        split_payload,
    )
    from rythmiq.storage import Store

    if shards is not None and per_job is not None:
        raise click.UsageError("give --shards or --per-job, not both")
    parts = split_payload(read_payload_bytes(source, MAX_SPLIT_BYTES), shards, per_job=per_job)
    targets = [(out_dir / f"{part['job_id']}.json", part) for part in parts]
    if not force:
        existing = [str(path) for path, _ in targets if os.path.lexists(path)]
        if existing:
            raise OptionsError(
                f"{len(existing)} job payload file(s) already exist ({', '.join(existing[:3])}"
                f"{', ...' if len(existing) > 3 else ''}); pass --force to replace them",
                code="options.exists",
            )
    # The same temp-file, fsync and rename as any local artifact write.
    folder = Store.open(str(out_dir.resolve()))
    for path, part in targets:
        folder.write(path.name, (json.dumps(part, indent=2) + "\n").encode("utf-8"))
        click.echo(f"{path}  {len(part['documents'])} documents")
    if len(parts) > CAMBER_CONCURRENT_JOBS:
        click.echo(
            f"rythmiq: warning: {len(parts)} job payloads; Camber runs only 4-6 jobs at once, "
            "the others wait in its queue",
            err=True,
        )
    return int(ExitCode.OK)


@cli.group(no_args_is_help=False)
def models() -> None:
    """Show where the OCR models come from, or copy them into a folder."""


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--rec-model", metavar="NAME", help="Recognition model (default: the engine's own)."
    )(f)
    f = click.option(
        "--det-model", metavar="NAME", help="Detection model (default: the engine's own)."
    )(f)
    return click.option(
        "--engine",
        type=click.Choice(list(ENGINES)),
        default=DEFAULT_ENGINE,
        show_default=True,
        help="Whose models: onnx (PP-OCRv6, RapidOCR) or paddle (PaddleOCR).",
    )(f)


@models.command("list")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def models_list(engine: str, det_model: str | None, rec_model: str | None, as_json: bool) -> int:
    """Show each model's name, source (explicit/env/bundled/download) and path.

    ONNX models are never downloaded: a missing one is an error (exit code 6).
    """
    from rythmiq.ocr import resolve_model

    det = resolve_model(det_model or ENGINES[engine].det_model, engine=engine)
    rec = resolve_model(rec_model or ENGINES[engine].rec_model, engine=engine)
    if as_json:
        click.echo(json.dumps({"engine": engine, "det": asdict(det), "rec": asdict(rec)}))
        return int(ExitCode.OK)
    width = max(len(det.name), len(rec.name))
    for role, m in (("det", det), ("rec", rec)):
        # Only a PaddleOCR model resolves to no path; a missing ONNX model raised above.
        where = m.path if m.path is not None else "(PaddleOCR downloads it on first use)"
        click.echo(f"{role}  {m.name:<{width}}  {m.source:<8}  {where}")
    return int(ExitCode.OK)


@models.command("prefetch")
@click.option(
    "--dest",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to put the models in: DIR/<name>/ (paddle) or DIR/<name>.onnx (onnx).",
)
@_model_options
def models_prefetch(dest: Path, engine: str, det_model: str | None, rec_model: str | None) -> int:
    """Copy (or download) both models into DIR, for RYTHMIQ_MODEL_DIR=DIR.

    Local models (RYTHMIQ_MODEL_DIR, or the bundled weights) are copied; other PaddleOCR
    models are downloaded by PaddleOCR, which needs a reachable model hub (offline this fails
    with exit code 6). ONNX models are only copied, never downloaded: a missing one fails
    with exit code 6.
    """
    from rythmiq.ocr import prefetch_models

    placed = prefetch_models(
        dest, det_model=det_model or None, rec_model=rec_model or None, engine=engine
    )
    for role, m in zip(("det", "rec"), placed, strict=True):
        click.echo(f"{role}  {m.name}  ->  {m.path}")
    hint = f"use them with: RYTHMIQ_MODEL_DIR={dest} RYTHMIQ_BUNDLED_MODELS=0"
    if engine == "onnx":
        hint += " rythmiq process PAGE"
        for flag, given, m in (
            ("--det-model", det_model, placed[0]),
            ("--rec-model", rec_model, placed[1]),
        ):
            if given:
                hint += f" {flag} {m.name}"
    click.echo(hint)
    return int(ExitCode.OK)


@cli.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keyring file (default ~/.config/rythmiq/keyring.json).",
)
@click.option("--rotate", is_flag=True, help="Add a new primary key, keep the old ones.")
@click.option("--force", is_flag=True, help="Replace an existing keyring.")
def keygen(path: Path | None, rotate: bool, force: bool) -> int:
    """Create (or rotate) the keyring that encrypts masters."""
    from rythmiq.keyring import Keyring, default_keyring_path, load_keyring, save_keyring

    path = Path(path or default_keyring_path())
    if rotate:
        current = load_keyring(environ={"RYTHMIQ_KEYRING_FILE": str(path)}).keyring
        keyring = current.rotate()
        save_keyring(keyring, path, overwrite=True)
        click.echo(
            f"rotated {path}: new primary key {keyring.primary_id}; "
            f"keys: {', '.join(keyring.key_ids)}"
        )
        return int(ExitCode.OK)
    keyring = Keyring.generate()
    save_keyring(keyring, path, overwrite=force)
    click.echo(f"created {path} (mode 0600) with primary key {keyring.primary_id}")
    return int(ExitCode.OK)


@cli.command()
@click.option("--store", "store_url", required=True, metavar="URL", help="The store of the master.")
@click.option("--user-id", required=True)
@click.option("--document-id", required=True)
@click.option("--ext", help="The master's original extension (default: found by listing).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the image.",
)
def decrypt(store_url: str, user_id: str, document_id: str, ext: str | None, output: Path) -> int:
    """Decrypt a stored master."""
    from rythmiq.crypto import EncryptionContext
    from rythmiq.crypto import decrypt as decrypt_bytes
    from rythmiq.keyring import load_keyring
    from rythmiq.layout import Ids, artifact_key, master_ext_of, master_folder
    from rythmiq.storage import Store

    # The master is keyed by user and document; the job id only places outputs.
    ids = Ids(user_id, "decrypt", document_id)
    store = Store.open(store_url)
    if ext:
        key = artifact_key("master", ids, ext=ext)
    else:
        prefix = master_folder(ids)
        found = [k for k in store.list(prefix) if master_ext_of(k) is not None]
        if len(found) != 1:
            raise StorageError(
                f"expected one master under {store.url_for(prefix)}, found {len(found)}; "
                "pass --ext",
                code="storage.not_found",
            )
        key = artifact_key("master", ids, ext=master_ext_of(found[0]))
    keyring = load_keyring().keyring
    plain = decrypt_bytes(
        store.read(key), keyring, EncryptionContext(ids.user_id, ids.document_id, key)
    )
    # The same temp-file, fsync and rename as any local artifact write.
    Store.open(str(output.resolve().parent)).write(output.name, plain)
    click.echo(f"decrypted {store.url_for(key)} -> {output} ({len(plain)} bytes)")
    return int(ExitCode.OK)


# --------------------------------------------------------------------------- entry point


def _error(code: str, message: str) -> None:
    click.echo(f"rythmiq: error [{code}] {_one_line(redact(message))}", err=True)


@cli.command(epilog="Exit codes: 0 ok, 2 usage, 9 bundle (the build failed). See docs/camber.md.")
@click.option(
    "--out",
    "out_dir",
    default="dist",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the archive and rythmiq-launch.py.",
)
@click.option(
    "--engine",
    "engines",
    multiple=True,
    type=click.Choice(list(ENGINES)),
    help=f"Engine(s) the bundle runs; repeat for several (default: {DEFAULT_ENGINE}).",
)
@click.option("--extra", "extras", multiple=True, metavar="NAME", help="More package extras.")
@click.option(
    "--python", "python", default=DEFAULT_BUNDLE_PYTHON, show_default=True, help="Target Python."
)
@click.option(
    "--platform",
    default=DEFAULT_BUNDLE_PLATFORM,
    show_default=True,
    help="Target platform tag (manylinux_2_35 is Ubuntu 22.04's glibc).",
)
@click.option(
    "--compression",
    type=click.Choice(BUNDLE_COMPRESSIONS),
    default="auto",
    show_default=True,
    help="auto: zstd when the zstd program is installed, else gzip.",
)
@click.option(
    "--installer",
    type=click.Choice(BUNDLE_INSTALLERS),
    default="auto",
    show_default=True,
    help="auto: uv when it is installed, else pip --target.",
)
@click.option(
    "--wheel",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Bundle this rythmiq wheel instead of the running rythmiq.",
)
@click.option(
    "--constraints",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A pip constraints file pinning the dependencies.",
)
@click.option("--no-bytecode", is_flag=True, help="Do not compile .pyc files ahead of time.")
@click.option("--no-prune", is_flag=True, help="Keep the files a CPU job never loads.")
@click.option("--no-font", is_flag=True, help="Do not copy this machine's DejaVu Sans in.")
@click.option(
    "--stash",
    default="stash://<user>/<dir>/",
    show_default=True,
    help="Stash folder for the printed upload and job lines.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def bundle(
    out_dir: Path,
    engines: tuple[str, ...],
    extras: tuple[str, ...],
    python: str,
    platform: str,
    compression: str,
    installer: str,
    wheel: Path | None,
    constraints: Path | None,
    no_bytecode: bool,
    no_prune: bool,
    no_font: bool,
    stash: str,
    as_json: bool,
) -> int:
    """Build a runtime bundle for batch jobs: no pip install in the job.

    Writes rythmiq-bundle-<version>-<python>-<platform>-<engines>.tar.zst (rythmiq, the
    engines' dependencies and models, bytecode compiled, a manifest with every file's
    SHA-256) and rythmiq-launch.py into --out, then prints the upload steps and the
    camber job create line. Needs the package index (or a pip/uv configuration that points
    at a mirror or a wheel folder).
    """
    from rythmiq.bundle import build_bundle

    built = build_bundle(
        out_dir,
        engines=engines or (DEFAULT_ENGINE,),
        extras=extras,
        python=python,
        platform=platform,
        compression=compression,  # type: ignore[arg-type]
        installer=installer,  # type: ignore[arg-type]
        wheel=wheel,
        constraints=constraints,
        bytecode=not no_bytecode,
        prune=not no_prune,
        font=not no_font,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(built.path),
                    "launcher": str(built.launcher),
                    "manifest_sha256": built.manifest_sha256,
                    "size": built.size,
                    "unpacked_size": built.unpacked_size,
                    "files": built.files,
                    "seconds": dict(built.seconds),
                    "job_command": built.job_command(),
                }
            )
        )
        return int(ExitCode.OK)
    click.echo(
        f"built {built.path} ({format_bytes(built.size)}, {built.files} files, "
        f"{format_bytes(built.unpacked_size)} unpacked)"
    )
    click.echo(f"manifest sha256 {built.manifest_sha256}")
    click.echo(f"launcher {built.launcher}")
    click.echo("")
    click.echo(f"# upload once (from {built.path.parent}), then start jobs:")
    click.echo(built.camber_commands(stash))
    return int(ExitCode.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rythmiq`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # standalone_mode=False: click returns the command's value (our exit code) and
        # raises its errors here instead of printing them and exiting.
        rv = cli.main(args=args, prog_name="rythmiq", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        _error("options.invalid", exc.format_message() + hint)
        return int(ExitCode.USAGE)
    except RythmiqError as exc:
        log.debug("error details", exc_info=True)
        _error(exc.code, exc.message)
        return int(exc.exit_code)
    except (KeyboardInterrupt, click.Abort):
        return 130
    except click.ClickException as exc:
        _error("internal", exc.format_message())
        return exc.exit_code
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        _error("internal", f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return int(ExitCode.INTERNAL)
    return rv if isinstance(rv, int) else int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
