"""What ``rythmiq process`` reads: its arguments expanded to inputs, and their document ids."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from rythmiq._errors import RythmiqError
from rythmiq._redact import redact
from rythmiq.io.source import read_source
from rythmiq.layout import validate_id
from rythmiq.storage import read_url

__all__ = ["IMAGE_EXTENSIONS", "Input", "document_id", "expand_inputs", "shown"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pdf"}
)

# An input is a local path, or a URL string that rythmiq.process reads through fsspec.
Input = Path | str


def _is_url(text: str) -> bool:
    return "://" in text


def _images_under(folder: Path) -> list[Path]:
    """Image files below ``folder``, sorted; hidden files and folders are skipped, as by glob."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def expand_inputs(args: Sequence[str]) -> list[Input]:
    """Files as given, folders recursed for images, glob patterns expanded, URLs kept.

    A path that does not exist and is no pattern is kept, so that processing reports it as
    ``input.not_found``. A pattern (or folder) that matches nothing contributes nothing.
    """
    found: list[Input] = []
    for arg in args:
        if arg.startswith("file://"):
            arg = unquote(urlparse(arg).path)
        elif _is_url(arg):
            found.append(arg)
            continue
        path = Path(arg)
        if path.is_dir():
            found.extend(_images_under(path))
        elif not path.exists() and any(c in arg for c in "*?["):
            # The shell did not expand it (quoted, or no match there): expand it here.
            for match in sorted(glob.glob(arg, recursive=True)):
                m = Path(match)
                found.extend(_images_under(m) if m.is_dir() else [m])
        else:
            found.append(path)
    return list(dict.fromkeys(found))  # drop repeats, keep order


def document_id(source: Input, *, max_bytes: int) -> str:
    """A document id from a file or URL name, or from the content hash when the name is unsafe.

    The content is read as processing reads it: a regular file only, within ``max_bytes``.
    """
    if isinstance(source, str):
        stem = PurePosixPath(unquote(urlparse(source).path)).stem
    else:
        stem = source.stem
    try:
        return validate_id(stem)
    except RythmiqError:
        pass
    if isinstance(source, str):
        data = read_url(source, max_bytes=max_bytes)
    else:
        data = read_source(source, max_bytes)[0]
    return f"doc-{hashlib.sha256(data).hexdigest()[:16]}"


def shown(source: Input) -> str:
    """An input as printed: a presigned URL's signature or a URL's credentials blanked."""
    return redact(str(source))
