"""Worker payloads: the versioned JSON contract, parsed and checked before anything runs.

The schema ships in the package (``rythmiq/schemas/payload-v1.json``) and is documented in
``docs/payload.md``. On top of the schema, ids are checked with the storage rules
(:func:`rythmiq.layout.validate_id`) and input keys with
:func:`rythmiq.layout.validate_input_key`, so a hostile payload is refused before any I/O.
A payload never carries secrets: credentials and keys come from the environment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from rythmiq._errors import OptionsError, PayloadError, StorageError
from rythmiq._process import ProcessOptions
from rythmiq.layout import Ids, validate_id, validate_input_key

__all__ = [
    "MAX_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "SUPPORTED_VERSIONS",
    "DocumentSpec",
    "Payload",
    "parse_payload",
]

MAX_PAYLOAD_BYTES = 1 << 20
# A valid payload nests 3 levels (payload -> documents -> document, or -> options -> box); a limit
# far below Python's recursion limit keeps the schema validator and error messages safe.
MAX_DEPTH = 16
SUPPORTED_VERSIONS = (1,)
# Output stores a payload may name. Other fsspec protocols (http, ftp, ssh...) are refused:
# a payload must not be able to point the worker at arbitrary systems.
_OUTPUT_PROTOCOLS = ("s3", "s3a", "file", "local", "memory")
INPUT_PREFIX = "input/"


@dataclass(frozen=True)
class DocumentSpec:
    """One document of a job: its id and the key of its input in the output store."""

    document_id: str
    input_key: str


@dataclass(frozen=True)
class Payload:
    """A parsed, validated payload.

    Attributes:
        version: Payload format version.
        job_id: The job.
        user_id: Owner of the documents.
        output: Store URL the inputs are read from and the artifacts written to.
        documents: The documents, in payload order.
        options: Processing options.
        single: Whether the payload used the single-document form (``document_id`` and
            ``input`` at the top level), which keeps the original worker's flat layout.
    """

    version: int
    job_id: str
    user_id: str
    output: str
    documents: tuple[DocumentSpec, ...]
    options: ProcessOptions
    single: bool

    def ids(self, document: DocumentSpec) -> Ids:
        """The :class:`~rythmiq.layout.Ids` of one document of this job."""
        return Ids(self.user_id, self.job_id, document.document_id)


@cache
def schema() -> dict[str, Any]:
    """The payload JSON Schema (version 1), as shipped in the package."""
    text = resources.files("rythmiq").joinpath("schemas/payload-v1.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _input_key(value: str, output: str) -> str:
    """An input given as a key, or as a URL inside the output store, as a checked key."""
    if "://" in value:
        root = output.rstrip("/") + "/"
        if not value.startswith(root):
            raise PayloadError(
                f"input URL must be inside the output store ({root}{INPUT_PREFIX}...)",
                code="payload.invalid_input",
            )
        value = value[len(root) :]
    try:
        return validate_input_key(value, prefix=INPUT_PREFIX)
    except StorageError as exc:
        raise PayloadError(exc.message, code="payload.invalid_input") from None


def _check_output(url: str) -> None:
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol not in _OUTPUT_PROTOCOLS:
        raise PayloadError(
            f"output protocol {protocol!r} is not allowed; use one of {_OUTPUT_PROTOCOLS}",
            code="payload.invalid_output",
        )
    if "\x00" in url or "\\" in url:
        raise PayloadError(
            "output URL has NUL or backslash characters", code="payload.invalid_output"
        )


def _refuse_constant(name: str) -> Any:
    # Python's parser accepts NaN and Infinity; JSON (and every other parser) does not.
    raise ValueError(f"{name} is not a JSON value")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion; stops past the limit."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            if level + 1 <= MAX_DEPTH:  # deeper than the limit need not be walked
                stack.extend((child, level + 1) for child in item)
    return deepest


def parse_payload(text: str | bytes) -> Payload:
    """Parse and validate a payload.

    Raises:
        PayloadError: ``payload.empty``, ``payload.too_large`` (over 1 MiB),
            ``payload.malformed`` (not UTF-8 JSON, or not an object; ``NaN`` and
            ``Infinity`` are not JSON), ``payload.version``
            (missing or unsupported version), ``payload.invalid`` (fails the schema, or
            nests deeper than :data:`MAX_DEPTH`),
            ``payload.invalid_id``, ``payload.invalid_input``, ``payload.invalid_output``,
            ``payload.duplicate_document``. Messages say which field is wrong.
    """
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:  # a str holding lone surrogates
        raise PayloadError(
            f"payload is not valid Unicode: {exc.reason}", code="payload.malformed"
        ) from None
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"payload is {len(raw)} bytes, over the limit of {MAX_PAYLOAD_BYTES}",
            code="payload.too_large",
        )
    if not raw.strip():
        raise PayloadError(
            "payload is empty: send the job JSON on stdin or with --payload", code="payload.empty"
        )
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise PayloadError(
            "payload is not valid JSON: nested too deeply", code="payload.malformed"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        # ValueError also covers json.JSONDecodeError and integers over Python's digit limit.
        raise PayloadError(f"payload is not valid JSON: {exc}", code="payload.malformed") from None
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object", code="payload.malformed")
    if _depth(data) > MAX_DEPTH:
        raise PayloadError(
            f"payload nests more than {MAX_DEPTH} levels deep", code="payload.invalid"
        )
    version = data.get("version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise PayloadError(
            f"unsupported payload version {version!r}; this worker reads {SUPPORTED_VERSIONS}",
            code="payload.version",
        )
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        message = first.message if len(first.message) <= 300 else first.message[:300] + "..."
        raise PayloadError(f"payload field {where}: {message}", code="payload.invalid")
    try:
        validate_id(data["job_id"], "job_id")
        validate_id(data["user_id"], "user_id")
        single = "documents" not in data
        entries = [data] if single else data["documents"]
        for entry in entries:
            validate_id(entry["document_id"], "document_id")
    except StorageError as exc:
        raise PayloadError(exc.message, code="payload.invalid_id") from None
    _check_output(data["output"])
    documents = tuple(
        DocumentSpec(entry["document_id"], _input_key(entry["input"], data["output"]))
        for entry in entries
    )
    seen: set[str] = set()
    for doc in documents:
        if doc.document_id in seen:
            raise PayloadError(
                f"document_id {doc.document_id!r} appears twice", code="payload.duplicate_document"
            )
        seen.add(doc.document_id)
    try:
        options = ProcessOptions.from_dict(dict(data.get("options", {})))
    except OptionsError as exc:
        raise PayloadError(f"payload options: {exc.message}", code="payload.invalid") from None
    return Payload(
        version=int(version),
        job_id=data["job_id"],
        user_id=data["user_id"],
        output=data["output"],
        documents=documents,
        options=options,
        single=single,
    )
