"""The ``rythmiq models`` commands: where the OCR models come from, and copying them.

Their work is in :mod:`rythmiq._cli.models_run`, loaded when a command runs; it gets the
options as click gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rythmiq._cli.common import ENGINE_CHOICE
from rythmiq._cli.lazy import run_models_list, run_models_prefetch
from rythmiq._registry import DEFAULT_ENGINE

__all__ = ["models"]


@click.group(no_args_is_help=False)
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
        type=ENGINE_CHOICE,
        default=DEFAULT_ENGINE,
        show_default=True,
        help="Whose models: onnx (PP-OCRv6, RapidOCR) or paddle (PaddleOCR).",
    )(f)


@models.command("list")
@_model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def models_list(**options: Any) -> int:
    """Show each model's name, source (explicit/env/bundled/download) and path.

    ONNX models are never downloaded: a missing one is an error (exit code 6).
    """
    return run_models_list(**options)


@models.command("prefetch")
@click.option(
    "--dest",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to put the models in: DIR/<name>/ (paddle) or DIR/<name>.onnx (onnx).",
)
@_model_options
def models_prefetch(**options: Any) -> int:
    """Copy (or download) both models into DIR, for RYTHMIQ_MODEL_DIR=DIR.

    Local models (RYTHMIQ_MODEL_DIR, or the bundled weights) are copied; other PaddleOCR
    models are downloaded by PaddleOCR, which needs a reachable model hub (offline this fails
    with exit code 6). ONNX models are only copied, never downloaded: a missing one fails
    with exit code 6.
    """
    return run_models_prefetch(**options)
