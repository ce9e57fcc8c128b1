"""The CLI's one lazy import: each command's runner, loaded when the command runs.

The CLI is two halves. The *declarations* (:mod:`rythmiq._cli.process`, ``jobs``, ``models``,
``keys``, ``bundle``) hold the click commands: their options, help and option groups. They
import only click and the start-up set (:mod:`rythmiq._registry`, :mod:`rythmiq._errors`...),
so that ``rythmiq --help``, ``rythmiq process --help`` and ``--version`` load no numpy. The
*runners* (``process_run``, ``models_run``, ...) do the work and import what they need at
their top: the pipeline, the OCR engines, the store, the keyring.

A declaration calls its runner by the name it has here: for mypy the runner itself, at run
time a :class:`Deferred` that imports it on the call. This table is the only place the CLI
imports lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

__all__ = [
    "Deferred",
    "resolve",
    "run_bundle",
    "run_decrypt",
    "run_keygen",
    "run_models_list",
    "run_models_prefetch",
    "run_payload_split",
    "run_process",
    "run_worker",
]


def resolve(target: str) -> Callable[..., Any]:
    """The function ``module:function`` names, importing its module now."""
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


@dataclass(frozen=True)
class Deferred:
    """A stand-in for the function ``target`` names, which it imports when it is called.

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


if TYPE_CHECKING:  # what mypy checks the declarations' calls against
    from rythmiq._cli.bundle_run import run_bundle
    from rythmiq._cli.keys_run import run_decrypt, run_keygen
    from rythmiq._cli.models_run import run_models_list, run_models_prefetch
    from rythmiq._cli.payload_run import run_payload_split
    from rythmiq._cli.process_run import run_process
    from rythmiq.worker import main as run_worker
else:
    run_bundle = Deferred("rythmiq._cli.bundle_run:run_bundle")
    run_decrypt = Deferred("rythmiq._cli.keys_run:run_decrypt")
    run_keygen = Deferred("rythmiq._cli.keys_run:run_keygen")
    run_models_list = Deferred("rythmiq._cli.models_run:run_models_list")
    run_models_prefetch = Deferred("rythmiq._cli.models_run:run_models_prefetch")
    run_payload_split = Deferred("rythmiq._cli.payload_run:run_payload_split")
    run_process = Deferred("rythmiq._cli.process_run:run_process")
    run_worker = Deferred("rythmiq.worker:main")
