"""Envelope encryption of stored objects: AES-256-GCM, chunked STREAM-style, context-bound.

The objects are the document masters and, under ``ProcessOptions(encrypt="all")``, the
outputs that hold a document's content (normalized images, text, hOCR, searchable PDF); each
is its own object with its own data key and context. Every function here is pure over bytes
and binary streams: no paths, no environment. Keys come from a
:class:`~rythmiq.keyring.Keyring`; ``docs/encryption.md`` is the byte-level spec.

How an object is built:

* A fresh random 256-bit data key (DEK) per object encrypts the payload. The DEK is wrapped
  with AES-256-GCM by the keyring's primary key; the header names that key's id.
* The payload is cut into chunks of ``chunk_size`` plaintext bytes (64 KiB by default), each
  sealed on its own with nonce ``prefix(7) || counter(4, big-endian) || final(1)``. The final
  flag and the counter make truncation, reordering, dropping and appending detectable; an
  empty plaintext is one empty final chunk.
* The :class:`EncryptionContext` (user id, document id, object key) is bound into the key
  wrap and into every chunk, so an object copied to another key, or claimed for another user
  or document, does not decrypt.
* The chunks authenticate the header's fixed fields and the context, but not the wrapped key
  or its id: :func:`rewrap` re-wraps the DEK under a new primary key and leaves every payload
  byte as it was. The wrap authenticates the whole header.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rythmiq._errors import CryptoError, OptionsError
from rythmiq._public import public
from rythmiq.keyring import KEY_ID_PATTERN, KEY_SIZE, Keyring

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "TAG_SIZE",
    "EncryptionContext",
    "HeaderInfo",
    "ciphertext_size",
    "decrypt",
    "decrypt_stream",
    "encrypt",
    "encrypt_stream",
    "plaintext_size",
    "read_header",
    "rewrap",
    "rewrap_header",
]

MAGIC = b"\x89RYTHMIQ"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 64 * 1024
# Caps what a hostile header can make the reader allocate per chunk.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
WRAP_NONCE_SIZE = 12
MAX_KEY_ID_SIZE = 64

# magic(8) version(1) flags(1) chunk_size(4) nonce_prefix(7): authenticated by every chunk.
_FIXED = struct.Struct(">8sBBI7s")
_FIXED_SIZE = _FIXED.size  # 21
_PREAMBLE_SIZE = _FIXED_SIZE + 1  # ... key_id_len(1)
_WRAPPED_SIZE = KEY_SIZE + TAG_SIZE
# Header bytes besides the key id: 22 + 12 + 48.
_HEADER_BASE_SIZE = _PREAMBLE_SIZE + WRAP_NONCE_SIZE + _WRAPPED_SIZE
MAX_HEADER_SIZE = _HEADER_BASE_SIZE + MAX_KEY_ID_SIZE
# The chunk counter is 4 bytes; the next value would repeat a nonce.
_MAX_CHUNKS = 1 << 32

_WRAP_LABEL = b"rythmiq.crypto.v1/wrap\x00"
_PAYLOAD_LABEL = b"rythmiq.crypto.v1/payload\x00"

_AUTH_FAILED = (
    "authentication failed: the data was modified, or the key or ids (user_id, document_id, "
    "object key) are not the ones it was encrypted for"
)


@public
@dataclass(frozen=True)
class EncryptionContext:
    """What an object is, bound into its encryption: decrypting needs the same three values.

    rythmiq's store stage builds one per stored object, the master or an output, from the
    document's ids and that object's own key: an output's key names its kind, job and page,
    so one artifact's ciphertext does not decrypt in another's place.

    Attributes:
        user_id: Owner of the document.
        document_id: The document the object belongs to.
        object_key: The storage key the object lives at, exactly as stored. A copy at another
            key does not decrypt.

    Raises:
        OptionsError: A field is not a non-empty string, or is not encodable as UTF-8.
    """

    user_id: str
    document_id: str
    object_key: str

    def __post_init__(self) -> None:
        for name in ("user_id", "document_id", "object_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise OptionsError(f"{name} must be a non-empty string, got {value!r}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise OptionsError(f"{name} is not valid Unicode: {value!r}") from None

    def encode(self) -> bytes:
        """Unambiguous encoding: each field as a 4-byte big-endian length and UTF-8 bytes."""
        parts = []
        for value in (self.user_id, self.document_id, self.object_key):
            raw = value.encode("utf-8")
            parts.append(struct.pack(">I", len(raw)) + raw)
        return b"".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class HeaderInfo:
    """The public fields of an object's header, readable without any key.

    Attributes:
        version: Format version (:data:`FORMAT_VERSION`).
        key_id: Id of the keyring key that wraps the object's data key.
        chunk_size: Plaintext bytes per chunk; every chunk but the last is full.
        header_length: Bytes before the first chunk.
    """

    version: int
    key_id: str
    chunk_size: int
    header_length: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class _Header:
    info: HeaderInfo
    fixed: bytes  # the 21 bytes every chunk authenticates
    nonce_prefix: bytes
    wrap_nonce: bytes
    wrapped_key: bytes


# -- header ----------------------------------------------------------------------------------


def _bad_header(message: str) -> CryptoError:
    return CryptoError(message, code="crypto.bad_header")


def _truncated(message: str) -> CryptoError:
    return CryptoError(message, code="crypto.truncated")


def _auth_failed(where: str) -> CryptoError:
    return CryptoError(f"{_AUTH_FAILED} ({where})", code="crypto.auth_failed")


def _parse_header(buf: bytes | memoryview) -> _Header:
    """Parse a header from the start of ``buf``, which may hold more (the payload)."""
    if len(buf) < len(MAGIC):
        if buf and MAGIC.startswith(buf):
            raise _truncated(f"the data ends inside the header ({len(buf)} bytes)")
        raise _bad_header("not an encrypted rythmiq object (too short for the header)")
    if buf[: len(MAGIC)] != MAGIC:
        raise _bad_header("not an encrypted rythmiq object (unknown magic bytes)")
    if len(buf) > len(MAGIC) and buf[len(MAGIC)] != FORMAT_VERSION:
        raise _bad_header(
            f"unsupported encryption format version {buf[len(MAGIC)]} "
            f"(this rythmiq reads version {FORMAT_VERSION}); upgrade rythmiq"
        )
    if len(buf) < _PREAMBLE_SIZE:
        raise _truncated(f"the data ends inside the header ({len(buf)} bytes)")
    _, version, flags, chunk_size, nonce_prefix = _FIXED.unpack_from(buf)
    if flags != 0:
        raise _bad_header(f"unknown header flags {flags:#04x}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise _bad_header(f"chunk size {chunk_size} is outside 1..{MAX_CHUNK_SIZE}")
    id_len = buf[_FIXED_SIZE]
    if not 1 <= id_len <= MAX_KEY_ID_SIZE:
        raise _bad_header(f"key id length {id_len} is outside 1..{MAX_KEY_ID_SIZE}")
    length = _HEADER_BASE_SIZE + id_len
    if len(buf) < length:
        raise _truncated(f"the data ends inside the header ({len(buf)} of {length} bytes)")
    raw_id = bytes(buf[_PREAMBLE_SIZE : _PREAMBLE_SIZE + id_len])
    key_id = raw_id.decode("ascii", errors="replace")
    if KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise _bad_header("the header's key id is malformed")
    at = _PREAMBLE_SIZE + id_len
    return _Header(
        info=HeaderInfo(version, key_id, chunk_size, length),
        fixed=bytes(buf[:_FIXED_SIZE]),
        nonce_prefix=nonce_prefix,
        wrap_nonce=bytes(buf[at : at + WRAP_NONCE_SIZE]),
        wrapped_key=bytes(buf[at + WRAP_NONCE_SIZE : length]),
    )


def _read_header_from(src: BinaryIO) -> _Header:
    """Read exactly the header from ``src``, leaving it at the first chunk."""
    head = _read_exact(src, _PREAMBLE_SIZE)
    if len(head) < _PREAMBLE_SIZE:
        _parse_header(head)  # raises bad_header or truncated
    rest = _read_exact(src, _HEADER_BASE_SIZE - _PREAMBLE_SIZE + head[_FIXED_SIZE])
    return _parse_header(head + rest)


def _wrap_aad(header_prefix: bytes, context: EncryptionContext) -> bytes:
    # header_prefix: fixed fields, key id length and key id (everything before the wrap nonce).
    return _WRAP_LABEL + header_prefix + context.encode()


def _payload_aad(fixed: bytes, context: EncryptionContext) -> bytes:
    # Leaves out the key id and wrapped key, so that a rewrap keeps every chunk valid.
    return hashlib.sha256(_PAYLOAD_LABEL + fixed + context.encode()).digest()


def _wrap(fixed: bytes, keyring: Keyring, dek: bytes, context: EncryptionContext) -> bytes:
    """A full header for ``fixed``, with ``dek`` wrapped under the primary key."""
    key_id = keyring.primary_id
    raw_id = key_id.encode("ascii")
    prefix = fixed + bytes([len(raw_id)]) + raw_id
    nonce = os.urandom(WRAP_NONCE_SIZE)
    wrapped = AESGCM(keyring.key(key_id)).encrypt(nonce, dek, _wrap_aad(prefix, context))
    return prefix + nonce + wrapped


def _unwrap(header: _Header, keyring: Keyring, context: EncryptionContext) -> bytes:
    kek = keyring.key(header.info.key_id)
    raw_id = header.info.key_id.encode("ascii")
    prefix = header.fixed + bytes([len(raw_id)]) + raw_id
    try:
        return AESGCM(kek).decrypt(
            header.wrap_nonce, header.wrapped_key, _wrap_aad(prefix, context)
        )
    except InvalidTag:
        raise _auth_failed("data key") from None


def _check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise OptionsError(f"chunk_size must be an integer, got {chunk_size!r}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise OptionsError(f"chunk_size must be within 1..{MAX_CHUNK_SIZE}, got {chunk_size}")


def _new_object(
    keyring: Keyring, context: EncryptionContext, chunk_size: int
) -> tuple[bytes, AESGCM, bytes, bytes]:
    """``(header, payload cipher, nonce prefix, chunk AAD)`` of a new object."""
    _check_chunk_size(chunk_size)
    if not isinstance(context, EncryptionContext):
        raise OptionsError(f"context must be an EncryptionContext, got {type(context).__name__}")
    nonce_prefix = os.urandom(NONCE_PREFIX_SIZE)
    fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, 0, chunk_size, nonce_prefix)
    dek = AESGCM.generate_key(bit_length=256)
    header = _wrap(fixed, keyring, dek, context)
    return header, AESGCM(dek), nonce_prefix, _payload_aad(fixed, context)


def _open_object(
    header: _Header, keyring: Keyring, context: EncryptionContext
) -> tuple[AESGCM, bytes]:
    if not isinstance(context, EncryptionContext):
        raise OptionsError(f"context must be an EncryptionContext, got {type(context).__name__}")
    dek = _unwrap(header, keyring, context)
    return AESGCM(dek), _payload_aad(header.fixed, context)


# -- chunks ----------------------------------------------------------------------------------


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise CryptoError(
            f"too many chunks for one object (more than {_MAX_CHUNKS}); use a larger chunk_size",
            code="crypto.too_large",
        )
    return prefix + struct.pack(">I?", counter, final)


def _seal(
    aes: AESGCM, prefix: bytes, aad: bytes, pieces: Iterator[tuple[bytes | memoryview, bool]]
) -> Iterator[bytes]:
    for counter, (plain, final) in enumerate(pieces):
        yield aes.encrypt(_nonce(prefix, counter, final), plain, aad)


def _open(
    aes: AESGCM,
    prefix: bytes,
    aad: bytes,
    chunk_size: int,
    pieces: Iterator[tuple[bytes | memoryview, bool]],
) -> Iterator[bytes]:
    """Decrypt ``(sealed chunk, is last)`` pairs, telling truncation from tampering."""
    full = chunk_size + TAG_SIZE
    for counter, (sealed, last) in enumerate(pieces):
        if last and len(sealed) < TAG_SIZE:
            # Every chunk, even an empty final one, carries a tag: the data stops short.
            raise _truncated(f"the data ends before its final chunk (chunk {counter})")
        try:
            plain = aes.decrypt(_nonce(prefix, counter, last), sealed, aad)
        except InvalidTag:
            if last and len(sealed) == full:
                try:
                    aes.decrypt(_nonce(prefix, counter, False), sealed, aad)
                except InvalidTag:
                    pass
                else:
                    raise _truncated(
                        f"the data ends after chunk {counter}, before its final chunk"
                    ) from None
            raise _auth_failed(f"chunk {counter}") from None
        if last and not plain and counter:
            # Only an empty object has an empty final chunk; an encoder never writes this.
            raise _auth_failed(f"chunk {counter}: empty final chunk")
        yield plain


def _read_exact(src: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes; fewer only at end of stream (raw streams and pipes read short)."""
    data = src.read(n)
    if data is None or len(data) == n or not data:
        return data or b""
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _write_all(dst: BinaryIO, data: bytes) -> None:
    n = dst.write(data)
    if n is None or n >= len(data):
        return
    view = memoryview(data)
    while n < len(data):  # a raw stream may write short
        wrote = dst.write(view[n:])
        n += len(data) - n if wrote is None else wrote


def _stream_pieces(src: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """``(piece, is last)`` of ``size`` bytes each, looking one piece ahead."""
    current = _read_exact(src, size)
    while True:
        following = _read_exact(src, size) if len(current) == size else b""
        yield current, not following
        if not following:
            return
        current = following


def _buffer_pieces(view: memoryview, size: int) -> Iterator[tuple[memoryview, bool]]:
    # Always at least one piece, so that an empty payload is one (empty) final chunk.
    start = 0
    while True:
        end = start + size
        yield view[start:end], end >= len(view)
        if end >= len(view):
            return
        start = end


# -- public API ------------------------------------------------------------------------------


def encrypt(
    data: bytes,
    keyring: Keyring,
    context: EncryptionContext,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Encrypt ``data`` for ``context`` with a fresh data key wrapped by the primary key.

    Args:
        data: The plaintext (any bytes-like object).
        keyring: Its primary key wraps the data key.
        context: User id, document id and object key the object is bound to.
        chunk_size: Plaintext bytes per chunk; the default suits every real use.

    Returns:
        The header followed by the sealed chunks; :func:`ciphertext_size` of ``len(data)``.

    Raises:
        OptionsError: ``chunk_size`` or ``context`` is invalid.
    """
    header, aes, prefix, aad = _new_object(keyring, context, chunk_size)
    pieces = _buffer_pieces(memoryview(data).cast("B"), chunk_size)
    # A BytesIO grows in place and hands its buffer over without a copy: about twice as fast
    # on large objects as joining a list of chunks (which holds every chunk at once).
    out = io.BytesIO()
    out.write(header)
    for sealed in _seal(aes, prefix, aad, pieces):
        out.write(sealed)
    return out.getvalue()


def decrypt(blob: bytes, keyring: Keyring, context: EncryptionContext) -> bytes:
    """Decrypt and verify an object made by :func:`encrypt` or :func:`encrypt_stream`.

    Returns only after every chunk has been verified, so the result is never partial.

    Args:
        blob: The whole object (any bytes-like object).
        keyring: Must hold the key id named in the header.
        context: The same user id, document id and object key it was encrypted for.

    Raises:
        CryptoError: ``crypto.bad_header``, ``crypto.unknown_key``, ``crypto.auth_failed``
            or ``crypto.truncated``.
    """
    view = memoryview(blob).cast("B")
    header = _parse_header(view)
    aes, aad = _open_object(header, keyring, context)
    size = header.info.chunk_size + TAG_SIZE
    pieces = _buffer_pieces(view[header.info.header_length :], size)
    out = io.BytesIO()
    for plain in _open(aes, header.nonce_prefix, aad, header.info.chunk_size, pieces):
        out.write(plain)
    return out.getvalue()


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    keyring: Keyring,
    context: EncryptionContext,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> int:
    """Encrypt ``src`` to ``dst`` chunk by chunk, in constant memory (about three chunks).

    The output is byte-compatible with :func:`encrypt`; either decrypt function reads it.

    Args:
        src: Readable binary stream, read to its end.
        dst: Writable binary stream.
        keyring: Its primary key wraps the data key.
        context: User id, document id and object key the object is bound to.
        chunk_size: Plaintext bytes per chunk.

    Returns:
        The number of bytes written to ``dst``.

    Raises:
        OptionsError: ``chunk_size`` or ``context`` is invalid.
        CryptoError: ``crypto.too_large`` past 2**32 chunks (256 TiB at the default size).
    """
    header, aes, prefix, aad = _new_object(keyring, context, chunk_size)
    _write_all(dst, header)
    written = len(header)
    for sealed in _seal(aes, prefix, aad, _stream_pieces(src, chunk_size)):
        _write_all(dst, sealed)
        written += len(sealed)
    return written


def decrypt_stream(
    src: BinaryIO, dst: BinaryIO, keyring: Keyring, context: EncryptionContext
) -> int:
    """Decrypt ``src`` to ``dst`` chunk by chunk, in constant memory.

    Each chunk is verified before it is written, but the object as a whole is only known to be
    complete and untampered when this returns: on any error, ``dst`` already holds the
    plaintext of the chunks before the bad one, and **the caller must discard it** (write to
    a temporary name and move it into place only on success). Use :func:`decrypt` to get
    nothing unless everything verifies.

    Args:
        src: Readable binary stream positioned at the start of the object.
        dst: Writable binary stream for the plaintext.
        keyring: Must hold the key id named in the header.
        context: The same user id, document id and object key it was encrypted for.

    Returns:
        The number of plaintext bytes written.

    Raises:
        CryptoError: ``crypto.bad_header``, ``crypto.unknown_key``, ``crypto.auth_failed``
            or ``crypto.truncated``.
    """
    header = _read_header_from(src)
    aes, aad = _open_object(header, keyring, context)
    chunk_size = header.info.chunk_size
    pieces = _stream_pieces(src, chunk_size + TAG_SIZE)
    written = 0
    for plain in _open(aes, header.nonce_prefix, aad, chunk_size, pieces):
        _write_all(dst, plain)
        written += len(plain)
    return written


def read_header(blob_or_prefix: bytes) -> HeaderInfo:
    """The public header fields of an object, without any key and without verifying them.

    Args:
        blob_or_prefix: The object, or at least its first :data:`MAX_HEADER_SIZE` bytes
            (``header_length`` bytes are enough).

    Raises:
        CryptoError: ``crypto.bad_header`` (not this format, or a version this rythmiq does
            not read) or ``crypto.truncated`` (the prefix is too short).
    """
    return _parse_header(memoryview(blob_or_prefix).cast("B")).info


def rewrap(blob: bytes, keyring: Keyring, context: EncryptionContext) -> bytes:
    """Re-wrap an object's data key under the keyring's current primary key.

    The data key is unwrapped with whichever key the header names (it must still be in the
    keyring) and wrapped again, with a fresh nonce, under ``keyring.primary_id``. Only the
    header changes: every byte after it is returned as it was. The payload is not read, so a
    corrupted payload is only reported when the object is decrypted.

    Args:
        blob: The whole object.
        keyring: Holds the key the object is wrapped with and the new primary key.
        context: The user id, document id and object key it was encrypted for.

    Raises:
        CryptoError: ``crypto.bad_header``, ``crypto.unknown_key``, ``crypto.auth_failed``
            (the wrap does not verify: wrong key bytes, context or a modified header) or
            ``crypto.truncated``.
    """
    view = memoryview(blob).cast("B")
    header = _parse_header(view)
    return _rewrap(header, keyring, context) + view[header.info.header_length :].tobytes()


def rewrap_header(src: BinaryIO, keyring: Keyring, context: EncryptionContext) -> tuple[bytes, int]:
    """Streaming :func:`rewrap`: read the header from ``src`` and return a re-wrapped one.

    ``src`` is left at the first payload byte, so ``dst.write(new_header)`` followed by
    copying the rest of ``src`` gives the re-wrapped object.

    Returns:
        ``(new_header, old_header_length)``; the payload starts at ``old_header_length``
        in the original object.

    Raises:
        CryptoError: As :func:`rewrap`.
    """
    header = _read_header_from(src)
    return _rewrap(header, keyring, context), header.info.header_length


def _rewrap(header: _Header, keyring: Keyring, context: EncryptionContext) -> bytes:
    if not isinstance(context, EncryptionContext):
        raise OptionsError(f"context must be an EncryptionContext, got {type(context).__name__}")
    dek = _unwrap(header, keyring, context)
    return _wrap(header.fixed, keyring, dek, context)


def ciphertext_size(
    plaintext_size: int, *, key_id: str, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> int:
    """Bytes of the object :func:`encrypt` makes from ``plaintext_size`` bytes.

    Header (``82 + len(key_id)``) plus a 16-byte tag per chunk; an empty plaintext is one
    chunk.
    """
    _check_chunk_size(chunk_size)
    if plaintext_size < 0:
        raise OptionsError(f"plaintext_size must be >= 0, got {plaintext_size}")
    chunks = max(1, -(-plaintext_size // chunk_size))
    return _HEADER_BASE_SIZE + len(key_id.encode("ascii")) + plaintext_size + chunks * TAG_SIZE


def plaintext_size(ciphertext_size: int, header: HeaderInfo) -> int:
    """Plaintext bytes of a well-formed object of ``ciphertext_size`` bytes.

    Computed from the length alone, without verifying anything.

    Raises:
        CryptoError: ``crypto.truncated`` when no well-formed object has that size.
    """
    payload = ciphertext_size - header.header_length
    full = header.chunk_size + TAG_SIZE
    chunks = max(1, -(-payload // full))
    if payload - (chunks - 1) * full < TAG_SIZE:
        raise _truncated(f"{ciphertext_size} bytes is too short for an object with this header")
    return payload - chunks * TAG_SIZE
