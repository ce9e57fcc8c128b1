"""The work of ``rythmiq bundle``: the bundle built, then its upload and job lines printed."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rythmiq._errors import ExitCode
from rythmiq._registry import DEFAULT_ENGINE
from rythmiq._util import format_bytes
from rythmiq.bundle import build_bundle

__all__ = ["run_bundle"]


def run_bundle(
    *,
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
    """Build the bundle into ``out_dir``; print it as JSON, or with the steps to upload it."""
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
