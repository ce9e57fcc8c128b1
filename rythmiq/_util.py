"""Small checks and formatting shared by every layer: the bottom of the house, above _errors.

Nothing here imports another rythmiq module but :mod:`rythmiq._errors`, so any module may use
it without creating an import cycle.
"""

from __future__ import annotations

from rythmiq._errors import InputError, OptionsError

__all__ = ["check_image", "format_bytes", "positive_int"]


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


def positive_int(value: object, name: str) -> int:
    """``value`` when it is an ``int`` of at least 1 (never a ``bool``); else :class:`OptionsError`.

    The one "positive integer" check of every option, limit and argument.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionsError(f"{name} must be an integer >= 1, got {value!r}")
    return value
