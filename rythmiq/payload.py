"""Worker payloads: the versioned JSON contract, parsed and checked before anything runs.

The schema ships in the package (``rythmiq/schemas/payload-v1.json``) and is documented in
``docs/payload.md``. On top of the schema, ids are checked with the storage rules
(:func:`rythmiq.layout.validate_id`) and input keys with
:func:`rythmiq.layout.validate_input_key`, so a hostile payload is refused before any I/O.
A payload never carries secrets: credentials and keys come from the environment.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from rythmiq._errors import OptionsError, PayloadError, StorageError
from rythmiq._util import positive_int
from rythmiq.layout import Ids, validate_document_id, validate_id, validate_input_key
from rythmiq.options import ProcessOptions

__all__ = [
    "CAMBER_CONCURRENT_JOBS",
    "DEFAULT_SHARDS",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_SPLIT_BYTES",
    "SUPPORTED_VERSIONS",
    "DocumentSpec",
    "Payload",
    "parse_payload",
    "read_payload_bytes",
    "split_payload",
]

MAX_PAYLOAD_BYTES = 1 << 20
# The documents of one job (the schema's maxItems); a longer list is cut by split_payload.
MAX_DOCUMENTS = 1000
# A payload given to split_payload may hold many jobs' worth of documents.
MAX_SPLIT_BYTES = 64 << 20
# Camber queues a user's jobs beyond 4-6 running at once, so more shards than that do not
# run sooner; 4 is what always runs in parallel.
DEFAULT_SHARDS = 4
CAMBER_CONCURRENT_JOBS = 6
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
        resume: Skip documents a previous run of the same job already stored with the same
            options (see ``docs/payload.md``).
    """

    version: int
    job_id: str
    user_id: str
    output: str
    documents: tuple[DocumentSpec, ...]
    options: ProcessOptions
    single: bool
    resume: bool = False

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


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of repeated names; another parser may keep the first. A payload
    # must mean one thing to every reader, as the keyring must.
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ValueError(f"the name {name[:40]!r} is repeated in one object")
        seen.add(name)
    return dict(pairs)


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


@cache
def _split_schema() -> dict[str, Any]:
    """The payload schema without the cap on ``documents`` (what :func:`split_payload` reads)."""
    relaxed = copy.deepcopy(schema())
    del relaxed["properties"]["documents"]["maxItems"]
    return relaxed


def read_payload_bytes(path: str | None, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """A payload file's bytes (``None`` or ``"-"``: stdin), at most ``limit + 1`` of them.

    Reading one byte past ``limit`` lets the parser report ``payload.too_large`` without
    reading an unbounded stream.

    Raises:
        PayloadError: ``payload.unreadable``.
    """
    try:
        if path is None or path == "-":
            return sys.stdin.buffer.read(limit + 1)
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        where = "from stdin" if path in (None, "-") else path
        raise PayloadError(
            f"cannot read the payload {where}: {exc.strerror or exc}", code="payload.unreadable"
        ) from None


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
    data = _load(text, max_bytes=MAX_PAYLOAD_BYTES)
    return _validate(data, schema())


def _load(text: str | bytes, *, max_bytes: int) -> dict[str, Any]:
    """The payload's JSON object: size, encoding, syntax, depth and version checked."""
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:  # a str holding lone surrogates
        raise PayloadError(
            f"payload is not valid Unicode: {exc.reason}", code="payload.malformed"
        ) from None
    if len(raw) > max_bytes:
        raise PayloadError(
            f"payload is {len(raw)} bytes, over the limit of {max_bytes}",
            code="payload.too_large",
        )
    if not raw.strip():
        raise PayloadError(
            "payload is empty: send the job JSON on stdin or with --payload", code="payload.empty"
        )
    try:
        data = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_no_repeats
        )
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
    # An integer, as the docs say: 1.0 == 1 in Python (and in JSON Schema's "const").
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise PayloadError(
            f"unsupported payload version {version!r}; this worker reads {SUPPORTED_VERSIONS}",
            code="payload.version",
        )
    return data


def _validate(data: dict[str, Any], against: dict[str, Any]) -> Payload:
    """Check a loaded payload against the schema ``against``, then ids, inputs and options."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(against)
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
            validate_document_id(entry["document_id"])
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
        version=int(data["version"]),
        job_id=data["job_id"],
        user_id=data["user_id"],
        output=data["output"],
        documents=documents,
        options=options,
        single=single,
        resume=bool(data.get("resume", False)),
    )


def _shard_count(n: int, shards: int | None, per_job: int | None) -> int:
    """How many shards ``n`` documents are cut into (see :func:`split_payload`)."""
    if shards is not None and per_job is not None:
        raise OptionsError("give shards or per_job, not both")
    for name, value in (("shards", shards), ("per_job", per_job)):
        if value is not None:
            positive_int(value, name)
    minimum = math.ceil(n / MAX_DOCUMENTS)
    if per_job is not None:
        count = math.ceil(n / per_job)
    elif shards is not None:
        count = shards
    else:
        count = max(DEFAULT_SHARDS, minimum)
    count = min(count, n)  # never an empty shard
    largest = math.ceil(n / count)
    if largest > MAX_DOCUMENTS:
        raise PayloadError(
            f"{n} documents in {count} shard(s) puts {largest} documents in one job, over the "
            f"limit of {MAX_DOCUMENTS}; use at least {minimum} shards"
            + (f" (or per_job {MAX_DOCUMENTS} or less)" if per_job is not None else ""),
            code="payload.too_many_documents",
        )
    return count


def split_payload(
    payload: str | bytes | Mapping[str, Any],
    shards: int | None = None,
    *,
    per_job: int | None = None,
) -> tuple[dict[str, Any], ...]:
    """Cut a payload's ``documents`` into several job payloads, one per worker job.

    The input is checked as :func:`parse_payload` checks a payload, except that it may hold
    more than :data:`MAX_DOCUMENTS` documents and up to :data:`MAX_SPLIT_BYTES` bytes.
    The shards are contiguous runs of the documents, in payload order, with sizes that
    differ by at most one; every document is in exactly one shard. Each shard keeps
    ``version``, ``user_id``, ``output`` and ``options``, gets the job id
    ``{job_id}-{i}of{N}`` (``i`` from 1, zero-padded to the width of ``N``: ``job-7-01of12``)
    and ``"resume": true``, so a shard that is run again skips what it already stored.

    Args:
        payload: The payload, as JSON text or bytes, or as a parsed JSON object.
        shards: Number of shards (default :data:`DEFAULT_SHARDS`, or more when that would put
            over :data:`MAX_DOCUMENTS` documents in one); never more than the documents.
        per_job: Instead of ``shards``: at most this many documents per shard, which gives
            ``ceil(n / per_job)`` shards.

    Returns:
        The shard payloads as JSON objects, in order; each one, written as
        ``json.dumps(shard, indent=2)``, passes :func:`parse_payload`.

    Raises:
        PayloadError: what :func:`parse_payload` raises (``payload.too_large`` over
            :data:`MAX_SPLIT_BYTES`); ``payload.invalid`` for the single-document form,
            which has nothing to split; ``payload.too_many_documents`` when ``shards`` (or
            ``per_job``) would put more than :data:`MAX_DOCUMENTS` documents in one job (the
            message gives the least shard count that works); ``payload.invalid_id`` when
            the job id is too long to take the shard suffix; ``payload.too_large`` when a
            shard would be over :data:`MAX_PAYLOAD_BYTES` (use more shards).
        OptionsError: ``shards`` or ``per_job`` is not an integer >= 1, or both are given.
    """
    data, job_id = _splittable(payload)
    entries: list[dict[str, Any]] = data["documents"]
    n = len(entries)
    count = _shard_count(n, shards, per_job)
    base, extra = divmod(n, count)
    out: list[dict[str, Any]] = []
    start = 0
    for i in range(1, count + 1):
        stop = start + base + (1 if i <= extra else 0)
        out.append(_shard(data, job_id, entries[start:stop], i, count))
        start = stop
    return tuple(out)


def _splittable(payload: str | bytes | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The checked JSON object of a payload with a documents list, and its job id."""
    if isinstance(payload, Mapping):
        try:
            payload = json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"payload is not JSON: {exc}", code="payload.malformed") from None
    data = _load(payload, max_bytes=MAX_SPLIT_BYTES)
    parsed = _validate(data, _split_schema())
    if parsed.single:
        raise PayloadError(
            "a single-document payload (document_id and input at the top level) has nothing "
            "to split; give a documents list",
            code="payload.invalid",
        )
    return data, parsed.job_id


def _shard(
    data: dict[str, Any], job_id: str, entries: list[dict[str, Any]], i: int, count: int
) -> dict[str, Any]:
    """Shard ``i`` of ``count``: ``entries`` under the job id ``{job_id}-{i}of{count}``,
    checked as :func:`parse_payload` checks a payload."""
    suffix = f"-{i:0{len(str(count))}d}of{count}"
    try:
        validate_id(job_id + suffix, "job_id")
    except StorageError:
        raise PayloadError(
            f"job_id {job_id!r} is too long to take the shard suffix {suffix!r}: "
            f"a job id has at most 128 characters; use a job_id of at most "
            f"{128 - len(suffix)} characters",
            code="payload.invalid_id",
        ) from None
    shard: dict[str, Any] = {
        "version": data["version"],
        "job_id": job_id + suffix,
        "user_id": data["user_id"],
        "documents": [dict(entry) for entry in entries],
    }
    if "options" in data:
        shard["options"] = copy.deepcopy(data["options"])
    shard["output"] = data["output"]
    shard["resume"] = True
    try:
        parse_payload(json.dumps(shard, indent=2))
    except PayloadError as exc:
        if exc.code != "payload.too_large":
            raise
        raise PayloadError(
            f"shard {i} of {count} would be over the {MAX_PAYLOAD_BYTES}-byte payload "
            f"limit ({exc.message}); use more shards",
            code="payload.too_large",
        ) from None
    return shard
