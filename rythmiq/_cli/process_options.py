"""The options of ``rythmiq process``, in groups: one frozen dataclass and one heading each.

Each group's ``settings()`` gives the :class:`~rythmiq.ProcessOptions` fields its options set
(only those given, so that the library's defaults stay the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from rythmiq._cli.common import ENGINE_CHOICE
from rythmiq._cli.grouping import OptionGroup, option
from rythmiq._errors import OptionsError
from rythmiq._registry import ENGINES, RUNTIMES
from rythmiq.layout import ENCRYPT_POLICIES

__all__ = [
    "INPUT",
    "NORMALIZE",
    "OCR",
    "OUTPUT",
    "QUALITY",
    "STORE",
    "WORKERS",
    "InputOptions",
    "NormalizeOptions",
    "OcrOptions",
    "OutputOptions",
    "QualityOptions",
    "StoreOptions",
    "WorkerOptions",
]


def _given(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _box(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {value!r}") from None
    return (w, h)


@dataclass(frozen=True)
class InputOptions:
    """How documents are read: ``--pdf-dpi``, ``--max-pages``."""

    pdf_dpi: float | None
    max_pages: int | None

    def settings(self) -> dict[str, Any]:
        """The ProcessOptions fields given."""
        return _given(pdf_dpi=self.pdf_dpi, max_pages=self.max_pages)


@dataclass(frozen=True)
class QualityOptions:
    """The quality gate: ``--threshold``, ``--skip-ocr-on-fail``."""

    threshold: float | None
    skip_ocr_on_fail: bool

    def settings(self) -> dict[str, Any]:
        """The ProcessOptions fields given."""
        on_fail = "skip_ocr" if self.skip_ocr_on_fail else None
        return _given(threshold=self.threshold, on_quality_fail=on_fail)


@dataclass(frozen=True)
class NormalizeOptions:
    """The normalized image: ``--box``, ``--target-dpi``, ``--max-bytes``,
    ``--max-output-pixels``, rotate and deskew."""

    box: tuple[int, int] | None
    target_dpi: float | None
    max_bytes: int | None
    max_output_pixels: int | None
    rotate: bool
    deskew: bool

    def settings(self) -> dict[str, Any]:
        """The ProcessOptions fields given (rotate and deskew always are)."""
        return _given(
            box=self.box,
            target_dpi=self.target_dpi,
            max_bytes=self.max_bytes,
            max_output_pixels=self.max_output_pixels,
            rotate=self.rotate,
            deskew=self.deskew,
        )


@dataclass(frozen=True)
class OcrOptions:
    """The OCR engine: ``--no-ocr``, ``--threads``, ``--engine``, ``--runtime``, the models."""

    no_ocr: bool
    threads: int | None
    engine: str | None
    runtime: str | None
    det_model: str | None
    rec_model: str | None

    def settings(self) -> dict[str, Any]:
        """The ProcessOptions fields given."""
        return _given(
            threads=self.threads,
            engine=self.engine,
            runtime=self.runtime,
            det_model=self.det_model,
            rec_model=self.rec_model,
            ocr=False if self.no_ocr else None,
        )


@dataclass(frozen=True)
class StoreOptions:
    """Where artifacts go: ``--out``, the ids, and the document outputs stored there."""

    out: str | None
    user_id: str
    job_id: str | None
    document_id: str | None
    want_pdf: bool
    want_hocr: bool
    want_txt: bool
    encrypt: str | None = None

    def settings(self) -> dict[str, Any]:
        """The ProcessOptions fields given: the outputs named and the encryption policy,
        which need ``--out``."""
        wanted = {"txt": self.want_txt, "hocr": self.want_hocr, "pdf": self.want_pdf}
        named = [name for name, on in wanted.items() if on]
        given: dict[str, Any] = {}
        if named:
            if self.out is None:
                raise OptionsError("--pdf, --hocr and --txt write files: give --out DIR|URL")
            given["outputs"] = tuple(named)
        if self.encrypt is not None:
            if self.out is None:
                raise OptionsError("--encrypt says how files are stored: give --out DIR|URL")
            given["encrypt"] = self.encrypt
        return given

    def check(self, inputs: int) -> None:
        """Refuse ids that cannot apply to ``inputs`` inputs, or that need ``--out``."""
        if self.out is not None:
            if inputs > 1 and (self.job_id or self.document_id):
                raise OptionsError("--job-id and --document-id need a single input")
        elif self.job_id or self.document_id or self.user_id != "local":
            raise OptionsError("--user-id, --job-id and --document-id need --out")


@dataclass(frozen=True)
class OutputOptions:
    """What is printed: ``--json`` on stdout, the progress bar on stderr."""

    as_json: bool
    progress: bool | None


@dataclass(frozen=True)
class WorkerOptions:
    """Worker processes: ``--workers``, ``--max-docs-per-worker``, ``--timeout``."""

    workers: int
    max_docs_per_worker: int | None
    timeout: float | None

    def check(self) -> None:
        """Refuse the per-worker options without worker processes."""
        if (self.max_docs_per_worker is not None or self.timeout is not None) and self.workers == 1:
            raise OptionsError("--max-docs-per-worker and --timeout need --workers 2 or more")


_ENGINE_HELP = (
    "OCR engine: "
    + "; ".join(f"{n} ({e.summary})" for n, e in ENGINES.items())
    + "".join(f". {n} needs rythmiq[{e.extra}]" for n, e in ENGINES.items() if e.extra)
    + "."
)

INPUT = OptionGroup(
    "Input",
    "inputs",
    InputOptions,
    (
        option("--pdf-dpi", type=float, help="DPI PDF pages are rendered at (default 300)."),
        option("--max-pages", type=click.IntRange(min=1), help="Page limit (default 200)."),
    ),
)
QUALITY = OptionGroup(
    "Quality",
    "quality",
    QualityOptions,
    (
        option("--threshold", type=float, help="Quality gate (default 0.80)."),
        option("--skip-ocr-on-fail", is_flag=True, help="No OCR for failing images."),
    ),
)
NORMALIZE = OptionGroup(
    "Normalization",
    "normalize",
    NormalizeOptions,
    (
        option(
            "--box", callback=_box, metavar="WxH", help="Fit into WIDTHxHEIGHT (default 2480x3508)."
        ),
        option("--target-dpi", type=float, help="Resample to this DPI."),
        option("--max-bytes", type=int, help="Byte budget of the normalized JPEG."),
        option(
            "--max-output-pixels",
            type=click.IntRange(min=1),
            metavar="N",
            help="Most pixels a normalized image may have (default 100000000).",
        ),
        option(
            "--rotate/--no-rotate",
            default=True,
            show_default=True,
            help="Detect pages turned 90/180/270 degrees and turn them upright.",
        ),
        option(
            "--deskew/--no-deskew", default=True, show_default=True, help="Straighten small skew."
        ),
    ),
)
OCR = OptionGroup(
    "OCR",
    "ocr",
    OcrOptions,
    (
        option("--no-ocr", is_flag=True, help="Quality and normalization only."),
        option("--threads", type=int, help="OCR threads (default: usable cores)."),
        option("--engine", type=ENGINE_CHOICE, help=_ENGINE_HELP),
        option(
            "--runtime",
            type=click.Choice(list(RUNTIMES)),
            help="What runs the onnx engine: auto (default: OpenVINO if installed, else ONNX "
            "Runtime), openvino or onnxruntime.",
        ),
        option("--det-model", metavar="NAME", help="Detection model (default: the engine's)."),
        option("--rec-model", metavar="NAME", help="Recognition model (default: the engine's)."),
    ),
)
STORE = OptionGroup(
    "Storage",
    "store",
    StoreOptions,
    (
        option(
            "--out",
            metavar="URL",
            help="Store artifacts here (a folder, file://, s3://bucket/prefix, memory://...).",
        ),
        option("--user-id", default="local", show_default=True, help="Owner id for --out."),
        option("--job-id", help="Job id for --out (default: generated per input)."),
        option("--document-id", help="Document id for --out (default: from the file name)."),
        option("--pdf", "want_pdf", is_flag=True, help="With --out: store a searchable PDF."),
        option("--hocr", "want_hocr", is_flag=True, help="With --out: store hOCR (text.hocr)."),
        option(
            "--txt",
            "want_txt",
            is_flag=True,
            help="With --out: store the plain text (text.txt). The default when no output is "
            "named.",
        ),
        option(
            "--encrypt",
            type=click.Choice(list(ENCRYPT_POLICIES)),
            help="With --out: what is stored encrypted. master (default): the original only; "
            "all: also the normalized images, text, hOCR and PDF (as NAME.enc; result.json "
            "then holds no OCR text); all+preview: the preview too.",
        ),
    ),
)
OUTPUT = OptionGroup(
    "Output",
    "output",
    OutputOptions,
    (
        option("--json", "as_json", is_flag=True, help="Print one JSON result per line."),
        option(
            "--progress/--no-progress",
            default=None,
            help="Show the progress bar on stderr (default: only when stderr is a terminal).",
        ),
    ),
)
WORKERS = OptionGroup(
    "Workers",
    "workers",
    WorkerOptions,
    (
        option(
            "--workers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Worker processes, each with its own OCR engine; at most the usable cores.",
        ),
        option(
            "--max-docs-per-worker",
            type=click.IntRange(min=1),
            help="Replace a worker process after this many documents (default 200).",
        ),
        option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            help="With --workers: seconds one document may take before its worker is killed.",
        ),
    ),
)
