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

__all__ = ["SECRET_ENV_VARS", "redact"]

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
