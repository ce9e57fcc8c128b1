"""The ``rythmiq`` command line: the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rythmiq._errors import ExitCode, OptionsError, RythmiqError, StorageError
from rythmiq.storage import redact

if TYPE_CHECKING:
    from rythmiq._process import ProcessOptions, ProcessResult
    from rythmiq.keyring import Keyring

log = logging.getLogger("rythmiq.cli")


def _box(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return (w, h)


def _parser() -> argparse.ArgumentParser:
    from rythmiq import __version__

    parser = argparse.ArgumentParser(
        prog="rythmiq",
        description="Document image quality scoring, normalization and OCR.",
        epilog="Exit codes: 0 ok, 1 internal, 2 usage, 3 partial (some inputs failed), "
        "5 input, 6 model, 7 storage, 8 crypto. See docs/errors.md.",
    )
    parser.add_argument("--version", action="version", version=f"rythmiq {__version__}")
    parser.add_argument("--debug", action="store_true", help="log details and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="score, normalize and OCR document images")
    p.add_argument("paths", nargs="+", type=Path, help="image files")
    p.add_argument("--json", action="store_true", help="print one JSON result per line")
    p.add_argument(
        "--out",
        metavar="URL",
        help="store artifacts here (a folder, file://, s3://bucket/prefix, memory://...)",
    )
    p.add_argument("--user-id", default="local", help="owner id for --out (default: local)")
    p.add_argument("--job-id", help="job id for --out (default: generated per input)")
    p.add_argument("--document-id", help="document id for --out (default: from the file name)")
    p.add_argument("--threshold", type=float, help="quality gate (default 0.80)")
    p.add_argument("--skip-ocr-on-fail", action="store_true", help="no OCR for failing images")
    p.add_argument("--no-ocr", action="store_true", help="quality and normalization only")
    p.add_argument("--box", type=_box, help="fit into WIDTHxHEIGHT (default 2480x3508)")
    p.add_argument("--target-dpi", type=float, help="resample to this DPI")
    p.add_argument("--max-bytes", type=int, help="byte budget of the normalized JPEG")
    p.add_argument("--threads", type=int, help="OCR threads (default: usable cores)")
    p.add_argument("--det-model", help="detection model name (default PP-OCRv5_mobile_det)")
    p.add_argument("--rec-model", help="recognition model name (default PP-OCRv5_mobile_rec)")

    k = sub.add_parser("keygen", help="create (or rotate) the keyring that encrypts masters")
    k.add_argument(
        "--file", type=Path, help="keyring file (default ~/.config/rythmiq/keyring.json)"
    )
    k.add_argument("--rotate", action="store_true", help="add a new primary key, keep the old")
    k.add_argument("--force", action="store_true", help="replace an existing keyring")

    d = sub.add_parser("decrypt", help="decrypt a stored master")
    d.add_argument("--store", required=True, metavar="URL", help="the store the master is in")
    d.add_argument("--user-id", required=True)
    d.add_argument("--document-id", required=True)
    d.add_argument("--ext", help="the master's original extension (default: found by listing)")
    d.add_argument("-o", "--output", required=True, type=Path, help="where to write the image")
    return parser


def _options(args: argparse.Namespace) -> ProcessOptions:
    from rythmiq._process import ProcessOptions

    given = {
        "threshold": args.threshold,
        "box": args.box,
        "target_dpi": args.target_dpi,
        "max_bytes": args.max_bytes,
        "threads": args.threads,
        "det_model": args.det_model,
        "rec_model": args.rec_model,
    }
    kwargs: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.no_ocr:
        kwargs["ocr"] = False
    if args.skip_ocr_on_fail:
        kwargs["on_quality_fail"] = "skip_ocr"
    return ProcessOptions(**kwargs)  # type: ignore[arg-type]


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _document_id(path: Path) -> str:
    """A document id from a file name, or from its content hash when the name is not safe."""
    from rythmiq.layout import validate_id

    try:
        return validate_id(path.stem)
    except RythmiqError:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return f"doc-{digest}"


def _keyring_for_cli() -> Keyring:
    from rythmiq.keyring import load_keyring

    loaded = load_keyring(create=True)
    if loaded.created:
        print(
            f"rythmiq: created a new keyring at {loaded.path} (mode 0600). Back it up: "
            "without it the stored masters cannot be decrypted.",
            file=sys.stderr,
        )
    return loaded.keyring


def _summary(path: Path, r: ProcessResult) -> str:
    q, im = r.quality, r.image
    verdict = "PASS" if q.passed else "FAIL"
    reasons = f" ({', '.join(q.reasons)})" if q.reasons else ""
    lines = [
        f"{path}",
        f"  quality  {q.score:.2f} {verdict}{reasons}  threshold {q.threshold:.2f}  "
        f"sharpness {q.sharpness:.2f}  exposure {q.exposure:.2f}",
        f"  image    {im.width}x{im.height} at {im.dpi:g} dpi ({im.dpi_source}), "
        f"JPEG q{im.jpeg_quality}, {len(im.data) / 1024:.0f} KiB",
    ]
    t = r.timings
    if r.ocr is None:
        lines.append(f"  ocr      skipped ({r.ocr_skipped_reason})")
    else:
        lines.append(
            f"  ocr      {len(r.ocr.lines)} lines, mean confidence {r.ocr.confidence:.2f}, "
            f"{t.ocr.wall_s:.2f} s"
        )
    lines.append(f"  time     {t.total.wall_s:.2f} s wall, {t.total.cpu_s:.2f} s CPU")
    if r.ocr is not None and r.ocr.text:
        lines.append("  text:")
        lines.extend(f"    {line}" for line in r.ocr.text.splitlines())
    return "\n".join(lines)


def _cmd_process(args: argparse.Namespace) -> int:
    from rythmiq._process import process

    options = _options(args)
    store = ids_for = keyring = None
    if args.out is not None:
        from rythmiq.layout import Ids
        from rythmiq.storage import Store

        if len(args.paths) > 1 and (args.job_id or args.document_id):
            raise OptionsError("--job-id and --document-id need a single input")
        store = Store.open(args.out)
        keyring = _keyring_for_cli()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

        def ids_for(path: Path) -> Ids:
            job = args.job_id or f"job-{stamp}-{uuid.uuid4().hex[:8]}"
            return Ids(args.user_id, job, args.document_id or _document_id(path))

    elif args.job_id or args.document_id or args.user_id != "local":
        raise OptionsError("--user-id, --job-id and --document-id need --out")
    failures = 0
    for path in args.paths:
        try:
            extra = {}
            if store is not None and ids_for is not None:
                extra = {"store": store, "ids": ids_for(path), "keyring": keyring}
            result = process(path, options=options, **extra)  # type: ignore[arg-type]
        except RythmiqError as exc:
            if exc.code.startswith(("model.", "options.")) or len(args.paths) == 1:
                raise
            failures += 1
            log.error("%s: %s", path, exc)
            if args.json:
                print(json.dumps({"source": str(path), "error": exc.to_dict()}), flush=True)
            continue
        if args.json:
            print(json.dumps({"source": str(path), **result.to_dict()}), flush=True)
        else:
            print(_summary(path, result), flush=True)
    return int(ExitCode.PARTIAL if failures else ExitCode.OK)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from rythmiq.keyring import Keyring, default_keyring_path, load_keyring, save_keyring

    path = args.file or default_keyring_path()
    if args.rotate:
        current = load_keyring(environ={"RYTHMIQ_KEYRING_FILE": str(path)}).keyring
        keyring = current.rotate()
        save_keyring(keyring, path, overwrite=True)
        print(
            f"rotated {path}: new primary key {keyring.primary_id}; "
            f"keys: {', '.join(keyring.key_ids)}"
        )
        return int(ExitCode.OK)
    keyring = Keyring.generate()
    save_keyring(keyring, path, overwrite=args.force)
    print(f"created {path} (mode 0600) with primary key {keyring.primary_id}")
    return int(ExitCode.OK)


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from rythmiq.crypto import EncryptionContext, decrypt
    from rythmiq.keyring import load_keyring
    from rythmiq.layout import Ids, artifact_key
    from rythmiq.storage import Store

    # The master is keyed by user and document; the job id only places outputs.
    ids = Ids(args.user_id, "decrypt", args.document_id)
    store = Store.open(args.store)
    if args.ext:
        key = artifact_key("master", ids, ext=args.ext)
    else:
        prefix = f"master/{ids.user_id}/{ids.document_id}/"
        found = [k for k in store.list(prefix) if k.endswith(".enc")]
        if len(found) != 1:
            raise StorageError(
                f"expected one master under {store.url_for(prefix)}, found {len(found)}; "
                "pass --ext",
                code="storage.not_found",
            )
        ext = found[0].rsplit("/", 1)[1].split(".")[1]
        key = artifact_key("master", ids, ext=ext)
    keyring = load_keyring().keyring
    plain = decrypt(store.read(key), keyring, EncryptionContext(ids.user_id, ids.document_id, key))
    _write_atomic(args.output, plain)
    print(f"decrypted {store.url_for(key)} -> {args.output} ({len(plain)} bytes)")
    return int(ExitCode.OK)


class _RedactingFormatter(logging.Formatter):
    """Blanks secret values (see ``rythmiq.storage.SECRET_ENV_VARS``) in every log line,
    tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("rythmiq: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Only rythmiq's own loggers go to DEBUG: botocore's debug output carries request
    # signatures and credential ids.
    root.setLevel(logging.WARNING)
    logging.getLogger("rythmiq").setLevel(logging.DEBUG if debug else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rythmiq`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    _setup_logging(args.debug)
    try:
        commands = {"process": _cmd_process, "keygen": _cmd_keygen, "decrypt": _cmd_decrypt}
        return commands[args.command](args)
    except RythmiqError as exc:
        log.debug("error details", exc_info=True)
        print(f"rythmiq: error {redact(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"rythmiq: internal error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return int(ExitCode.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
