"""Artifact stores over fsspec: local folders, ``memory://``, S3 and DigitalOcean Spaces.

A :class:`Store` is opened once from a URL (``fsspec.url_to_fs``) and then addressed by keys
relative to that URL. Writes never leave half an object behind: on a local disk they go to a
temporary name that is renamed into place; on object stores each artifact is one PUT.

A local store (a folder, ``file://``) is read and written through :class:`rythmiq._localfs.Root`:
no key follows a symbolic link out of the store's folder (``storage.outside_root``), and only
regular files are read (``storage.not_regular``; ``input.not_regular`` for inputs), so a FIFO
cannot block a read and a device cannot be read. Every failure to open a store, whatever the
backend raised, is a :class:`~rythmiq.StorageError`.

S3-compatible settings come only from the environment (never from code or payloads):

- ``RYTHMIQ_S3_ENDPOINT``: endpoint URL, e.g. ``https://nyc3.digitaloceanspaces.com``
  (falls back to ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``);
- ``RYTHMIQ_S3_REGION``: region (falls back to ``AWS_REGION``, then ``AWS_DEFAULT_REGION``);
- ``SPACES_KEY`` / ``SPACES_SECRET``: DigitalOcean Spaces credentials; when unset,
  ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``); when those are
  unset too, botocore's own credential chain;
- ``RYTHMIQ_S3_MAX_ATTEMPTS``: attempts per request, first one included, in botocore's
  adaptive retry mode (default 10). Throttling (``503 SlowDown``), 5xx answers, timeouts and
  dropped connections are retried with exponential backoff; this is the whole budget (s3fs's
  own retry loop, which would multiply it, is turned off on every S3 store rythmiq opens).

Checksums are set to ``when_required`` (boto3 >= 1.36 otherwise sends CRC32 headers that
several S3-compatible stores reject) and signatures to SigV4.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rythmiq._errors import InputError, OptionsError, StorageError
from rythmiq._localfs import (
    NotRegular,
    OutsideRoot,
    Root,
    TooLarge,
    is_temp_name,
    kind_of,
    read_regular,
)
from rythmiq._public import public
from rythmiq._redact import SECRET_ENV_VARS, has_credentials, redact
from rythmiq._util import short_repr
from rythmiq.layout import validate_input_key

__all__ = [
    "SECRET_ENV_VARS",
    "Artifact",
    "Store",
    "read_url",
    "redact",
    "s3_storage_options",
]

log = logging.getLogger("rythmiq.storage")

_S3_PROTOCOLS = ("s3", "s3a")
_LOCAL_PROTOCOLS = ("file", "local")


def s3_storage_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """s3fs options built from the environment (see the module docstring for the variables)."""
    env = os.environ if environ is None else environ
    opts: dict[str, Any] = {}
    endpoint = (
        env.get("RYTHMIQ_S3_ENDPOINT")
        or env.get("AWS_ENDPOINT_URL_S3")
        or env.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        opts["endpoint_url"] = endpoint
    region = env.get("RYTHMIQ_S3_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    client_kwargs: dict[str, Any] = {}
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    if env.get("SPACES_KEY") and env.get("SPACES_SECRET"):
        opts["key"], opts["secret"] = env["SPACES_KEY"], env["SPACES_SECRET"]
    elif env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        opts["key"], opts["secret"] = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            opts["token"] = env["AWS_SESSION_TOKEN"]
    try:
        attempts = int(env.get("RYTHMIQ_S3_MAX_ATTEMPTS", "10"))
    except ValueError:
        raise OptionsError("RYTHMIQ_S3_MAX_ATTEMPTS must be an integer") from None
    opts["config_kwargs"] = {
        "signature_version": "s3v4",
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"total_max_attempts": max(1, attempts), "mode": "adaptive"},
    }
    return opts


@public
@dataclass(frozen=True)
class Artifact:
    """One stored object.

    Attributes:
        kind: ``"master"``, ``"normalized"``, ``"preview"``, ``"text"``, ``"hocr"``,
            ``"pdf"`` or ``"result"``.
        key: Key relative to the store root (see :mod:`rythmiq.layout`).
        url: Full URL of the object.
        size: Size in bytes.
        sha256: SHA-256 of the stored bytes (for an encrypted object: of the ciphertext).
        encrypted: Whether the object is stored encrypted (always for the master; for the
            outputs, as ``ProcessOptions.encrypt`` says).
    """

    kind: str
    key: str
    url: str
    size: int
    sha256: str
    encrypted: bool = False

    __repr__ = short_repr

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "kind": self.kind,
            "key": self.key,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            "encrypted": self.encrypted,
        }


def _fsspec_open(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec
    from fsspec.core import split_protocol

    if not isinstance(url, str) or not url:
        raise OptionsError(f"a store or input URL must be a non-empty string, got {url!r}")
    protocol = split_protocol(url)[0] or "file"
    if has_credentials(url):
        # fsspec would log in with them, or take a piece of them for a bucket name and quote
        # it in its errors; they would also sit in logs, shell history and job specs.
        # Credentials come from the environment only, and nothing of the authority is echoed.
        raise StorageError(
            f"credentials in URLs are not accepted (a {protocol}:// URL with a user name, "
            "password or token before its host); set SPACES_KEY and SPACES_SECRET (or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment, and write an "
            "'@' in a path as %40",
            code="storage.invalid_url",
        )
    options = dict(storage_options or {})
    if protocol in _S3_PROTOCOLS:
        options = {**s3_storage_options(), **options}
    try:
        fs, path = fsspec.url_to_fs(url, **options)
        return _one_retry_layer(fs), str(path)
    except Exception as exc:
        # A backend may connect, list or open a file while it is built (ftp, zip, tar...),
        # and raise whatever that raises: every failure leaves here as a StorageError.
        raise _open_error(exc, url, protocol) from exc


def _open_error(exc: Exception, url: str, protocol: str) -> StorageError:
    """The :class:`StorageError` for ``exc``, raised by fsspec while it opened ``url``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ImportError):
        hint = (
            "pip install s3fs" if protocol in _S3_PROTOCOLS else f"install the {protocol} backend"
        )
        return StorageError(
            redact(f"no storage backend for {protocol}:// URLs: {exc}; {hint}"),
            code="storage.backend_missing",
        )
    if isinstance(exc, (ValueError, TypeError)):  # unknown protocol, a URL that says too little
        return StorageError(redact(f"cannot open {url!r}: {exc}"), code="storage.invalid_url")
    if isinstance(exc, FileNotFoundError):
        return StorageError(
            redact(f"cannot open {url!r}: {exc.strerror or exc}: {exc.filename}"),
            code="storage.not_found",
        )
    if isinstance(exc, PermissionError):
        return StorageError(
            redact(f"cannot open {url!r}: permission denied"), code="storage.permission"
        )
    return StorageError(
        redact(f"cannot open {url!r}: {type(exc).__name__}: {exc}"), code="storage.open_failed"
    )


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol
    names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return any(name in _LOCAL_PROTOCOLS for name in names)


def _one_retry_layer(fs: Any) -> Any:
    """``fs``, with s3fs's own retry loop reduced to a single try (other backends: as is).

    s3fs wraps every botocore call in a loop of its own (5 tries) that retries SlowDown and
    connection errors again after botocore has spent its attempts, so the real budget would
    be 5 x ``RYTHMIQ_S3_MAX_ATTEMPTS`` and a dead endpoint would hold a job for minutes.
    botocore alone retries, as configured by :func:`s3_storage_options`. The setting is an
    attribute, not a constructor argument, so it is applied again after unpickling.
    """
    protocol = fs.protocol
    names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    if any(name in _S3_PROTOCOLS for name in names) and hasattr(fs, "retries"):
        fs.retries = 1
    return fs


def _translate(exc: BaseException, action: str, url: str) -> StorageError:
    # Redacted here, at the source: a URL may be presigned, and a backend's message may
    # quote credentials or request signatures.
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OutsideRoot):
        return StorageError(
            redact(
                f"{url} leads out of the store's folder through a symbolic link; links that "
                "leave a local store are not followed"
            ),
            code="storage.outside_root",
        )
    if isinstance(exc, NotRegular):
        return StorageError(
            redact(f"{url} is {exc.kind}, not a regular file"), code="storage.not_regular"
        )
    if isinstance(exc, FileNotFoundError):
        return StorageError(redact(f"{url} does not exist"), code="storage.not_found")
    if isinstance(exc, PermissionError):
        return StorageError(
            redact(f"permission denied to {action} {url}"), code="storage.permission"
        )
    code = "storage.write_failed" if action in ("write", "delete") else "storage.read_failed"
    return StorageError(redact(f"could not {action} {url}: {type(exc).__name__}: {exc}"), code=code)


@public
class Store:
    """A place to read and write artifacts, addressed by keys relative to its root URL.

    Open one with :meth:`open` and pass it around; the URL is resolved once. Keys are
    always built by :func:`rythmiq.layout.artifact_key` or checked by
    :func:`rythmiq.layout.validate_input_key` before they reach a store.
    """

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = _one_retry_layer(fs)
        self.root = root.rstrip("/")
        self.url = url
        # A local store's files are reached without following a link out of its folder.
        self._local = Root(self.root or "/") if _is_local(self.fs) else None

    def __reduce__(self) -> tuple[type[Store], tuple[Any, str, str]]:
        # A store sent to a batch worker process is rebuilt through __init__, which applies
        # the retry setting again to the file system fsspec recreates there.
        return (type(self), (self.fs, self.root, self.url))

    @classmethod
    def open(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
        """Open the store at ``url``: a local path, ``file://``, ``memory://``, ``s3://``...

        For ``s3://`` the options from :func:`s3_storage_options` are applied first;
        ``storage_options`` (never credentials from payloads) override them. A local store's
        folder need not exist yet (the first write creates it).

        Raises:
            StorageError: whatever the backend raised while it opened the store:
                ``storage.backend_missing`` with an install hint when the protocol's backend
                is not installed; ``storage.invalid_url`` for an unknown protocol, a URL that
                says too little, or credentials in the URL (``s3://key:secret@bucket``: they
                come from the environment); ``storage.not_found`` (e.g. the archive of a
                ``zip://`` URL); ``storage.permission``; ``storage.open_failed`` for anything
                else (a refused connection, a local path that is a file, not a folder).
        """
        if not isinstance(url, str) or not url:
            raise OptionsError(f"store URL must be a non-empty string, got {url!r}")
        fs, root = _fsspec_open(url, storage_options)
        store = cls(fs, root, url)
        if store.is_local:
            _check_folder(store.root or "/", url)
        return store

    @property
    def is_local(self) -> bool:
        """Whether the store is a local filesystem (writes use temp-and-rename)."""
        return self._local is not None

    def path(self, key: str) -> str:
        """The filesystem path of ``key``."""
        if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise StorageError(f"unsafe key {key!r}", code="storage.invalid_key")
        return f"{self.root}/{key}" if self.root else key

    def url_for(self, key: str) -> str:
        """The full URL of ``key``."""
        return str(self.fs.unstrip_protocol(self.path(key)))

    def write(self, key: str, data: bytes, *, kind: str = "object") -> Artifact:
        """Write ``data`` at ``key`` atomically and return its :class:`Artifact`.

        Raises:
            StorageError: ``storage.outside_root`` when a folder of a local store's key is
                a link out of the store (nothing is written), ``storage.write_failed``,
                ``storage.permission``.
        """
        path = self.path(key)
        try:
            if self._local is not None:
                self._local.write(key, data)
            else:
                self.fs.pipe_file(path, data)
        except Exception as exc:
            raise _translate(exc, "write", self.url_for(key)) from exc
        return Artifact(kind, key, self.url_for(key), len(data), hashlib.sha256(data).hexdigest())

    def read(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes stored at ``key``.

        Args:
            key: The object's key.
            max_bytes: Refuse a larger object (``input.too_large``), from its size before
                the read, and never read more than ``max_bytes + 1`` bytes of it.

        Raises:
            StorageError: ``storage.not_found``, ``storage.read_failed``, and for a local
                store ``storage.outside_root`` (a link out of the store on the key's way)
                or ``storage.not_regular`` (a folder, FIFO, device or socket: not opened,
                not read).
            InputError: ``input.too_large``.
        """
        path = self.path(key)
        try:
            if self._local is not None:
                return self._local.read(key, max_bytes=max_bytes)
            return _read_object(self.fs, path, max_bytes)
        except TooLarge as exc:
            raise _too_large(self.url_for(key), exc, max_bytes) from None
        except Exception as exc:
            raise _translate(exc, "read", self.url_for(key)) from exc

    def read_input(
        self, key: str, *, prefix: str = "input/", max_bytes: int | None = None
    ) -> bytes:
        """Read an input object whose key came from outside (a payload, a user).

        The key is checked by :func:`rythmiq.layout.validate_input_key` first, so a key that
        tries to leave ``prefix`` (traversal in any encoding) is refused before any I/O. As
        :meth:`read` otherwise, except that an object that is not a regular file is an
        :class:`~rythmiq.InputError` (``input.not_regular``).
        """
        checked = validate_input_key(key, prefix=prefix)
        try:
            return self.read(checked, max_bytes=max_bytes)
        except StorageError as exc:
            if exc.code == "storage.not_regular":
                raise InputError(exc.message, code="input.not_regular") from exc
            raise

    def exists(self, key: str) -> bool:
        """Whether an object (a file) is stored at ``key``; a folder, or an object-store
        prefix that only other keys start with, is not one, nor, in a local store, a FIFO,
        a device or a socket.

        Raises:
            StorageError: the store cannot be reached, or (``storage.outside_root``) a local
                store's key leads out of the store through a link.
        """
        path = self.path(key)
        try:
            if self._local is not None:
                return self._local.is_file(key)
            # Not fs.isfile: fsspec's swallows every error, so an unreachable store would
            # read as "not found".
            info = self.fs.info(path)
        except FileNotFoundError:
            return False
        except Exception as exc:
            raise _translate(exc, "read", self.url_for(key)) from exc
        return bool(info.get("type") == "file")

    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error (in a local store, a link at
        ``key`` is deleted, not what it points to)."""
        path = self.path(key)
        try:
            if self._local is not None:
                self._local.delete(key)
            else:
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise _translate(exc, "delete", self.url_for(key)) from exc

    def _local_files(self, prefix: str) -> list[str]:
        """The keys of the regular files under ``prefix`` of a local store, hidden ones too."""
        assert self._local is not None
        base = self.path(prefix) if prefix else self.root
        try:
            return self._local.files(prefix)
        except Exception as exc:
            raise _translate(exc, "list", str(self.fs.unstrip_protocol(base))) from exc

    def remove_leftovers(self, prefix: str) -> int:
        """Delete the temporary files of writes that never finished under ``prefix``.

        Only a process killed in the middle of a local :meth:`write` (``SIGKILL``, the OOM
        killer) leaves one: a hidden ``.<name>.<hex>.tmp`` next to where the object was going.
        Object stores write each object in one request and have none; for them this does
        nothing. Call it only when no other process is writing under ``prefix``.

        Returns:
            How many files were deleted.
        """
        if self._local is None:
            return 0
        removed = 0
        for key in self._local_files(prefix.rstrip("/")):
            if is_temp_name(posixpath.basename(key)):
                self.delete(key)
                removed += 1
        return removed

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursive, sorted), relative to the store root.

        In a local store only regular files are listed, and a linked folder is not entered.
        """
        if self._local is not None:
            keys = self._local_files(prefix.rstrip("/"))
        else:
            base = self.path(prefix.rstrip("/")) if prefix else self.root
            try:
                found = self.fs.find(base)
            except FileNotFoundError:
                return []
            except Exception as exc:
                raise _translate(exc, "list", str(self.fs.unstrip_protocol(base))) from exc
            root = self.root + "/" if self.root else ""
            keys = [p[len(root) :] if p.startswith(root) else p for p in found]
        return sorted(k for k in keys if not posixpath.basename(k).startswith("."))

    def __repr__(self) -> str:
        return f"Store({self.url!r})"


def _check_folder(path: str, url: str) -> None:
    """Refuse a local store whose path is there but is no folder (a file, a device)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return  # made by the first write
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise _open_error(exc, url, "file") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise StorageError(
            redact(f"cannot open store {url!r}: it is {kind_of(info.st_mode)}, not a folder"),
            code="storage.open_failed",
        )


def _read_object(fs: Any, path: str, max_bytes: int | None) -> bytes:
    """The object at ``path`` of an fsspec file system, refused (:class:`TooLarge`) from its
    listed size when over ``max_bytes``, and never more than ``max_bytes + 1`` bytes read."""
    if max_bytes is None:
        return bytes(fs.cat_file(path))
    size = fs.size(path)
    if size is not None and size > max_bytes:
        raise TooLarge(size)
    data = bytes(fs.cat_file(path, start=0, end=max_bytes + 1))
    if len(data) > max_bytes:
        raise TooLarge(None)
    return data


def _too_large(url: str, exc: TooLarge, max_bytes: int | None) -> InputError:
    size = f"more than {max_bytes}" if exc.size is None else str(exc.size)
    return InputError(
        redact(f"{url} is {size} bytes, over the {max_bytes}-byte input limit"),
        code="input.too_large",
    )


def read_url(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_bytes: int | None = None,
) -> bytes:
    """Read one object by URL (``s3://bucket/input/x.jpg``, ``memory://...``, a path).

    A local path is read only when it is a regular file (a link to one is followed: the URL
    names it); a FIFO or a device is not opened.

    Args:
        url: The object's URL.
        storage_options: fsspec options overriding the environment's.
        max_bytes: Refuse a larger object, from its listed size before the download, and
            never read more than ``max_bytes + 1`` bytes of it.

    Raises:
        InputError: ``input.too_large`` when the object is over ``max_bytes``;
            ``input.not_regular`` for a local path that is not a regular file.
        StorageError: ``storage.not_found``, ``storage.read_failed``, ``storage.invalid_url``
            (credentials in the URL) or another failure to open the store. Messages are
            redacted.
    """
    fs, path = _fsspec_open(url, storage_options)
    try:
        if _is_local(fs):
            return read_regular(path, max_bytes=max_bytes)
        return _read_object(fs, path, max_bytes)
    except TooLarge as exc:
        raise _too_large(url, exc, max_bytes) from None
    except NotRegular as exc:
        raise InputError(
            redact(f"{url} is {exc.kind}, not a regular file"), code="input.not_regular"
        ) from None
    except Exception as exc:
        raise _translate(exc, "read", url) from exc


def __getattr__(name: str) -> Any:
    # store_artifacts moved to rythmiq.persist, which builds on this module; the old public
    # name still resolves, on first use.
    if name == "store_artifacts":
        from rythmiq.persist import store_artifacts  # upward, lazy: the name's old home

        return store_artifacts
    raise AttributeError(f"module 'rythmiq.storage' has no attribute {name!r}")
