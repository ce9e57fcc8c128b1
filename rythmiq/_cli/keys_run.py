"""The work of ``rythmiq keygen`` and ``rythmiq decrypt``: the keyring and encrypted artifacts."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import click

from rythmiq._errors import ExitCode, OptionsError, StorageError
from rythmiq.crypto import EncryptionContext
from rythmiq.crypto import decrypt as decrypt_bytes
from rythmiq.keyring import Keyring, default_keyring_path, load_keyring, save_keyring
from rythmiq.layout import (
    Ids,
    artifact_key,
    master_ext_of,
    master_folder,
    validate_encrypted_key,
)
from rythmiq.storage import Store

__all__ = ["run_decrypt", "run_keygen", "write_private_file"]

# What a path that is not a regular file is, for the refusal's message.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


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


def _write_failed(path: str, exc: OSError) -> StorageError:
    code = "storage.permission" if isinstance(exc, PermissionError) else "storage.write_failed"
    return StorageError(f"cannot write {path}: {exc.strerror or exc}", code=code)


def _refuse_unsafe(path: str) -> None:
    """Refuse ``path`` unless nothing is there or it is a regular file (not a link to one)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _write_failed(path, exc) from None
    if stat.S_ISLNK(mode):
        raise OptionsError(
            f"{path} is a symbolic link: the plaintext is written only to a new or regular "
            "file, never through a link; remove the link or choose another path",
            code="options.unsafe_output",
        )
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise OptionsError(
            f"{path} is {kind}: the plaintext is written only to a new or regular file, "
            "which it replaces; choose another path",
            code="options.unsafe_output",
        )


def write_private_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` at exactly ``path``, readable by the owner only, all or nothing.

    ``path`` must be absent or a regular file: a symbolic link there is never followed, and
    a FIFO, device, socket or folder is never replaced (``options.unsafe_output``). The data
    goes to a temporary file in the same folder, created with mode 0600 (``O_EXCL``,
    ``O_NOFOLLOW``), fsynced and renamed over ``path``; the rename replaces the name itself
    and never writes through a link, even one put there meanwhile. A missing folder is
    created.

    Raises:
        OptionsError: ``options.unsafe_output``.
        StorageError: ``storage.permission`` or ``storage.write_failed``.
    """
    target = os.fspath(path)
    _refuse_unsafe(target)
    folder = os.path.dirname(target) or "."
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _refuse_unsafe(target)  # again, just before the rename
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(folder)
    except OSError as exc:
        raise _write_failed(target, exc) from exc


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def run_decrypt(
    *,
    store_url: str,
    user_id: str,
    document_id: str,
    key: str | None,
    ext: str | None,
    output: Path,
) -> int:
    """Decrypt the document's master, or the encrypted artifact at ``key``, into ``output``.

    Every check that needs no I/O comes first: the ids, the key, and what is at ``output``.
    """
    # The master is keyed by user and document; the job id only places outputs.
    ids = Ids(user_id, "decrypt", document_id)
    if key is not None and ext is not None:
        raise OptionsError("--ext finds the master; with --key, the key names the artifact")
    if key is not None:
        key = validate_encrypted_key(key, user_id=user_id, document_id=document_id)
    _refuse_unsafe(os.fspath(output))
    store = Store.open(store_url)
    if key is None:
        key = _master_key(store, ids, ext)
    keyring = load_keyring().keyring
    # Each encrypted artifact is bound to the user, the document and its own key.
    plain = decrypt_bytes(
        store.read(key), keyring, EncryptionContext(ids.user_id, ids.document_id, key)
    )
    write_private_file(output, plain)
    click.echo(f"decrypted {store.url_for(key)} -> {output} ({len(plain)} bytes)")
    return int(ExitCode.OK)
