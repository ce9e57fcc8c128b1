"""The store stage: one processed document's artifacts written, all or nothing.

:func:`store_artifacts` is the one place that turns a :class:`~rythmiq.ProcessResult` into
stored objects; ``process(store=...)``, the CLI's ``--out`` and the batch worker all call it.
It builds on :mod:`rythmiq.storage` (the stores), :mod:`rythmiq.layout` (the keys),
:mod:`rythmiq.crypto` (the master, and under ``encrypt="all"`` the outputs) and
:mod:`rythmiq.export` (text, hOCR, PDF).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rythmiq._errors import OptionsError, StorageError
from rythmiq.crypto import EncryptionContext, encrypt
from rythmiq.export import result_to_hocr, result_to_pdf
from rythmiq.layout import (
    OUTPUT_FORMATS,
    ArtifactKind,
    Ids,
    artifact_key,
    encrypted_kinds,
    is_output_file,
    output_folder,
)
from rythmiq.results import ProcessResult
from rythmiq.storage import Artifact, Store

if TYPE_CHECKING:
    from rythmiq.keyring import Keyring

__all__ = ["Transaction", "store_artifacts", "stored_result"]

log = logging.getLogger("rythmiq.storage")


class Transaction:
    """Writes to a store that are undone together: on any exception inside the ``with``
    block (Ctrl-C and cancellation included), every object written through it is deleted
    again, newest first, before the exception goes on. A delete that fails is logged and the
    others still run; what is left then is only at the keys this transaction wrote.
    """

    def __init__(self, store: Store, on_written: Callable[[Artifact], None] | None = None):
        self.store = store
        self.written: list[Artifact] = []
        self._keys: list[str] = []  # every key a write started on, finished or not
        self._on_written = on_written

    def write(
        self, key: str, data: bytes, *, kind: ArtifactKind, encrypted: bool = False
    ) -> Artifact:
        """Write ``data`` at ``key``; its :class:`Artifact` says whether it is encrypted."""
        # Recorded before the write: an interrupt that lands after the object is stored but
        # before the write returns still has it removed.
        self._keys.append(key)
        artifact = replace(self.store.write(key, data, kind=kind), encrypted=encrypted)
        self.written.append(artifact)
        log.debug("wrote %s (%d bytes)", artifact.url, artifact.size)
        if self._on_written is not None:
            self._on_written(artifact)
        return artifact

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            return
        for key in reversed(self._keys):
            try:
                self.store.delete(key)
            except StorageError as error:
                url = self.store.url_for(key)
                log.warning("could not remove %s after a failure: %s", url, error.message)


@dataclass(frozen=True)
class _Planned:
    """One artifact to write: its kind and key, how to make its bytes, whether encrypted."""

    kind: ArtifactKind
    key: str
    make: Callable[[], bytes]
    encrypted: bool


def _sealed(make: Callable[[], bytes], keyring: Keyring, context: EncryptionContext) -> bytes:
    return encrypt(make(), keyring, context)


def _plan(
    result: ProcessResult,
    ids: Ids,
    *,
    master: bytes,
    master_ext: str,
    keyring: Keyring,
    per_document: bool,
    outputs: Sequence[str],
    policy: str,
) -> list[_Planned]:
    """Every artifact but ``result.json``, in write order.

    Each artifact the policy encrypts is sealed under its own context: the user id, the
    document id and its own key, so that no encrypted artifact decrypts in another's place.
    """
    unknown = set(outputs) - set(OUTPUT_FORMATS)
    if unknown:
        raise OptionsError(f"unknown output(s) {sorted(unknown)}; choose from txt, hocr, pdf")
    sealed = encrypted_kinds(policy)
    plan: list[_Planned] = []

    def add(kind: ArtifactKind, make: Callable[[], bytes], *, page: int | None = None) -> None:
        on = kind in sealed
        if kind == "master":
            key = artifact_key("master", ids, ext=master_ext)
        else:
            key = artifact_key(kind, ids, per_document=per_document, page=page, encrypted=on)
        if on:
            context = EncryptionContext(ids.user_id, ids.document_id, key)
            make = functools.partial(_sealed, make, keyring, context)
        plan.append(_Planned(kind, key, make, on))

    add("master", lambda: master)
    multi = len(result.pages) > 1
    for page in result.pages:
        number = page.index + 1 if multi else None
        add("normalized", functools.partial(bytes, page.image.data), page=number)
        add("preview", functools.partial(bytes, page.preview.data), page=number)
    text = result.text
    if "txt" in outputs and text is not None:
        add("text", lambda: text.encode("utf-8"))
    if "hocr" in outputs:
        add("hocr", lambda: result_to_hocr(result).encode("utf-8"))
    if "pdf" in outputs:
        add("pdf", lambda: result_to_pdf(result))
    return plan


def stored_result(result: ProcessResult, policy: str) -> dict[str, Any]:
    """``result`` as a store keeps it in clear under ``policy``: :meth:`ProcessResult.to_dict`,
    without the OCR text when the policy encrypts the text (``"all"``, ``"all+preview"``)."""
    return result.to_dict(content="text" not in encrypted_kinds(policy))


def _marker(
    result: ProcessResult,
    ids: Ids,
    written: Sequence[Artifact],
    options_sha256: str | None,
    policy: str,
) -> bytes:
    """The bytes of ``result.json``: the stored result, the artifacts, the options' fingerprint
    and the encryption policy."""
    # The stored result always names the ids it was stored under, even when the caller's
    # result did not carry them yet.
    document = {
        "status": "ok",
        **stored_result(replace(result, ids=ids), policy),
        "artifacts": [a.to_dict() for a in written],
        "options_sha256": options_sha256,
        "encrypt": policy,
    }
    return json.dumps(document, indent=2).encode("utf-8")


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
    encrypt: str = "master",
) -> tuple[Artifact, ...]:
    """Write a processed document's artifacts; ``result.json`` last, as the completion marker.

    Order: encrypted master, normalized JPEG and preview (one pair per page under
    ``pages/NNNN/`` for a multi-page document), the ``outputs`` asked for (``"txt"``: the
    OCR text, when OCR ran on some page; ``"hocr"``; ``"pdf"``: a searchable PDF), then
    ``result.json``: the result with ids, ``"status": "ok"``, the list of the other
    artifacts (each saying whether it is ``encrypted``), ``options_sha256``, which a resumed
    worker job compares with its own options before it skips the document, and the
    ``encrypt`` policy. ``result.json`` itself is never encrypted; when the policy encrypts
    the text it holds no OCR text, only counts (see :meth:`ProcessResult.to_dict`).

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
        encrypt: The encryption policy, one of :data:`~rythmiq.layout.ENCRYPT_POLICIES`
            (``ProcessOptions.encrypt``): ``"master"`` encrypts the master only, ``"all"``
            also the images, text, hOCR and PDF (at ``NAME.enc``), ``"all+preview"`` the
            preview too. Each encrypted artifact is bound to the user, the document and its
            own key.

    Returns:
        The artifacts, ``result.json`` last.

    Raises:
        StorageError: A write failed (the message never contains credentials).
        CryptoError: An artifact could not be encrypted.
        OptionsError: An unknown output or policy.
    """
    plan = _plan(
        result,
        ids,
        master=master,
        master_ext=master_ext,
        keyring=keyring,
        per_document=per_document,
        outputs=outputs,
        policy=encrypt,
    )
    with Transaction(store, on_written) as done:
        for item in plan:
            done.write(item.key, item.make(), kind=item.kind, encrypted=item.encrypted)
        if marker:
            body = _marker(result, ids, done.written, options_sha256, encrypt)
            done.write(artifact_key("result", ids, per_document=per_document), body, kind="result")
    _remove_stale(store, output_folder(ids, per_document=per_document), done.written)
    return tuple(done.written)


def _remove_stale(store: Store, folder: str, written: Sequence[Artifact]) -> None:
    """Delete the outputs an earlier run of the same document left in ``folder`` that this
    run did not write (fewer ``outputs``, fewer pages), so that what is there is what
    ``result.json`` lists. Best effort: a failure is logged, the document stays stored."""
    kept = {a.key for a in written}
    try:
        for key in store.list(folder):
            if key not in kept and is_output_file(key[len(folder) :]):
                store.delete(key)
                log.info("removed %s, left by an earlier run", store.url_for(key))
    except StorageError as exc:
        log.warning("could not remove the earlier run's outputs in %s: %s", folder, exc.message)
