"""Small checks and formatting shared by every layer: the bottom of the house, above _errors.

Nothing here imports another rythmiq module but :mod:`rythmiq._errors`, so any module may use
it without creating an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rythmiq._errors import InputError, OptionsError

__all__ = ["check_image", "error_line", "format_bytes", "positive_int", "printable"]

# What a terminal must not be sent raw: the C0 controls (ESC starts every escape sequence,
# OSC among them; BEL ends one), DEL, the C1 controls (U+009B is a one-character CSI on some
# terminals), surrogates (a file name of undecodable bytes; no encoder writes them), the
# line and paragraph separators, and the bidirectional overrides and isolates, which make a
# terminal show text in another order than it is.
_OTHERS = r"\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(rf"[\x00-\x1f{_OTHERS}]")
_UNPRINTABLE_KEEP_LINES = re.compile(rf"[\x00-\x08\x0b-\x1f{_OTHERS}]")  # \t and \n kept


def check_image(image: object, name: str = "image") -> None:
    """Raise :class:`InputError` unless ``image`` is a non-empty 2-D/3-D ``uint8`` image array."""
    import numpy as np  # heavy: only the modules that handle arrays pay for it

    if not isinstance(image, np.ndarray):
        raise InputError(
            f"{name} must be a numpy array, got {type(image).__name__}",
            code="input.invalid_array",
        )
    if image.dtype != np.uint8:
        raise InputError(
            f"{name} must have dtype uint8 (0-255), got {image.dtype}; scale it first",
            code="input.invalid_array",
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"{name} must be (H, W) grayscale or (H, W, 3) RGB, got shape {image.shape}",
            code="input.invalid_array",
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{name} is empty (shape {image.shape})", code="input.empty")


def format_bytes(n: int) -> str:
    """A byte count for people: ``"812 B"``, ``"412 KiB"``, ``"3.1 MiB"``."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        code -= 0xDC00
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` safe to print on a terminal: each control character written as an escape.

    C0 and C1 controls, DEL, surrogates, U+2028/U+2029 and the bidirectional overrides and
    isolates become ``\\x1b`` or ``\\u202e`` (an undecodable byte of a file name, which
    Python holds as a surrogate, is shown as that byte: ``\\xff``). So text from outside
    (OCR text, file names, messages that quote them) can neither send an escape sequence
    (colours, an OSC window title, a hyperlink), ring the bell, nor reorder what is shown. A
    backslash is left as it is. ``lines`` keeps newlines and tabs, for text printed over
    several lines.
    """
    pattern = _UNPRINTABLE_KEEP_LINES if lines else _UNPRINTABLE
    return pattern.sub(_escape, text)


def error_line(error: Mapping[str, object], *, prefix: str = "rythmiq: error") -> str:
    """The one stderr line of an error in :func:`rythmiq._errors.error_dict`'s form:
    ``rythmiq: error [code] message``, the message on one line and :func:`printable`."""
    message = " ".join(part.strip() for part in str(error["message"]).splitlines() if part.strip())
    return f"{prefix} [{error['code']}] {printable(message)}"


def positive_int(value: object, name: str) -> int:
    """``value`` when it is an ``int`` of at least 1 (never a ``bool``); else :class:`OptionsError`.

    The one "positive integer" check of every option, limit and argument.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
    return value
