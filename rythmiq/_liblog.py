"""Third-party loggers (PaddleX, PaddleOCR, RapidOCR) routed through rythmiq's own loggers.

The OCR libraries each install a handler of their own that writes to stderr, some in ANSI
colour (PaddleX's ``Creating model: (...)`` lines, RapidOCR's ``[INFO]`` lines), with
``propagate`` off. Those lines bypass the application's logging set-up, the CLI's
verbosity and its secret redaction. :func:`adopt_library_logger` replaces such a handler with
one that re-emits each record, colour codes stripped, on ``rythmiq.lib.<alias>``, so what is
shown is decided by the ``rythmiq`` logger's level and handlers like any rythmiq line.
"""

from __future__ import annotations

import logging
import re

__all__ = ["LIBRARY_LOGGERS", "adopt_library_logger", "adopt_library_loggers"]

#: ``{library logger name: alias under rythmiq.lib}``.
LIBRARY_LOGGERS = {"paddlex": "paddlex", "paddleocr": "paddleocr", "RapidOCR": "rapidocr"}

# CSI sequences (colours, cursor moves) and OSC sequences (titles), which colorlog and
# terminal-aware libraries write.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class _Forward(logging.Handler):
    """Re-emits a library's records on a rythmiq logger, without colour codes."""

    def __init__(self, target: str) -> None:
        super().__init__(logging.NOTSET)
        self.target = logging.getLogger(target)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.target.isEnabledFor(record.levelno):
            return
        try:
            message = _ANSI.sub("", record.getMessage())
        except Exception:  # a library's bad format string must not break OCR
            self.handleError(record)
            return
        forwarded = logging.makeLogRecord(
            {**record.__dict__, "name": self.target.name, "msg": message, "args": None}
        )
        self.target.handle(forwarded)


# Without a handler of their own, lines on rythmiq.lib would reach Python's last-resort
# handler (stderr) in an application that configured no logging, a notebook among them.
logging.getLogger("rythmiq.lib").addHandler(logging.NullHandler())


def adopt_library_logger(name: str, alias: str | None = None) -> logging.Logger:
    """Route logger ``name`` to ``rythmiq.lib.<alias>``; idempotent.

    The library's own handlers are removed and ``propagate`` turned off, so its lines reach
    the terminal only through rythmiq's loggers. Its level is set to INFO, so its INFO lines
    are there for ``--debug``; whether they are shown is up to ``rythmiq``'s level. Call it
    before the library is imported (PaddleX adds its colour handler only to a logger that has
    none) and again after (RapidOCR adds one at import).
    """
    logger = logging.getLogger(name)
    target = f"rythmiq.lib.{alias or name.lower()}"
    ours = [h for h in logger.handlers if isinstance(h, _Forward) and h.target.name == target]
    for handler in list(logger.handlers):
        if handler not in ours[:1]:
            logger.removeHandler(handler)
    if not ours:
        logger.addHandler(_Forward(target))
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def adopt_library_loggers() -> None:
    """:func:`adopt_library_logger` for every logger in :data:`LIBRARY_LOGGERS`."""
    for name, alias in LIBRARY_LOGGERS.items():
        adopt_library_logger(name, alias)
