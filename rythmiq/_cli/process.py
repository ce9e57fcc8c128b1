"""The ``rythmiq process`` command: its arguments, option groups and help.

The work is :func:`rythmiq._cli.process_run.run_process`, loaded when the command runs; it
gets the paths and one dataclass per option group.
"""

from __future__ import annotations

from typing import Any

import click

from rythmiq._cli.common import EXIT_CODES, complete_files
from rythmiq._cli.grouping import GroupedCommand
from rythmiq._cli.lazy import run_process
from rythmiq._cli.process_options import INPUT, NORMALIZE, OCR, OUTPUT, QUALITY, STORE, WORKERS

__all__ = ["process"]


@click.command(cls=GroupedCommand, epilog=EXIT_CODES)
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    metavar="PATH|DIR|GLOB|URL...",
    shell_complete=complete_files,
)
@INPUT
@QUALITY
@NORMALIZE
@OCR
@STORE
@OUTPUT
@WORKERS
def process(paths: tuple[str, ...], **groups: Any) -> int:
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
    return run_process(paths, **groups)
