"""The key commands: ``rythmiq keygen`` and ``rythmiq decrypt``.

Their work is in :mod:`rythmiq._cli.keys_run`, loaded when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from rythmiq._cli.lazy import Deferred

if TYPE_CHECKING:
    from rythmiq._cli.keys_run import run_decrypt, run_keygen
else:
    run_decrypt = Deferred("rythmiq._cli.keys_run:run_decrypt")
    run_keygen = Deferred("rythmiq._cli.keys_run:run_keygen")

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
def keygen(path: Path | None, rotate: bool, force: bool) -> int:
    """Create (or rotate) the keyring that encrypts masters."""
    return run_keygen(path, rotate=rotate, force=force)


@click.command()
@click.option("--store", "store_url", required=True, metavar="URL", help="The store of the master.")
@click.option("--user-id", required=True)
@click.option("--document-id", required=True)
@click.option("--ext", help="The master's original extension (default: found by listing).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the image.",
)
def decrypt(store_url: str, user_id: str, document_id: str, ext: str | None, output: Path) -> int:
    """Decrypt a stored master."""
    return run_decrypt(store_url, user_id=user_id, document_id=document_id, ext=ext, output=output)
