"""The ``rythmiq process`` command: its arguments, option groups and help.

The work is :func:`rythmiq._cli.process_run.run_process`, loaded when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from rythmiq._cli.common import EXIT_CODES
from rythmiq._cli.grouping import GroupedCommand
from rythmiq._cli.lazy import Deferred
from rythmiq._cli.process_options import (
    INPUT,
    NORMALIZE,
    OCR,
    OUTPUT,
    QUALITY,
    STORE,
    WORKERS,
    InputOptions,
    NormalizeOptions,
    OcrOptions,
    OutputOptions,
    QualityOptions,
    StoreOptions,
    WorkerOptions,
)

if TYPE_CHECKING:
    from rythmiq._cli.process_run import run_process
else:
    run_process = Deferred("rythmiq._cli.process_run:run_process")

__all__ = ["process"]


@click.command(cls=GroupedCommand, epilog=EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, metavar="PATH|DIR|GLOB|URL...")
@INPUT
@QUALITY
@NORMALIZE
@OCR
@STORE
@OUTPUT
@WORKERS
def process(
    paths: tuple[str, ...],
    inputs: InputOptions,
    quality: QualityOptions,
    normalize: NormalizeOptions,
    ocr: OcrOptions,
    store: StoreOptions,
    output: OutputOptions,
    workers: WorkerOptions,
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
    return run_process(
        paths,
        inputs=inputs,
        quality=quality,
        normalize=normalize,
        ocr=ocr,
        store=store,
        output=output,
        workers=workers,
    )
