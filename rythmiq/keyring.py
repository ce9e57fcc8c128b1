"""Keyrings of AES-256 key-encryption keys, and where they are loaded from (the I/O edge for keys).

A :class:`Keyring` maps key ids to 32-byte keys and names one of them primary: new objects are
wrapped with the primary key, and every key stays usable for decryption until it is retired.
Only :meth:`Keyring.to_json` and :meth:`Keyring.key` hand out key bytes; ``repr``, ``str``,
equality, hashing and every error message show key ids only.

:func:`load_keyring` finds the keyring of this process, in order: ``$RYTHMIQ_KEYRING``
(base64 of the keyring JSON), ``$RYTHMIQ_KEYRING_FILE`` (a path), then the local default
``$XDG_CONFIG_HOME/rythmiq/keyring.json``. See ``docs/encryption.md``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import hmac
import json
import logging
import os
import re
import secrets
import types
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

from rythmiq._errors import CryptoError, OptionsError
from rythmiq._public import public

__all__ = [
    "KEYRING_FORMAT_VERSION",
    "KEY_ID_PATTERN",
    "KEY_SIZE",
    "Keyring",
    "LoadedKeyring",
    "default_keyring_path",
    "load_keyring",
    "save_keyring",
]

logger = logging.getLogger("rythmiq.keyring")

KEY_SIZE = 32
KEYRING_FORMAT_VERSION = 1
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A keyring of a few hundred keys is a few tens of KiB; refuse to slurp anything much larger.
_MAX_KEYRING_FILE = 1 << 20

KeyringSource = Literal["env", "file", "default"]


def _valid_id(key_id: object) -> bool:
    return isinstance(key_id, str) and KEY_ID_PATTERN.fullmatch(key_id) is not None


def _check_id(key_id: object, what: str) -> str:
    # An invalid id is never echoed: a malformed keyring may hold a key where an id belongs.
    if not _valid_id(key_id):
        raise OptionsError(
            f"{what} must match {KEY_ID_PATTERN.pattern} (1-64 letters, digits, '.', '_', '-')"
        )
    assert isinstance(key_id, str)
    return key_id


def _new_key_id() -> str:
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    return f"k-{day}-{secrets.token_hex(4)}"


def _swapped(key_id: str) -> str:
    """A hint when a key id looks like key material (hex or base64 of 32 bytes)."""
    if re.fullmatch(r"[0-9A-Fa-f]{64}|[A-Za-z0-9_-]{43}", key_id):
        return " (a key id looks like a key: are the id and the key swapped?)"
    return ""


@public
class Keyring:
    """An immutable set of named 256-bit keys, one of them primary.

    Not a dataclass on purpose: no generated ``__repr__``, ``__eq__`` or ``replace`` can touch
    the key bytes. Equality compares the keys in constant time; the hash covers ids only.

    Args:
        keys: ``{key_id: 32-byte key}``; ids match :data:`KEY_ID_PATTERN`.
        primary_id: The id new objects are wrapped with; must be in ``keys``.

    Raises:
        OptionsError: An id is malformed, a key is not 32 bytes, or ``primary_id`` is absent.
    """

    __slots__ = ("_keys", "_primary_id")
    _keys: Mapping[str, bytes]
    _primary_id: str

    def __init__(self, keys: Mapping[str, bytes], primary_id: str) -> None:
        checked: dict[str, bytes] = {}
        for i, (key_id, key) in enumerate(keys.items()):
            _check_id(key_id, f"key id #{i + 1}")
            if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != KEY_SIZE:
                raise OptionsError(f"key {key_id!r} must be {KEY_SIZE} bytes")
            checked[key_id] = bytes(key)
        if not checked:
            raise OptionsError("a keyring needs at least one key")
        _check_id(primary_id, "primary_id")
        if primary_id not in checked:
            raise OptionsError(f"primary_id {primary_id!r} is not one of the keyring's ids")
        object.__setattr__(self, "_keys", types.MappingProxyType(checked))
        object.__setattr__(self, "_primary_id", primary_id)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """A new keyring holding one fresh random key, which is primary.

        Args:
            key_id: The key's id; ``None`` picks ``"k-<YYYYMMDD>-<8 hex>"`` (UTC date).
        """
        key_id = _new_key_id() if key_id is None else _check_id(key_id, "key_id")
        return cls({key_id: secrets.token_bytes(KEY_SIZE)}, key_id)

    def rotate(self, key_id: str | None = None) -> Keyring:
        """A copy with a fresh random key added and made primary; older keys are kept.

        Objects wrapped with an older key still decrypt, and :func:`rythmiq.crypto.rewrap`
        moves them to the new key without touching their payload.

        Args:
            key_id: The new key's id; ``None`` picks one as :meth:`generate` does.

        Raises:
            OptionsError: ``key_id`` is malformed or already in the keyring.
        """
        if key_id is None:
            key_id = _new_key_id()
            while key_id in self._keys:
                key_id = _new_key_id()
        else:
            _check_id(key_id, "key_id")
            if key_id in self._keys:
                raise OptionsError(f"key id {key_id!r} is already in the keyring")
        keys = dict(self._keys)
        keys[key_id] = secrets.token_bytes(KEY_SIZE)
        return Keyring(keys, key_id)

    def retire(self, key_id: str) -> Keyring:
        """A copy without ``key_id``; objects still wrapped with it will no longer decrypt.

        Raises:
            OptionsError: ``key_id`` is the primary key or not in the keyring.
        """
        if key_id == self._primary_id:
            raise OptionsError(f"cannot retire the primary key {key_id!r}; rotate first")
        if key_id not in self._keys:
            raise OptionsError(f"key id {key_id!r} is not in the keyring")
        return Keyring({k: v for k, v in self._keys.items() if k != key_id}, self._primary_id)

    # -- access -------------------------------------------------------------------------

    @property
    def primary_id(self) -> str:
        """Id of the key new objects are wrapped with."""
        return self._primary_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, oldest first."""
        return tuple(self._keys)

    def key(self, key_id: str) -> bytes:
        """The 32 key bytes of ``key_id``.

        Raises:
            CryptoError: ``crypto.unknown_key`` when the id is not in the keyring.
        """
        try:
            return self._keys[key_id]
        except (KeyError, TypeError):
            name = repr(key_id) if _valid_id(key_id) else "(malformed id)"
            raise CryptoError(
                f"key id {name} is not in the keyring (it holds {', '.join(self._keys)}); "
                "load a keyring that still has this key",
                code="crypto.unknown_key",
            ) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    # -- serialization ------------------------------------------------------------------

    def to_json(self) -> str:
        """The keyring as JSON, key bytes in base64: the only form that reveals secrets.

        ``{"version": 1, "primary": "<id>", "keys": {"<id>": "<base64>", ...}}``
        """
        doc = {
            "version": KEYRING_FORMAT_VERSION,
            "primary": self._primary_id,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in self._keys.items()},
        }
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> Keyring:
        """Parse and strictly validate the output of :meth:`to_json`.

        Raises:
            CryptoError: ``crypto.bad_keyring``, with a message that never quotes key material.
        """

        def bad(message: str) -> NoReturn:
            raise CryptoError(f"invalid keyring: {message}", code="crypto.bad_keyring")

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            names = [name for name, _ in pairs]
            if len(set(names)) != len(names):
                bad("a JSON object repeats a name")
            return dict(pairs)

        invalid = object()
        try:
            doc = json.loads(text, object_pairs_hook=no_duplicates)
        except CryptoError:
            raise
        except (ValueError, TypeError, RecursionError):
            # JSONDecodeError keeps the whole document in .doc: do not chain it.
            doc = invalid
        if doc is invalid:
            bad("not valid UTF-8 JSON")
        if not isinstance(doc, dict):
            bad("expected a JSON object")
        if set(doc) != {"version", "primary", "keys"}:
            bad('expected exactly the fields "version", "primary" and "keys"')
        version = doc["version"]
        if isinstance(version, bool) or version != KEYRING_FORMAT_VERSION:
            bad(f"unsupported version (this rythmiq reads version {KEYRING_FORMAT_VERSION})")
        raw_keys = doc["keys"]
        if not isinstance(raw_keys, dict) or not raw_keys:
            bad('"keys" must be a non-empty object of {"<key id>": "<base64 key>"}')
        keys: dict[str, bytes] = {}
        for i, (key_id, encoded) in enumerate(raw_keys.items()):
            if not _valid_id(key_id):
                bad(f"key id #{i + 1} does not match {KEY_ID_PATTERN.pattern}")
            try:
                if not isinstance(encoded, str):
                    raise TypeError
                key = base64.b64decode(encoded, validate=True)
            except (TypeError, ValueError, binascii.Error):
                key = None
            # Key ids are not quoted here: with the id and the key swapped, a hex key is a
            # valid id, and the message would print it.
            if key is None:
                bad(f"key #{i + 1} is not a base64 string{_swapped(key_id)}")
            if len(key) != KEY_SIZE:
                bad(f"key #{i + 1} is {len(key)} bytes, expected {KEY_SIZE}{_swapped(key_id)}")
            keys[key_id] = key
        primary = doc["primary"]
        if not _valid_id(primary):
            bad(f'"primary" must be a key id matching {KEY_ID_PATTERN.pattern}')
        if primary not in keys:
            bad(f'"primary" names a key id that is not in "keys"{_swapped(primary)}')
        return cls(keys, primary)

    def __reduce__(self) -> tuple[type[Keyring], tuple[dict[str, bytes], str]]:
        return (Keyring, (dict(self._keys), self._primary_id))

    # -- dunder safety ------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Keyring(primary_id={self._primary_id!r}, key_ids={self.key_ids!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Keyring):
            return NotImplemented
        if self._primary_id != other._primary_id or set(self._keys) != set(other._keys):
            return False
        ids = sorted(self._keys)
        mine = b"".join(self._keys[k] for k in ids)
        theirs = b"".join(other._keys[k] for k in ids)
        return hmac.compare_digest(mine, theirs)

    def __hash__(self) -> int:
        return hash((self._primary_id, frozenset(self._keys)))

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass(frozen=True)
class LoadedKeyring:
    """A keyring and where :func:`load_keyring` found it.

    Attributes:
        keyring: The keyring (its repr shows ids only).
        source: ``"env"`` (``$RYTHMIQ_KEYRING``), ``"file"`` (``$RYTHMIQ_KEYRING_FILE``) or
            ``"default"`` (the local default path).
        path: The file it was read from or written to; ``None`` for ``"env"``.
        created: ``True`` when the default keyring did not exist and was generated now.
    """

    keyring: Keyring
    source: KeyringSource
    path: str | None
    created: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict, without key material."""
        return {
            "source": self.source,
            "path": self.path,
            "created": self.created,
            "primary_id": self.keyring.primary_id,
            "key_ids": list(self.keyring.key_ids),
        }


def default_keyring_path(*, environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CONFIG_HOME/rythmiq/keyring.json``, by default ``~/.config/rythmiq/keyring.json``.

    A relative ``XDG_CONFIG_HOME`` is ignored, as the XDG spec asks.
    """
    env = os.environ if environ is None else environ
    config = env.get("XDG_CONFIG_HOME", "")
    if not config or not os.path.isabs(config):
        home = env.get("HOME") or str(Path.home())
        config = os.path.join(home, ".config")
    return os.path.join(config, "rythmiq", "keyring.json")


@public
def load_keyring(
    *, environ: Mapping[str, str] | None = None, create: bool = False
) -> LoadedKeyring:
    """Find the keyring of this process.

    In order: ``$RYTHMIQ_KEYRING`` (base64 of the keyring JSON), ``$RYTHMIQ_KEYRING_FILE``
    (path to the keyring JSON), then :func:`default_keyring_path`. A default keyring readable
    by group or others is loaded with a logged warning.

    Args:
        environ: Environment to read instead of ``os.environ``.
        create: When no keyring is configured and the default file does not exist, generate
            one and write it there (mode 0600, directory 0700) instead of failing. Workers
            leave this off so they never invent keys.

    Raises:
        CryptoError: ``crypto.no_keyring`` (nothing configured, or the named file is missing),
            ``crypto.bad_keyring`` (invalid content), ``crypto.keyring_io`` (unreadable or
            unwritable file).
    """
    env = os.environ if environ is None else environ
    encoded = env.get("RYTHMIQ_KEYRING", "").strip()
    if encoded:
        return LoadedKeyring(_from_env(encoded), "env", None, False)
    named = env.get("RYTHMIQ_KEYRING_FILE", "")
    if named:
        if not os.path.exists(named):
            raise CryptoError(
                f"RYTHMIQ_KEYRING_FILE names {named}, which does not exist",
                code="crypto.no_keyring",
            )
        return LoadedKeyring(_read_file(named), "file", named, False)
    path = default_keyring_path(environ=env)
    if os.path.exists(path):
        return LoadedKeyring(_read_file(path), "default", path, False)
    if not create:
        raise CryptoError(
            "no keyring: set RYTHMIQ_KEYRING (base64 of the keyring JSON) or "
            f"RYTHMIQ_KEYRING_FILE (its path), or run `rythmiq keygen` to create {path}",
            code="crypto.no_keyring",
        )
    keyring = Keyring.generate()
    try:
        save_keyring(keyring, path)
    except CryptoError as exc:
        if exc.code != "crypto.keyring_exists":
            raise
        # Another process created it between our check and our write: use theirs.
        return LoadedKeyring(_read_file(path), "default", path, False)
    logger.info("created a new keyring at %s (key id %s)", path, keyring.primary_id)
    return LoadedKeyring(keyring, "default", path, True)


def save_keyring(keyring: Keyring, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write ``keyring`` as JSON to ``path``, atomically and readable by the owner only.

    The file is written under a temporary name in the same directory (created 0600, fsynced)
    and then moved into place, so a crash never leaves half a keyring. A missing directory is
    created with mode 0700.

    Args:
        keyring: The keyring to write.
        path: Destination file.
        overwrite: Replace an existing file. Off by default: the keys it holds would be lost,
            and with them every object they wrap.

    Returns:
        The path written, as a string.

    Raises:
        CryptoError: ``crypto.keyring_exists`` (the file exists and ``overwrite`` is off),
            ``crypto.keyring_io`` (the file or directory cannot be written).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))

    def exists() -> NoReturn:
        raise CryptoError(
            f"{path} already exists; pass overwrite=True to replace it (its keys would be lost)",
            code="crypto.keyring_exists",
        )

    if not overwrite and os.path.lexists(path):
        exists()
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        if not os.path.isdir(directory):
            os.makedirs(os.path.dirname(directory), exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(keyring.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                _link_no_clobber(tmp, path, exists)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(directory)
    except OSError as exc:
        raise CryptoError(
            f"cannot write keyring {path}: {exc.strerror or exc}", code="crypto.keyring_io"
        ) from exc
    return path


def _link_no_clobber(tmp: str, path: str, exists: Callable[[], NoReturn]) -> None:
    # os.replace would silently clobber a keyring another process wrote a moment ago (and
    # with it the keys of everything it encrypted); a hard link fails instead.
    try:
        os.link(tmp, path)
    except FileExistsError:
        exists()
    except OSError:
        # Filesystems without hard links: best effort.
        if os.path.lexists(path):
            exists()
        os.replace(tmp, path)


def _fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _from_env(encoded: str) -> Keyring:
    try:
        text = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        text = None
    if text is None:
        raise CryptoError(
            "RYTHMIQ_KEYRING must be the base64 of the keyring JSON (e.g. base64 -w0 keyring.json)",
            code="crypto.bad_keyring",
        )
    try:
        return Keyring.from_json(text)
    except CryptoError as exc:
        raise CryptoError(f"RYTHMIQ_KEYRING: {exc.message}", code=exc.code) from None


def _read_file(path: str) -> Keyring:
    try:
        with open(path, "rb") as fh:
            if os.name == "posix":
                mode = os.fstat(fh.fileno()).st_mode & 0o777
                if mode & 0o077:
                    logger.warning(
                        "keyring %s is readable by group or others (mode %03o); run `chmod 600 %s`",
                        path,
                        mode,
                        path,
                    )
            text = fh.read(_MAX_KEYRING_FILE + 1)
    except OSError as exc:
        raise CryptoError(
            f"cannot read keyring {path}: {exc.strerror or exc}", code="crypto.keyring_io"
        ) from exc
    if len(text) > _MAX_KEYRING_FILE:
        raise CryptoError(f"{path}: too large to be a keyring", code="crypto.bad_keyring")
    try:
        return Keyring.from_json(text)
    except CryptoError as exc:
        raise CryptoError(f"{path}: {exc.message}", code=exc.code) from None
