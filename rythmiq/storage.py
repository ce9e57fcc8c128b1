"""Artifact stores over fsspec: local folders, ``memory://``, S3 and DigitalOcean Spaces.

A :class:`Store` is opened once from a URL (``fsspec.url_to_fs``) and then addressed by keys
relative to that URL. Writes never leave half an object behind: on a local disk they go to a
temporary name that is renamed into place; on object stores each artifact is one PUT.

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

import functools
import hashlib
import json
import logging
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from rythmiq._errors import OptionsError, StorageError
from rythmiq.layout import ArtifactKind, Ids, artifact_key, validate_input_key

if TYPE_CHECKING:
    from rythmiq.keyring import Keyring
    from rythmiq.results import ProcessResult

__all__ = [
    "SECRET_ENV_VARS",
    "Artifact",
    "Store",
    "read_url",
    "redact",
    "s3_storage_options",
    "store_artifacts",
]

log = logging.getLogger("rythmiq.storage")

# Environment variables whose values must never reach a message, log line or result.
SECRET_ENV_VARS = (
    "SPACES_KEY",
    "SPACES_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "RYTHMIQ_KEYRING",
)
_S3_PROTOCOLS = ("s3", "s3a")
# The temporary name a local write uses until its rename (see Store.write).
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp", re.DOTALL)


# A signature, credential or session token in a presigned URL's query (SigV4 and SigV2) or in
# an Authorization header: the name stays, the value goes, up to the next "&" or separator.
# The URL may itself be URL-encoded inside another one ("%3D" for "=", "%26" for "&").
_SIGNED_PARAM = re.compile(
    r"(?<![A-Za-z0-9_])((?:X-Amz-)?(?:Signature|Credential|Security-Token)|AWSAccessKeyId)"
    r"(=|%3D)(?:(?!%26)[^&\s'\"<>,;#)\]}])+",
    re.IGNORECASE,
)
# The userinfo of a URL (``s3://key:secret@bucket``, ``https://user:pass@host``, a token as
# the user name): everything between "scheme://" and the "@" before the host. A password
# may hold a raw "/" (AWS secret keys do, and people paste them unencoded); a "/" before
# any ":" ends the authority, so ``s3://bucket/key@2x.png`` is left alone.
_URL_USERINFO = re.compile(
    r"\b([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/?#@:\s'\"<>]*:[^?#@\s'\"<>]*|[^/?#@:\s'\"<>]+)@"
)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with secrets replaced by ``***``.

    Blanked: the value of every secret environment variable (:data:`SECRET_ENV_VARS`), also
    URL-encoded; signatures, credentials and session tokens of presigned URLs and
    Authorization headers (``X-Amz-Signature=``, ``X-Amz-Credential=``,
    ``X-Amz-Security-Token=``, ``Signature=``, ``Credential=``, ``AWSAccessKeyId=``); and the
    userinfo of URLs (``s3://key:secret@bucket`` becomes ``s3://***@bucket``).
    """
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_VARS:
        value = env.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
            encoded = quote(value, safe="")
            if encoded != value:
                text = text.replace(encoded, "***")
    text = _SIGNED_PARAM.sub(r"\1\2***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


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


@dataclass(frozen=True)
class Artifact:
    """One stored object.

    Attributes:
        kind: ``"master"``, ``"normalized"``, ``"preview"``, ``"text"`` or ``"result"``.
        key: Key relative to the store root (see :mod:`rythmiq.layout`).
        url: Full URL of the object.
        size: Size in bytes.
        sha256: SHA-256 of the stored bytes (for the master: of the ciphertext).
    """

    kind: str
    key: str
    url: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {
            "kind": self.kind,
            "key": self.key,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
        }


def _has_userinfo(url: str) -> bool:
    if "://" not in url:
        return False
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # e.g. an unbalanced "[" in the host: fsspec reports it
        return False


def _fsspec_open(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    import fsspec
    from fsspec.core import split_protocol

    protocol = split_protocol(url)[0] or "file"
    if _has_userinfo(url):
        # fsspec would log in with them; they would also sit in logs, shell history and
        # job specs. Credentials come from the environment only.
        raise StorageError(
            f"credentials in URLs are not accepted ({redact(url)}); set SPACES_KEY and "
            "SPACES_SECRET (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment",
            code="storage.invalid_url",
        )
    options = dict(storage_options or {})
    if protocol in _S3_PROTOCOLS:
        options = {**s3_storage_options(), **options}
    try:
        fs, path = fsspec.url_to_fs(url, **options)
    except ImportError as exc:
        hint = (
            "pip install s3fs" if protocol in _S3_PROTOCOLS else f"install the {protocol} backend"
        )
        raise StorageError(
            redact(f"no storage backend for {protocol}:// URLs: {exc}; {hint}"),
            code="storage.backend_missing",
        ) from exc
    except ValueError as exc:
        raise StorageError(
            redact(f"cannot open store {url!r}: {exc}"), code="storage.invalid_url"
        ) from exc
    return _one_retry_layer(fs), str(path)


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
    if isinstance(exc, FileNotFoundError):
        return StorageError(redact(f"{url} does not exist"), code="storage.not_found")
    if isinstance(exc, PermissionError):
        return StorageError(
            redact(f"permission denied to {action} {url}"), code="storage.permission"
        )
    code = "storage.write_failed" if action in ("write", "delete") else "storage.read_failed"
    return StorageError(redact(f"could not {action} {url}: {type(exc).__name__}: {exc}"), code=code)


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

    def __reduce__(self) -> tuple[type[Store], tuple[Any, str, str]]:
        # A store sent to a batch worker process is rebuilt through __init__, which applies
        # the retry setting again to the file system fsspec recreates there.
        return (type(self), (self.fs, self.root, self.url))

    @classmethod
    def open(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
        """Open the store at ``url``: a local path, ``file://``, ``memory://``, ``s3://``...

        For ``s3://`` the options from :func:`s3_storage_options` are applied first;
        ``storage_options`` (never credentials from payloads) override them.

        Raises:
            StorageError: ``storage.backend_missing`` with an install hint when the protocol's
                backend is not installed, or ``storage.invalid_url`` (also for a URL with
                credentials in it, ``s3://key:secret@bucket``: they come from the environment).
        """
        if not isinstance(url, str) or not url:
            raise OptionsError(f"store URL must be a non-empty string, got {url!r}")
        fs, root = _fsspec_open(url, storage_options)
        return cls(fs, root, url)

    @property
    def is_local(self) -> bool:
        """Whether the store is a local filesystem (writes use temp-and-rename)."""
        protocol = self.fs.protocol
        names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "file" in names or "local" in names

    def path(self, key: str) -> str:
        """The filesystem path of ``key``."""
        if not key or key.startswith("/") or "\\" in key or ".." in key.split("/"):
            raise StorageError(f"unsafe key {key!r}", code="storage.invalid_key")
        return f"{self.root}/{key}" if self.root else key

    def url_for(self, key: str) -> str:
        """The full URL of ``key``."""
        return str(self.fs.unstrip_protocol(self.path(key)))

    def write(self, key: str, data: bytes, *, kind: str = "object") -> Artifact:
        """Write ``data`` at ``key`` atomically and return its :class:`Artifact`."""
        path = self.path(key)
        try:
            if self.is_local:
                parent = posixpath.dirname(path)
                self.fs.makedirs(parent, exist_ok=True)
                name = f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp"
                tmp = posixpath.join(parent, name)
                try:
                    with self.fs.open(tmp, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    self.fs.mv(tmp, path)
                except BaseException:
                    if self.fs.exists(tmp):
                        self.fs.rm_file(tmp)
                    raise
            else:
                self.fs.pipe_file(path, data)
        except Exception as exc:
            raise _translate(exc, "write", self.url_for(key)) from exc
        return Artifact(kind, key, self.url_for(key), len(data), hashlib.sha256(data).hexdigest())

    def read(self, key: str) -> bytes:
        """The bytes stored at ``key``."""
        try:
            return bytes(self.fs.cat_file(self.path(key)))
        except Exception as exc:
            raise _translate(exc, "read", self.url_for(key)) from exc

    def read_input(self, key: str, *, prefix: str = "input/") -> bytes:
        """Read an input object whose key came from outside (a payload, a user).

        The key is checked by :func:`rythmiq.layout.validate_input_key` first, so a key that
        tries to leave ``prefix`` (traversal in any encoding) is refused before any I/O.
        """
        return self.read(validate_input_key(key, prefix=prefix))

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            return bool(self.fs.exists(self.path(key)))
        except Exception as exc:
            raise _translate(exc, "read", self.url_for(key)) from exc

    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error."""
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise _translate(exc, "delete", self.url_for(key)) from exc

    def remove_leftovers(self, prefix: str) -> int:
        """Delete the temporary files of writes that never finished under ``prefix``.

        Only a process killed in the middle of a local :meth:`write` (``SIGKILL``, the OOM
        killer) leaves one: a hidden ``.<name>.<hex>.tmp`` next to where the object was going.
        Object stores write each object in one request and have none; for them this does
        nothing. Call it only when no other process is writing under ``prefix``.

        Returns:
            How many files were deleted.
        """
        if not self.is_local:
            return 0
        base = self.path(prefix.rstrip("/"))
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return 0
        except Exception as exc:
            raise _translate(exc, "list", str(self.fs.unstrip_protocol(base))) from exc
        removed = 0
        for path in found:
            if _TEMP_NAME.fullmatch(posixpath.basename(path)):
                try:
                    self.fs.rm_file(path)
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    raise _translate(exc, "delete", str(self.fs.unstrip_protocol(path))) from exc
                removed += 1
        return removed

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` (recursive, sorted), relative to the store root."""
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


def read_url(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_bytes: int | None = None,
) -> bytes:
    """Read one object by URL (``s3://bucket/input/x.jpg``, ``memory://...``, a path).

    Args:
        url: The object's URL.
        storage_options: fsspec options overriding the environment's.
        max_bytes: Refuse a larger object, from its listed size before the download, and
            never read more than ``max_bytes + 1`` bytes of it.

    Raises:
        InputError: ``input.too_large`` when the object is over ``max_bytes``.
        StorageError: ``storage.not_found``, ``storage.read_failed``, ``storage.invalid_url``
            (credentials in the URL) or a backend error. Messages are redacted.
    """
    from rythmiq._errors import InputError

    fs, path = _fsspec_open(url, storage_options)

    def too_large(size: int | str) -> InputError:
        return InputError(
            redact(f"{url} is {size} bytes, over the {max_bytes}-byte input limit"),
            code="input.too_large",
        )

    try:
        if max_bytes is None:
            return bytes(fs.cat_file(path))
        size = fs.size(path)
        if size is not None and size > max_bytes:
            raise too_large(size)
        data = bytes(fs.cat_file(path, start=0, end=max_bytes + 1))
    except InputError:
        raise
    except Exception as exc:
        raise _translate(exc, "read", url) from exc
    if len(data) > max_bytes:
        raise too_large(f"more than {max_bytes}")
    return data


def store_artifacts(
    result: ProcessResult,
    store: Store,
    ids: Ids,
    *,
    master: bytes,
    master_ext: str,
    keyring: Keyring,
    on_written: Callable[[Artifact], None] | None = None,
    per_document: bool = False,
    marker: bool = True,
    outputs: Sequence[str] = ("txt",),
    options_sha256: str | None = None,
) -> tuple[Artifact, ...]:
    """Write a processed document's artifacts; ``result.json`` last, as the completion marker.

    Order: encrypted master, normalized JPEG and preview (one pair per page under
    ``pages/NNNN/`` for a multi-page document), the ``outputs`` asked for (``"txt"``: the
    OCR text, when OCR ran on some page; ``"hocr"``; ``"pdf"``: a searchable PDF), then
    ``result.json``: the result with ids, ``"status": "ok"``, the list of the other
    artifacts and ``options_sha256``, which a resumed worker job compares with its own
    options before it skips the document.

    On any failure, every object this call wrote is deleted again before the error is
    raised. If the store is unreachable even for that, what is left is only at this
    document's deterministic keys (never a ``result.json``), and a re-run overwrites exactly
    those keys: a reader must treat a job without ``result.json`` as not done.

    Args:
        result: The :class:`~rythmiq.ProcessResult` to store.
        store: Where to write.
        ids: The user, job and document ids that place the artifacts.
        master: The original input bytes, encrypted as the master.
        master_ext: Extension of the original file (``"jpg"``, ``"png"``...).
        keyring: Keyring whose primary key wraps the master's data key.
        on_written: Called after each artifact is written (progress, logging, tests).
        per_document: Use the per-document output folder (see :func:`artifact_key`).
        marker: Write ``result.json``. A single-document worker job leaves it to the job
            result, which takes the same key.
        outputs: Document outputs to write, from ``("txt", "hocr", "pdf")``.
        options_sha256: :meth:`~rythmiq.ProcessOptions.fingerprint` of the options the
            result was made with, recorded in ``result.json`` (``null`` when not given: such
            a document is never skipped by a resumed job).

    Returns:
        The artifacts, ``result.json`` last.

    Raises:
        StorageError: A write failed (the message never contains credentials).
        CryptoError: The master could not be encrypted.
    """
    from rythmiq.crypto import EncryptionContext, encrypt

    plan: list[tuple[ArtifactKind, str, Callable[[], bytes]]] = []
    master_key = artifact_key("master", ids, ext=master_ext)
    context = EncryptionContext(ids.user_id, ids.document_id, master_key)
    plan.append(("master", master_key, lambda: encrypt(master, keyring, context)))
    multi = len(result.pages) > 1
    for page in result.pages:
        number = page.index + 1 if multi else None
        images: tuple[tuple[ArtifactKind, bytes], ...] = (
            ("normalized", page.image.data),
            ("preview", page.preview.data),
        )
        for kind, data in images:
            key = artifact_key(kind, ids, per_document=per_document, page=number)
            plan.append((kind, key, functools.partial(bytes, data)))
    unknown = set(outputs) - {"txt", "hocr", "pdf"}
    if unknown:
        raise OptionsError(f"unknown output(s) {sorted(unknown)}; choose from txt, hocr, pdf")
    text = result.text
    if "txt" in outputs and text is not None:
        plan.append(
            (
                "text",
                artifact_key("text", ids, per_document=per_document),
                lambda: text.encode("utf-8"),
            )
        )
    if "hocr" in outputs:
        from rythmiq.export import result_to_hocr

        plan.append(
            (
                "hocr",
                artifact_key("hocr", ids, per_document=per_document),
                lambda: result_to_hocr(result).encode("utf-8"),
            )
        )
    if "pdf" in outputs:
        from rythmiq.export import result_to_pdf

        plan.append(
            (
                "pdf",
                artifact_key("pdf", ids, per_document=per_document),
                lambda: result_to_pdf(result),
            )
        )
    written: list[Artifact] = []
    try:
        for kind, key, payload in plan:
            artifact = store.write(key, payload(), kind=kind)
            written.append(artifact)
            log.debug("wrote %s (%d bytes)", artifact.url, artifact.size)
            if on_written is not None:
                on_written(artifact)
        if marker:
            # The stored result always names the ids it was stored under, even when the
            # caller's result did not carry them yet.
            document = {
                "status": "ok",
                **replace(result, ids=ids).to_dict(),
                "artifacts": [a.to_dict() for a in written],
                "options_sha256": options_sha256,
            }
            body = json.dumps(document, indent=2).encode("utf-8")
            done = store.write(
                artifact_key("result", ids, per_document=per_document), body, kind="result"
            )
            written.append(done)
            if on_written is not None:
                on_written(done)
    except BaseException:
        _rollback(store, written)
        raise
    return tuple(written)


def _rollback(store: Store, written: list[Artifact]) -> None:
    for artifact in reversed(written):
        try:
            store.delete(artifact.key)
        except StorageError as exc:
            log.warning("could not remove %s after a failure: %s", artifact.url, exc.message)
