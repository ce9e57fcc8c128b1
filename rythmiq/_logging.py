"""Logging for the adapters (CLI, worker): stderr only, secrets redacted from every line, and
control characters escaped in it."""

from __future__ import annotations

import logging
import sys

from rythmiq._redact import redact
from rythmiq._util import printable

__all__ = ["RedactingFormatter", "setup_logging"]


class RedactingFormatter(logging.Formatter):
    """Blanks secret values (see ``rythmiq.storage.SECRET_ENV_VARS``) in every log line,
    tracebacks included, and escapes its control characters but newlines and tabs
    (:func:`rythmiq._util.printable`): a line may quote a file name or OCR text."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(redact(super().format(record)), lines=True)


def setup_logging(debug: bool) -> None:
    """Send log lines to stderr through :class:`RedactingFormatter`; the OCR libraries' own
    lines (``rythmiq.lib.*``) only from ERROR up, unless ``debug``.

    Only rythmiq's own loggers go to DEBUG with ``debug``: botocore's debug output carries
    request signatures and credential ids.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("rythmiq: %(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("rythmiq").setLevel(logging.DEBUG if debug else logging.WARNING)
    # The OCR libraries' own lines (rythmiq._liblog): their warnings ("The text detection
    # result is empty") are not the user's business; with --debug everything shows.
    logging.getLogger("rythmiq.lib").setLevel(logging.DEBUG if debug else logging.ERROR)
