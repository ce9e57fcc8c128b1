"""The work of ``rythmiq models list`` and ``rythmiq models prefetch`` (loads the OCR module)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from rythmiq._errors import ExitCode
from rythmiq._registry import ENGINES
from rythmiq.ocr import prefetch_models, resolve_model

__all__ = ["run_models_list", "run_models_prefetch"]


def run_models_list(
    *, engine: str, det_model: str | None, rec_model: str | None, as_json: bool
) -> int:
    """Print where each of the engine's two models comes from."""
    spec = ENGINES[engine]  # a click.Choice of the registry's names
    det = resolve_model(det_model or spec.det_model, engine=spec.name)
    rec = resolve_model(rec_model or spec.rec_model, engine=spec.name)
    if as_json:
        click.echo(json.dumps({"engine": engine, "det": asdict(det), "rec": asdict(rec)}))
        return int(ExitCode.OK)
    width = max(len(det.name), len(rec.name))
    for role, m in (("det", det), ("rec", rec)):
        # Only a PaddleOCR model resolves to no path; a missing ONNX model raised above.
        where = m.path if m.path is not None else "(PaddleOCR downloads it on first use)"
        click.echo(f"{role}  {m.name:<{width}}  {m.source:<8}  {where}")
    return int(ExitCode.OK)


def run_models_prefetch(
    *, dest: Path, engine: str, det_model: str | None, rec_model: str | None
) -> int:
    """Put both models into ``dest``; print where they went and how to use them."""
    placed = prefetch_models(
        dest,
        det_model=det_model or None,
        rec_model=rec_model or None,
        engine=ENGINES[engine].name,  # a click.Choice of the registry's names
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
