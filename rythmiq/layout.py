"""Artifact layout: id validation and the functions that build every object key.

Pure: nothing here touches a store. Every check runs before any I/O, so a hostile id or key
is refused with :class:`~rythmiq.StorageError` (``storage.invalid_key``) and nothing is
read or written.

Layout (keys are relative to the store's root URL)::

    master/{user_id}/{document_id}/master.{ext}.enc   encrypted full-resolution input
    output/{user_id}/{job_id}/normalized.jpg           normalized image
    output/{user_id}/{job_id}/preview.jpg              preview
    output/{user_id}/{job_id}/text.txt                 OCR text (when OCR ran; output "txt")
    output/{user_id}/{job_id}/text.hocr                hOCR (output "hocr")
    output/{user_id}/{job_id}/searchable.pdf           searchable PDF (output "pdf")
    output/{user_id}/{job_id}/result.json              result; written last = completion marker

Under an encryption policy that covers them (``ProcessOptions.encrypt``, see
:data:`ENCRYPT_POLICIES`), the normalized images, the preview, the text, the hOCR and the PDF
are stored encrypted, like the master, at their name with ``.enc`` added:
``normalized.jpg.enc``, ``text.txt.enc``... ``result.json`` is never encrypted.

A document with several pages (a PDF, a multi-page TIFF) has one normalized image and
preview per page, ``pages/0001/normalized.jpg``, ``pages/0001/preview.jpg``... (numbered
from 1, four digits), and one text, hOCR and PDF for the whole document.

A job with several documents (a worker payload with a ``documents`` list) puts each
document's outputs in ``output/{user_id}/{job_id}/{document_id}/`` (with its own
``result.json``) and writes the job result at ``output/{user_id}/{job_id}/result.json`` last.

``rythmiq payload split`` writes each job payload as ``{job_id}.json`` in the folder it is given.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import unquote

from rythmiq._errors import OptionsError, StorageError
from rythmiq._public import public

__all__ = [
    "ARTIFACT_KINDS",
    "ENCRYPT_POLICIES",
    "ID_PATTERN",
    "OUTPUT_FORMATS",
    "RESERVED_DOCUMENT_IDS",
    "ArtifactKind",
    "EncryptPolicy",
    "Ids",
    "OutputFormat",
    "artifact_key",
    "encrypted_kinds",
    "is_output_file",
    "job_payload_key",
    "master_ext_of",
    "master_extension",
    "master_folder",
    "output_folder",
    "output_name",
    "validate_document_id",
    "validate_encrypted_key",
    "validate_id",
    "validate_input_key",
]

# ASCII only: this alone rules out Unicode look-alikes of "." and "/" (U+2024, U+2215,
# U+FF0E, U+FF0F...), full-width forms, NUL, backslashes, "%" escapes and whitespace.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
# One segment of an input key: the id alphabet, up to 255 characters.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", re.ASCII)
_EXT = re.compile(r"[a-z0-9]{1,8}", re.ASCII)
_MAX_KEY = 1024

ArtifactKind = Literal["master", "normalized", "preview", "text", "hocr", "pdf", "result"]
ARTIFACT_KINDS: tuple[ArtifactKind, ...] = (
    "master",
    "normalized",
    "preview",
    "text",
    "hocr",
    "pdf",
    "result",
)
MAX_PAGE_NUMBER = 9999
# Document outputs a store can receive besides the images: the plain-text sidecar
# (text.txt), hOCR (text.hocr) and a searchable PDF (searchable.pdf).
OutputFormat = Literal["txt", "hocr", "pdf"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)

EncryptPolicy = Literal["master", "all", "all+preview"]
#: What a store receives encrypted: ``"master"`` (the default) only the master; ``"all"``
#: also every artifact that holds the document's content (the normalized images, the text,
#: the hOCR and the searchable PDF); ``"all+preview"`` the preview as well.
ENCRYPT_POLICIES: tuple[EncryptPolicy, ...] = ("master", "all", "all+preview")
_ENCRYPTED_KINDS: dict[str, frozenset[ArtifactKind]] = {
    "master": frozenset({"master"}),
    "all": frozenset({"master", "normalized", "text", "hocr", "pdf"}),
    "all+preview": frozenset({"master", "normalized", "preview", "text", "hocr", "pdf"}),
}
# The suffix of every encrypted object's key.
_ENC = ".enc"


# The file name of each artifact in its folder (the master's is master.{ext}.enc).
_FILE_NAMES: dict[str, str] = {
    "normalized": "normalized.jpg",
    "preview": "preview.jpg",
    "text": "text.txt",
    "hocr": "text.hocr",
    "pdf": "searchable.pdf",
    "result": "result.json",
}
#: Names a document id may not have, in any letter case: a job's document folders sit next
#: to the job's own files (``result.json``, the completion marker) and, for one document,
#: its images, outputs (in clear, or encrypted as ``NAME.enc``) and ``pages/`` folder.
RESERVED_DOCUMENT_IDS = frozenset(
    {
        *_FILE_NAMES.values(),
        *(name + _ENC for kind, name in _FILE_NAMES.items() if kind != "result"),
        "pages",
    }
)


def encrypted_kinds(policy: str) -> frozenset[ArtifactKind]:
    """The artifact kinds a store receives encrypted under ``policy`` (one of
    :data:`ENCRYPT_POLICIES`); the master is in every one, ``"result"`` in none.

    Raises:
        OptionsError: ``policy`` is not one of :data:`ENCRYPT_POLICIES`.
    """
    kinds = _ENCRYPTED_KINDS.get(policy) if isinstance(policy, str) else None
    if kinds is None:
        raise OptionsError(f"encrypt must be one of {ENCRYPT_POLICIES}, got {policy!r}")
    return kinds


def _invalid(what: str, value: str, why: str) -> StorageError:
    # repr() keeps control characters and look-alikes visible, and bounds the length.
    shown = repr(value[:80]) + ("..." if len(value) > 80 else "")
    return StorageError(f"invalid {what} {shown}: {why}", code="storage.invalid_key")


def validate_id(value: object, name: str = "id") -> str:
    """Return ``value`` if it is a safe id, else raise ``StorageError(storage.invalid_key)``.

    An id is 1-128 ASCII characters from ``[A-Za-z0-9._-]``, starting with a letter or
    digit, with no ``..`` and no trailing dot.
    """
    if not isinstance(value, str):
        raise StorageError(
            f"{name} must be a string, got {type(value).__name__}", code="storage.invalid_key"
        )
    if not ID_PATTERN.fullmatch(value):
        raise _invalid(
            name,
            value,
            "use 1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
        )
    if ".." in value:
        raise _invalid(name, value, "'..' is not allowed")
    if value.endswith("."):
        raise _invalid(name, value, "a trailing dot is not allowed")
    return value


def validate_document_id(value: object) -> str:
    """:func:`validate_id` for a document id, which also may not be one of
    :data:`RESERVED_DOCUMENT_IDS` (in any letter case): it names a folder next to them."""
    document_id = validate_id(value, "document_id")
    if document_id.lower() in RESERVED_DOCUMENT_IDS:
        raise _invalid(
            "document_id",
            document_id,
            f"it is reserved: the layout has a file or folder of that name next to each "
            f"document's folder ({', '.join(sorted(RESERVED_DOCUMENT_IDS))})",
        )
    return document_id


@public
@dataclass(frozen=True)
class Ids:
    """The ids that place a document's artifacts, validated on construction.

    Attributes:
        user_id: Owner of the document.
        job_id: The job (one processing run) that produced the outputs.
        document_id: The document; the encrypted master is keyed by it, not by the job.
    """

    user_id: str
    job_id: str
    document_id: str

    def __post_init__(self) -> None:
        validate_id(self.user_id, "user_id")
        validate_id(self.job_id, "job_id")
        validate_document_id(self.document_id)

    def to_dict(self) -> dict[str, str]:
        """``{"user_id", "job_id", "document_id"}``."""
        return {"user_id": self.user_id, "job_id": self.job_id, "document_id": self.document_id}


def artifact_key(
    kind: ArtifactKind,
    ids: Ids,
    *,
    ext: str | None = None,
    per_document: bool = False,
    page: int | None = None,
    encrypted: bool = False,
) -> str:
    """The object key of one artifact. Every key rythmiq writes comes from here.

    Args:
        kind: ``"master"``, ``"normalized"``, ``"preview"``, ``"text"``, ``"hocr"``,
            ``"pdf"`` or ``"result"``.
        ids: Validated :class:`Ids`.
        ext: For ``"master"`` only: the original file's extension (``"jpg"``, ``"png"``...).
        per_document: Put the outputs in a folder of their own,
            ``output/{user_id}/{job_id}/{document_id}/``, as a job with several documents
            does; ``output/{user_id}/{job_id}/result.json`` is then the job's result. The
            master's key never depends on the job.
        page: For ``"normalized"`` and ``"preview"`` of a multi-page document: the page
            number, 1 to 9999, which puts the file under ``pages/NNNN/``.
        encrypted: The key of the artifact stored encrypted: its name with ``.enc`` added
            (``text.txt.enc``). The master is always encrypted; ``"result"`` never is.
    """
    if not isinstance(ids, Ids):
        raise StorageError("ids must be an Ids instance", code="storage.invalid_key")
    if kind == "master":
        if ext is None or not _EXT.fullmatch(ext):
            raise _invalid("extension", str(ext), "use 1-8 lowercase letters or digits")
        return f"{master_folder(ids)}master.{ext}.enc"
    if ext is not None:
        raise StorageError(f"ext is only for the master, not {kind!r}", code="storage.invalid_key")
    names = _FILE_NAMES
    if kind not in names:
        raise StorageError(
            f"unknown artifact kind {kind!r}; expected one of {ARTIFACT_KINDS}",
            code="storage.invalid_key",
        )
    folder = output_folder(ids, per_document=per_document).rstrip("/")
    if page is not None:
        if kind not in ("normalized", "preview"):
            raise StorageError(
                f"page is only for page images, not {kind!r}", code="storage.invalid_key"
            )
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE_NUMBER:
            raise StorageError(
                f"page must be an integer 1-{MAX_PAGE_NUMBER}, got {page!r}",
                code="storage.invalid_key",
            )
        folder += f"/pages/{page:04d}"
    if encrypted and kind == "result":
        raise StorageError("result.json is never encrypted", code="storage.invalid_key")
    return f"{folder}/{names[kind]}{_ENC if encrypted else ''}"


def output_folder(ids: Ids, *, per_document: bool = False) -> str:
    """The folder (ending in ``/``) of a document's outputs: ``output/{user_id}/{job_id}/``,
    or with ``per_document`` ``output/{user_id}/{job_id}/{document_id}/``."""
    folder = f"output/{ids.user_id}/{ids.job_id}/"
    return folder + f"{ids.document_id}/" if per_document else folder


_OUTPUT_NAME = (
    r"(?:(?:pages/[0-9]{4}/)?(?:normalized|preview)\.jpg|text\.txt|text\.hocr|searchable\.pdf)"
)
_OUTPUT_FILE = re.compile(_OUTPUT_NAME + r"(?:\.enc)?")
_ENCRYPTED_OUTPUT = re.compile(_OUTPUT_NAME + r"\.enc")


def is_output_file(relative: str) -> bool:
    """Whether ``relative`` (a key relative to an :func:`output_folder`) is a file the layout
    puts there for a document, other than ``result.json``: its images (per page too), text,
    hOCR or searchable PDF, in clear or encrypted (``.enc``)."""
    return _OUTPUT_FILE.fullmatch(relative) is not None


# Any valid ids: an output's place inside its folder does not depend on them.
_ANY_IDS = Ids("user", "job", "document")


def output_name(kind: ArtifactKind, *, page: int | None = None) -> str:
    """The key of a document output relative to its folder, as :func:`artifact_key` places it.

    The folder is ``output/{user_id}/{job_id}/`` (or the document's own folder in a job of
    several documents); the name is ``normalized.jpg``, ``pages/0001/normalized.jpg``,
    ``text.hocr``... The hOCR of a document names its page images by it.

    Raises:
        StorageError: ``storage.invalid_key`` for the master (it is not in an output folder),
            an unknown kind or a bad page, as :func:`artifact_key` does.
    """
    if kind == "master":
        raise StorageError(
            "the master is not in an output folder; use artifact_key", code="storage.invalid_key"
        )
    return artifact_key(kind, _ANY_IDS, page=page).removeprefix(output_folder(_ANY_IDS))


def job_payload_key(job_id: str) -> str:
    """The key of a job payload in the folder ``rythmiq payload split`` writes: ``{job_id}.json``.

    Raises:
        StorageError: ``storage.invalid_key`` when ``job_id`` is not a safe id.
    """
    return f"{validate_id(job_id, 'job_id')}.json"


# Pillow format name -> master file extension.
_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "TIFF": "tif",
    "GIF": "gif",
    "BMP": "bmp",
    "WEBP": "webp",
    "PPM": "ppm",
    "JPEG2000": "jp2",
    "PDF": "pdf",
}


def master_folder(ids: Ids) -> str:
    """The folder (key prefix, ending in ``/``) that holds a document's master."""
    if not isinstance(ids, Ids):
        raise StorageError("ids must be an Ids instance", code="storage.invalid_key")
    return f"master/{ids.user_id}/{ids.document_id}/"


_MASTER_NAME = re.compile(r"master\.([a-z0-9]{1,8})\.enc", re.ASCII)


def master_ext_of(key: str) -> str | None:
    """The original file's extension in a master's key (``"png"``), or None for other keys."""
    m = _MASTER_NAME.fullmatch(key.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def master_extension(image_format: str | None) -> str:
    """The master's extension for a Pillow format name (``"bin"`` when unknown)."""
    return _EXTENSIONS.get(image_format or "", "bin")


def validate_input_key(key: object, *, prefix: str = "input/") -> str:
    """Return ``key`` if it is a safe object key under ``prefix``, else raise.

    Rejected, before any I/O: non-strings, empty or overlong keys, absolute paths,
    backslashes, NUL and other control characters, any ``%`` (percent-encoded or doubly
    encoded dots and slashes), non-ASCII characters (Unicode look-alikes of ``.`` and ``/``,
    full-width forms), empty segments (``a//b``, trailing ``/``), ``.`` and ``..`` segments,
    segments ending in a dot, and keys outside ``prefix``.
    """
    return _checked_key(key, prefix, "input key")


def _checked_key(key: object, prefix: str, what: str) -> str:
    """``key`` if it is a safe object key under ``prefix`` (see :func:`validate_input_key`);
    ``what`` names it in the error."""
    if not isinstance(key, str):
        raise StorageError(
            f"{what} must be a string, got {type(key).__name__}", code="storage.invalid_key"
        )
    if not prefix.endswith("/") or not prefix.strip("/"):
        raise StorageError(
            f"prefix must look like 'input/', got {prefix!r}", code="storage.invalid_key"
        )
    if not key or len(key) > _MAX_KEY:
        raise _invalid(what, key, f"must be 1-{_MAX_KEY} characters")
    if not key.isascii() or unicodedata.normalize("NFKC", key) != key:
        raise _invalid(what, key, "only ASCII characters are allowed")
    if "%" in key or unquote(key) != key:
        raise _invalid(what, key, "percent-encoding is not allowed")
    if "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise _invalid(what, key, "backslashes and control characters are not allowed")
    if key.startswith("/"):
        raise _invalid(what, key, "absolute paths are not allowed")
    if not key.startswith(prefix):
        raise _invalid(what, key, f"must be under {prefix!r}")
    for segment in key.split("/"):
        if not segment:
            raise _invalid(what, key, "empty path segments are not allowed")
        if segment in (".", "..") or ".." in segment:
            raise _invalid(what, key, "'.' and '..' are not allowed")
        if segment.endswith("."):
            raise _invalid(what, key, "a segment may not end with a dot")
        if not _SEGMENT.fullmatch(segment):
            raise _invalid(what, key, "segments use A-Z a-z 0-9 . _ - only")
    return key


def validate_encrypted_key(key: object, *, user_id: str, document_id: str) -> str:
    """Return ``key`` if it is the key of one of the encrypted artifacts the layout stores
    for ``user_id``'s document ``document_id``, else raise ``StorageError``
    (``storage.invalid_key``), before any I/O.

    Those keys are the master, ``master/{user_id}/{document_id}/master.{ext}.enc``, and,
    under an encryption policy that covers them, the outputs of any job:
    ``output/{user_id}/{job_id}/NAME.enc`` (or ``.../{job_id}/{document_id}/NAME.enc`` in a
    job of several documents), where ``NAME`` is ``normalized.jpg``, ``preview.jpg`` (either
    also under ``pages/NNNN/``), ``text.txt``, ``text.hocr`` or ``searchable.pdf``. The key
    is checked as :func:`validate_input_key` checks one first.
    """
    validate_id(user_id, "user_id")
    validate_document_id(document_id)
    prefix = "master/" if isinstance(key, str) and key.startswith("master/") else "output/"
    checked = _checked_key(key, prefix, "key")
    parts = checked.split("/")
    if prefix == "master/":
        ok = (
            len(parts) == 4
            and parts[1:3] == [user_id, document_id]
            and master_ext_of(checked) is not None
        )
    else:
        # The output's name in its folder: the job's (one document), or the document's own.
        rest = "/".join(parts[3:])
        names = [rest]
        if rest.startswith(f"{document_id}/"):
            names.append(rest[len(document_id) + 1 :])
        ok = (
            len(parts) > 3
            and parts[1] == user_id
            and ID_PATTERN.fullmatch(parts[2]) is not None
            and any(_ENCRYPTED_OUTPUT.fullmatch(name) for name in names)
        )
    if not ok:
        raise _invalid(
            "key",
            checked,
            f"not an encrypted artifact of user {user_id!r}'s document {document_id!r}: "
            f"expected master/{user_id}/{document_id}/master.EXT.enc or "
            f"output/{user_id}/JOB/[{document_id}/]NAME.enc",
        )
    return checked
