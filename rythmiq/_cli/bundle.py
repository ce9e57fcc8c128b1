"""The ``rythmiq bundle`` command: a runtime bundle for batch jobs.

Its work is in :mod:`rythmiq._cli.bundle_run`, loaded when the command runs; it gets the
options as click gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from rythmiq._cli.common import ENGINE_CHOICE
from rythmiq._cli.lazy import run_bundle
from rythmiq._registry import (
    BUNDLE_COMPRESSIONS,
    BUNDLE_INSTALLERS,
    DEFAULT_BUNDLE_PLATFORM,
    DEFAULT_BUNDLE_PYTHON,
    DEFAULT_ENGINE,
)

__all__ = ["bundle"]


def _auto_choice(name: str, choices: tuple[str, ...], help: str) -> Callable[..., Any]:
    """An option choosing one of ``choices``, ``auto`` by default."""
    return click.option(
        name, type=click.Choice(choices), default="auto", show_default=True, help=help
    )


def _existing_file(name: str, help: str) -> Callable[..., Any]:
    return click.option(
        name, type=click.Path(dir_okay=False, exists=True, path_type=Path), help=help
    )


@click.command(epilog="Exit codes: 0 ok, 2 usage, 9 bundle (the build failed). See docs/camber.md.")
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
    type=ENGINE_CHOICE,
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
@_auto_choice(
    "--compression",
    BUNDLE_COMPRESSIONS,
    "auto: zstd when the zstd program is installed, else gzip.",
)
@_auto_choice("--installer", BUNDLE_INSTALLERS, "auto: uv when it is installed, else pip --target.")
@_existing_file("--wheel", "Bundle this rythmiq wheel instead of the running rythmiq.")
@_existing_file("--constraints", "A pip constraints file pinning the dependencies.")
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
def bundle(**options: Any) -> int:
    """Build a runtime bundle for batch jobs: no pip install in the job.

    Writes rythmiq-bundle-<version>-<python>-<platform>-<engines>.tar.zst (rythmiq, the
    engines' dependencies and models, bytecode compiled, a manifest with every file's
    SHA-256) and rythmiq-launch.py into --out, then prints the upload steps and the
    camber job create line. Needs the package index (or a pip/uv configuration that points
    at a mirror or a wheel folder).
    """
    return run_bundle(**options)
