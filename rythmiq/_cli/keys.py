"""The key commands: ``rythmiq keygen`` and ``rythmiq decrypt``.

Their work is in :mod:`rythmiq._cli.keys_run`, loaded when a command runs; it gets the
options as click gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rythmiq._cli.lazy import run_decrypt, run_keygen

__all__ = ["decrypt", "keygen"]


@click.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keyring file (default ~/.config/rythmiq/keyring.json).",
)
@click.option("--rotate", is_flag=True, help="Add a new primary key, keep the old ones.")
@click.option("--force", is_flag=True, help="Replace an existing keyring.")
def keygen(**options: Any) -> int:
    """Create (or rotate) the keyring that encrypts masters."""
    return run_keygen(**options)


@click.command()
@click.option(
    "--store", "store_url", required=True, metavar="URL", help="The store of the artifact."
)
@click.option("--user-id", required=True)
@click.option("--document-id", required=True)
@click.option(
    "--key",
    metavar="KEY",
    help="An encrypted artifact's key in the store, e.g. output/USER/JOB/text.txt.enc "
    "(stored with --encrypt all). Default: the document's master.",
)
@click.option("--ext", help="The master's original extension (default: found by listing).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the plaintext: a new or regular file, written with mode 0600. A "
    "symbolic link or any other kind of file there is refused.",
)
def decrypt(**options: Any) -> int:
    """Decrypt a stored master, or any encrypted artifact with --key."""
    return run_decrypt(**options)
