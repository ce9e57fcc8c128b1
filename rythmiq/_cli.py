"""The ``rythmiq`` command line: the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rythmiq._errors import ExitCode, RythmiqError

if TYPE_CHECKING:
    from rythmiq._process import ProcessOptions, ProcessResult

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
        "5 input, 6 model. See docs/errors.md.",
    )
    parser.add_argument("--version", action="version", version=f"rythmiq {__version__}")
    parser.add_argument("--debug", action="store_true", help="log details and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("process", help="score, normalize and OCR document images")
    p.add_argument("paths", nargs="+", type=Path, help="image files")
    p.add_argument("--json", action="store_true", help="print one JSON result per line")
    p.add_argument("--out", type=Path, help="also write <name>.jpg, .preview.jpg, .json here")
    p.add_argument("--threshold", type=float, help="quality gate (default 0.80)")
    p.add_argument("--skip-ocr-on-fail", action="store_true", help="no OCR for failing images")
    p.add_argument("--no-ocr", action="store_true", help="quality and normalization only")
    p.add_argument("--box", type=_box, help="fit into WIDTHxHEIGHT (default 2480x3508)")
    p.add_argument("--target-dpi", type=float, help="resample to this DPI")
    p.add_argument("--max-bytes", type=int, help="byte budget of the normalized JPEG")
    p.add_argument("--threads", type=int, help="OCR threads (default: usable cores)")
    p.add_argument("--det-model", help="detection model name (default PP-OCRv5_mobile_det)")
    p.add_argument("--rec-model", help="recognition model name (default PP-OCRv5_mobile_rec)")
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


def _save(out: Path, src: Path, result: ProcessResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / f"{src.stem}.jpg", result.image.data)
    _write_atomic(out / f"{src.stem}.preview.jpg", result.preview.data)
    # The JSON goes last: its presence means the other two are complete.
    _write_atomic(out / f"{src.stem}.json", result.to_json(indent=2).encode())


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
    failures = 0
    for path in args.paths:
        try:
            result = process(path, options=options)
        except RythmiqError as exc:
            if exc.code.startswith(("model.", "options.")) or len(args.paths) == 1:
                raise
            failures += 1
            log.error("%s: %s", path, exc)
            if args.json:
                print(json.dumps({"source": str(path), "error": exc.to_dict()}), flush=True)
            continue
        if args.out is not None:
            _save(args.out, path, result)
        if args.json:
            print(json.dumps({"source": str(path), **result.to_dict()}), flush=True)
        else:
            print(_summary(path, result), flush=True)
    return int(ExitCode.PARTIAL if failures else ExitCode.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rythmiq`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="rythmiq: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "process":
            return _cmd_process(args)
        raise AssertionError(args.command)  # argparse only accepts known commands
    except RythmiqError as exc:
        log.debug("error details", exc_info=True)
        print(f"rythmiq: error {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        print(f"rythmiq: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return int(ExitCode.INTERNAL)


if __name__ == "__main__":
    sys.exit(main())
