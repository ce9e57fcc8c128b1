"""The one exception tree of rythmiq, with stable codes and process exit codes."""

from __future__ import annotations

import enum
from typing import Any

from rythmiq._public import public
from rythmiq._redact import redact

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "BatchError",
    "BundleError",
    "CryptoError",
    "ExitCode",
    "InputError",
    "ModelError",
    "OcrError",
    "OptionsError",
    "PayloadError",
    "RythmiqError",
    "StorageError",
    "error_dict",
    "exit_code_of",
]


@public
class ExitCode(enum.IntEnum):
    """Process exit codes used by the CLI and the worker shim.

    The library never exits; only the adapters turn an exception into the process status,
    through :func:`exit_code_of`. The numbers are part of the public contract and never
    change meaning.
    """

    OK = 0
    INTERNAL = 1  # also what Python itself returns for an uncaught exception
    USAGE = 2  # argparse's own code for bad command-line arguments
    PARTIAL = 3
    PAYLOAD = 4
    INPUT = 5
    MODEL = 6
    STORAGE = 7
    CRYPTO = 8
    BUNDLE = 9  # a runtime bundle cannot be built or used (rythmiq bundle, rythmiq-launch.py)


@public
class RythmiqError(Exception):
    """Base class of every error rythmiq raises on purpose.

    Attributes:
        code: A stable, dotted, machine-readable identifier such as ``"input.too_large"``.
            Codes are never reused for another meaning.
        exit_code: The :class:`ExitCode` an adapter should exit with.
        message: A human sentence that says what went wrong and how to fix it.
    """

    code: str = "internal"
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            family = type(self).code.split(".")[0]
            if not (code == family or code.startswith(family + ".")):
                raise ValueError(f"code {code!r} does not belong to {type(self).__name__}")
            self.code = code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form: ``{"code", "message", "exit_code"}``."""
        return {"code": self.code, "message": self.message, "exit_code": int(self.exit_code)}


@public
class OptionsError(RythmiqError, ValueError):
    """An argument or option value is invalid. Also a :class:`ValueError`."""

    code = "options.invalid"
    exit_code = ExitCode.USAGE


@public
class InputError(RythmiqError):
    """The input document cannot be used: unreadable, unsupported, empty or too large.

    Codes: ``input.not_found``, ``input.unreadable``, ``input.unsupported``, ``input.empty``,
    ``input.not_regular`` (a directory, FIFO, device or socket), ``input.too_large``,
    ``input.invalid_array``.
    """

    code = "input.unreadable"
    exit_code = ExitCode.INPUT


@public
class ModelError(RythmiqError):
    """An OCR model is missing or failed to load. The message carries an install hint.

    Codes: ``model.not_found``, ``model.load_failed``, ``model.missing_dependency``.
    """

    code = "model.load_failed"
    exit_code = ExitCode.MODEL


@public
class OcrError(RythmiqError):
    """The OCR engine failed while reading an image that did load (``ocr.failed``)."""

    code = "ocr.failed"
    exit_code = ExitCode.INTERNAL


@public
class StorageError(RythmiqError):
    """Reading or writing an artifact store failed (``storage.*``)."""

    code = "storage.failed"
    exit_code = ExitCode.STORAGE


@public
class CryptoError(RythmiqError):
    """Encryption or decryption failed, or the ciphertext was tampered with (``crypto.*``)."""

    code = "crypto.failed"
    exit_code = ExitCode.CRYPTO


@public
class PayloadError(RythmiqError):
    """A worker payload is invalid (``payload.*``)."""

    code = "payload.invalid"
    exit_code = ExitCode.PAYLOAD


@public
class BatchError(RythmiqError):
    """A document of a batch was lost with its worker process (``batch.*``).

    Codes: ``batch.worker_died`` (the worker process exited or was killed while it held the
    document, e.g. SIGKILL or the kernel's OOM killer), ``batch.timeout`` (the document took
    longer than the batch's per-document timeout; its worker was killed),
    ``batch.worker_start_failed`` (new worker processes keep dying before their first document)
    and ``batch.main_not_importable`` (workers would have to import a main script that has no
    file, or that calls ``process_many`` outside ``if __name__ == "__main__":``).
    """

    code = "batch.worker_died"
    exit_code = ExitCode.INTERNAL


@public
class BundleError(RythmiqError):
    """A runtime bundle cannot be built or used (``bundle.*``).

    Codes: ``bundle.build_failed`` (the installer or the packing failed),
    ``bundle.invalid_target`` (a Python version or platform tag that cannot be built for),
    ``bundle.no_bytecode`` (no interpreter of the target version to compile with, when
    bytecode was asked for). The launcher (``rythmiq-launch.py``) reports with the same
    exit code: ``bundle.not_found``, ``bundle.corrupt``, ``bundle.wrong_python``,
    ``bundle.wrong_platform``, ``bundle.unsupported_compression``, ``bundle.unpack_failed``.
    """

    code = "bundle.build_failed"
    exit_code = ExitCode.BUNDLE


def error_dict(exc: BaseException) -> dict[str, Any]:
    """The one JSON form of an error, for job results, batch results and ``--json`` output.

    A :class:`RythmiqError` gives its ``{"code", "message", "exit_code"}``; anything else is
    ``internal`` with the exception's type and text, and the exit code of
    :func:`exit_code_of` (1, or 130 for Ctrl-C). Messages pass through
    :func:`~rythmiq.storage.redact`, so no secret, or any piece of one, is ever in them.
    """
    if isinstance(exc, RythmiqError):
        d = exc.to_dict()
        d["message"] = redact(str(d["message"]))
        return d
    return {
        "code": "internal",
        "message": redact(f"{type(exc).__name__}: {exc}"),
        "exit_code": exit_code_of(exc),
    }


#: The status of a run stopped by Ctrl-C: 128 + SIGINT, the shell's convention.
EXIT_INTERRUPTED = 130

#: The status of a CLI run whose stdout was closed early (``| head``): 128 + SIGPIPE, what a
#: shell reports for a Unix tool stopped the same way.
EXIT_BROKEN_PIPE = 141


def exit_code_of(exc: BaseException) -> int:
    """The process exit code for ``exc``: the one mapping the CLI and the worker use.

    A :class:`RythmiqError` gives its ``exit_code``; a :class:`KeyboardInterrupt` (Ctrl-C)
    gives 130; anything else is ``internal`` (1). :func:`error_dict` reports the same code.
    """
    if isinstance(exc, RythmiqError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return int(ExitCode.INTERNAL)
