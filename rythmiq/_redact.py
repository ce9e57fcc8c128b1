"""Secrets never printed: the one filter every message, log line and result passes through.

Imports nothing of rythmiq, so the exception mapper (:mod:`rythmiq._errors`), the logging set-up
and the stores can all use it. :mod:`rythmiq.storage` re-exports :func:`redact` and
:data:`SECRET_ENV_VARS` under their public names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["PIECE", "SECRET_ENV_VARS", "has_credentials", "redact", "secret_spans"]

# Environment variables whose values must never reach a message, log line or result.
SECRET_ENV_VARS = (
    "SPACES_KEY",
    "SPACES_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "RYTHMIQ_KEYRING",
)

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


#: The shortest piece of a secret that is blanked wherever it appears: a message that quotes
#: part of a secret (fsspec taking ``key:secret-before-a-slash`` for a bucket name, a library
#: cutting a long value) shows no run of this many of its characters.
PIECE = 8


def secret_spans(text: str, secret: str, piece: int = PIECE) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``text`` that repeat ``piece`` or more consecutive
    characters of ``secret``, each grown as far as the text keeps following the secret,
    merged; sorted."""
    spans: list[tuple[int, int]] = []
    for offset in range(len(secret) - piece + 1):
        window = secret[offset : offset + piece]
        at = text.find(window)
        while at != -1:
            start, end, s0, s1 = at, at + piece, offset, offset + piece
            while start > 0 and s0 > 0 and text[start - 1] == secret[s0 - 1]:
                start, s0 = start - 1, s0 - 1
            while end < len(text) and s1 < len(secret) and text[end] == secret[s1]:
                end, s1 = end + 1, s1 + 1
            spans.append((start, end))
            at = text.find(window, at + 1)
    return _merged(spans)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _blank(text: str, forms: list[str]) -> str:
    """``text`` with every whole form, and every piece of one, replaced by one ``***``."""
    spans = [
        (at, at + len(form)) for form in forms for at in _find_all(text, form) if len(form) >= 4
    ]
    spans += [span for form in forms for span in secret_spans(text, form)]
    for start, end in reversed(_merged(spans)):
        text = text[:start] + "***" + text[end:]
    return text


def _find_all(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at != -1:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with secrets replaced by ``***``.

    Blanked: the value of every secret environment variable (:data:`SECRET_ENV_VARS`), also
    URL-encoded, and every piece of one that is :data:`PIECE` or more characters long;
    signatures, credentials and session tokens of presigned URLs and Authorization headers
    (``X-Amz-Signature=``, ``X-Amz-Credential=``, ``X-Amz-Security-Token=``, ``Signature=``,
    ``Credential=``, ``AWSAccessKeyId=``); and the userinfo of URLs
    (``s3://key:secret@bucket`` becomes ``s3://***@bucket``).
    """
    env = os.environ if environ is None else environ
    for name in SECRET_ENV_VARS:
        value = env.get(name)
        if value and len(value) >= 4:
            text = _blank(text, [value, quote(value, safe="")])
    text = _SIGNED_PARAM.sub(r"\1\2***", text)
    return _URL_USERINFO.sub(r"\1***@", text)


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name, password or token in its authority.

    The authority is what follows ``scheme://`` up to the first ``/``, ``?`` or ``#``. It
    holds credentials when it has an ``@``; when it has a ``:`` not followed by a decimal
    port (``key:secret/with/slashes@bucket`` puts ``key:secret`` there, and no bucket or
    host name has a ``:``); or when it has a ``:`` and an ``@`` comes later before any ``?``
    or ``#`` (``key:1234/rest-of-secret@bucket``). A URL with a port and an ``@`` in its
    path must write that ``@`` as ``%40``.
    """
    # Every "scheme://" counts: fsspec chains URLs ("simplecache::s3://...").
    return any(_authority_has_credentials(url[m.end() :]) for m in _SCHEME.finditer(url))


_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://")


def _authority_has_credentials(rest: str) -> bool:
    before_query = re.split(r"[?#]", rest, maxsplit=1)[0]
    authority = re.split(r"[/\\]", before_query, maxsplit=1)[0]
    if "@" in authority:
        return True
    if authority.startswith("["):  # an IPv6 literal, maybe with a port
        end = authority.find("]")
        tail = authority[end + 1 :] if end != -1 else ""
    else:
        tail = authority[authority.find(":") :] if ":" in authority else ""
    if not tail:
        return False
    port = tail[1:] if tail.startswith(":") else "-"
    return not port.isdigit() or "@" in before_query
