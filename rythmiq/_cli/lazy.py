"""The CLI's one lazy import: a command's body is loaded when the command runs.

The CLI is two halves. The *declarations* (:mod:`rythmiq._cli.process`, ``models``, ``jobs``,
``keys``, ``bundle``) hold the click commands: their options, help and option groups. They
import only click, :mod:`rythmiq._registry` and the other modules of the start-up set, so that
``rythmiq --help``, ``rythmiq process --help`` and ``--version`` load no numpy. The *runners*
(``process_run``, ``models_run``, ...) do the work and import what they need at their top:
the pipeline, the OCR engines, the store, the keyring.

A declaration names its runner with :func:`deferred`, the only place that imports lazily::

    if TYPE_CHECKING:
        from rythmiq._cli.keys_run import run_keygen  # the type mypy checks calls against
    else:
        run_keygen = deferred("rythmiq._cli.keys_run:run_keygen")
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["DEFERRED", "deferred", "resolve"]

#: Every ``module:function`` a declaration defers to, in the order they were named.
DEFERRED: list[str] = []


def resolve(target: str) -> Callable[..., Any]:
    """The function ``module:function`` names, importing its module now."""
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def deferred(target: str) -> Callable[..., Any]:
    """A stand-in for the function ``module:function`` that imports it on its first call.

    Args:
        target: ``"rythmiq._cli.<runner module>:<function>"``.
    """
    module, sep, name = target.partition(":")
    if not (module and sep and name):
        raise ValueError(f"expected 'module:function', got {target!r}")
    DEFERRED.append(target)

    @functools.cache
    def load() -> Callable[..., Any]:
        return resolve(target)

    def call(*args: Any, **kwargs: Any) -> Any:
        return load()(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Runs {target}, imported on the first call."
    return call
