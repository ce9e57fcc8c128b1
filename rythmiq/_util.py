"""Small checks and formatting shared by every layer: the bottom of the house, above _errors.

Nothing here imports another rythmiq module but :mod:`rythmiq._errors`, so any module may use
it without creating an import cycle.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

from rythmiq._errors import InputError, OptionsError

__all__ = [
    "check_field_types",
    "check_image",
    "error_line",
    "format_bytes",
    "positive_int",
    "printable",
    "short_repr",
]

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


_HINTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field of the dataclass ``cls`` with its resolved type, worked out once."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
    return _HINTS[cls]


def _conforms(value: object, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` names. A ``Literal`` asks only for its
    values' type: which value is allowed is the option's own check, with its own message."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Literal:
        return any(type(value) is type(arg) for arg in typing.get_args(hint))
    if origin is typing.Union or origin is types.UnionType:
        return any(_conforms(value, arg) for arg in typing.get_args(hint))
    if origin is tuple:
        if not isinstance(value, (tuple, list)):  # a list, from JSON, is taken as a tuple
            return False
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _conforms(v, a) for v, a in zip(value, args, strict=True)
        )
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _describe(hint: Any) -> str:
    """``hint`` in words, for an error message."""
    origin = typing.get_origin(hint)
    if hint is None or hint is type(None):
        return "None"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_describe(args[0])} items"
        return f"a tuple of {len(args)} ({', '.join(_describe(a) for a in args)})"
    words = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def check_field_types(obj: object, *, skip: Collection[str] = ()) -> None:
    """Raise :class:`OptionsError` unless each field of the dataclass ``obj`` holds a value of
    its annotated type: ``ProcessOptions(threshold="0.8")`` is an options error, not the
    ``TypeError`` of comparing a string with a number.

    A ``bool`` is no number here, an ``int`` is a ``float``, and a list stands for a tuple.
    The fields in ``skip`` are left to a check of their own.
    """
    for name, hint in _field_hints(type(obj)):
        value = getattr(obj, name)
        if name not in skip and not _conforms(value, hint):
            raise OptionsError(
                f"{name} must be {_describe(hint)}, got {value!r} ({type(value).__name__})"
            )


#: How many items of a sequence a repr shows before it only counts them.
_REPR_ITEMS = 4


def _short(value: object) -> str:
    """``value`` for a repr: floats to 4 significant digits, arrays and bytes by their size,
    an error by its code, long sequences and strings cut, nested values the same way."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{format_bytes(len(value))}>"
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a numpy array, without numpy
        return f"<array {'x'.join(map(str, value.shape))} {value.dtype}>"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, (tuple, list)):
        items = [_short(v) for v in value[:_REPR_ITEMS]]
        if len(value) > _REPR_ITEMS:
            items.append(f"... {len(value)} items")
        inner = ", ".join(items) + ("," if isinstance(value, tuple) and len(value) == 1 else "")
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, BaseException):  # by its stable code: the message may run long
        code = getattr(value, "code", None)
        return f"{type(value).__name__}(code={code!r})" if code else _short(repr(value))[1:-1]
    if isinstance(value, dict):
        if len(value) > _REPR_ITEMS:
            return f"{{... {len(value)} items}}"
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in value.items()) + "}"
    return repr(value)


def short_repr(self: object) -> str:
    """A dataclass's repr on one short line: each ``repr=True`` field as ``name=value``,
    floats to 4 significant digits (``0.9087``, not ``0.9086927409166653``), pixel arrays and
    bytes by their size, sequences of more than four items counted.

    A dataclass takes it with ``__repr__ = short_repr`` in its body (``@dataclass`` keeps a
    ``__repr__`` the class defines).
    """
    parts = [
        f"{f.name}={_short(getattr(self, f.name))}"
        for f in dataclasses.fields(self)  # type: ignore[arg-type]
        if f.repr
    ]
    return f"{type(self).__name__}({', '.join(parts)})"
