"""The CLI's one lazy import: a command's body is loaded when the command runs.

The CLI is two halves. The *declarations* (:mod:`rythmiq._cli.process`, ``jobs``, ``models``,
``keys``, ``bundle``) hold the click commands: their options, help and option groups. They
import only click and the start-up set (:mod:`rythmiq._registry`, :mod:`rythmiq._errors`...),
so that ``rythmiq --help``, ``rythmiq process --help`` and ``--version`` load no numpy. The
*runners* (``process_run``, ``models_run``, ...) do the work and import what they need at
their top: the pipeline, the OCR engines, the store, the keyring.

A declaration names its runner with a :class:`Deferred`, the only place that imports lazily::

    if TYPE_CHECKING:
        from rythmiq._cli.keys_run import run_keygen  # what mypy checks the calls against
    else:
        run_keygen = Deferred("rythmiq._cli.keys_run:run_keygen")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Deferred", "resolve"]


def resolve(target: str) -> Callable[..., Any]:
    """The function ``module:function`` names, importing its module now."""
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


@dataclass(frozen=True)
class Deferred:
    """A stand-in for the function ``target`` names, imported when it is first called.

    Attributes:
        target: ``"module:function"``, e.g. ``"rythmiq._cli.keys_run:run_keygen"``.
    """

    target: str

    def __post_init__(self) -> None:
        module, sep, name = self.target.partition(":")
        if not (module and sep and name):
            raise ValueError(f"expected 'module:function', got {self.target!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Import the function and call it."""
        return resolve(self.target)(*args, **kwargs)
