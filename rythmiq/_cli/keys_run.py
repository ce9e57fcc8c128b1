"""The work of ``rythmiq keygen`` and ``rythmiq decrypt``: the keyring and the masters."""

from __future__ import annotations

from pathlib import Path

import click

from rythmiq._errors import ExitCode, StorageError
from rythmiq.crypto import EncryptionContext
from rythmiq.crypto import decrypt as decrypt_bytes
from rythmiq.keyring import Keyring, default_keyring_path, load_keyring, save_keyring
from rythmiq.layout import Ids, artifact_key, master_ext_of, master_folder
from rythmiq.storage import Store

__all__ = ["run_decrypt", "run_keygen"]


def run_keygen(*, path: Path | None, rotate: bool, force: bool) -> int:
    """Create the keyring at ``path`` (or the default place), or add a new primary key to it."""
    path = Path(path or default_keyring_path())
    if rotate:
        current = load_keyring(environ={"RYTHMIQ_KEYRING_FILE": str(path)}).keyring
        keyring = current.rotate()
        save_keyring(keyring, path, overwrite=True)
        click.echo(
            f"rotated {path}: new primary key {keyring.primary_id}; "
            f"keys: {', '.join(keyring.key_ids)}"
        )
        return int(ExitCode.OK)
    keyring = Keyring.generate()
    save_keyring(keyring, path, overwrite=force)
    click.echo(f"created {path} (mode 0600) with primary key {keyring.primary_id}")
    return int(ExitCode.OK)


def _master_key(store: Store, ids: Ids, ext: str | None) -> str:
    """The key of the document's master: with ``ext`` given, or the one master listed."""
    if ext:
        return artifact_key("master", ids, ext=ext)
    prefix = master_folder(ids)
    found = [k for k in store.list(prefix) if master_ext_of(k) is not None]
    if len(found) != 1:
        raise StorageError(
            f"expected one master under {store.url_for(prefix)}, found {len(found)}; pass --ext",
            code="storage.not_found",
        )
    return artifact_key("master", ids, ext=master_ext_of(found[0]))


def run_decrypt(
    *, store_url: str, user_id: str, document_id: str, ext: str | None, output: Path
) -> int:
    """Decrypt the document's master from the store into ``output``."""
    # The master is keyed by user and document; the job id only places outputs.
    ids = Ids(user_id, "decrypt", document_id)
    store = Store.open(store_url)
    key = _master_key(store, ids, ext)
    keyring = load_keyring().keyring
    plain = decrypt_bytes(
        store.read(key), keyring, EncryptionContext(ids.user_id, ids.document_id, key)
    )
    # The same temp-file, fsync and rename as any local artifact write.
    Store.open(str(output.resolve().parent)).write(output.name, plain)
    click.echo(f"decrypted {store.url_for(key)} -> {output} ({len(plain)} bytes)")
    return int(ExitCode.OK)
