"""What several commands' declarations share: the exit-code epilog, the engine choice and
file-name completion."""

from __future__ import annotations

import click

from rythmiq._registry import ENGINES

__all__ = ["ENGINE_CHOICE", "EXIT_CODES", "complete_files"]

# Nothing here points at a file of the repository: an installed wheel has no docs/.
EXIT_CODES = (
    "Exit codes: 0 ok, 1 internal (a bug), 2 usage, 3 partial (some inputs failed), "
    "4 payload, 5 input, 6 model, 7 storage, 8 crypto, 9 bundle, 130 interrupted, "
    "141 stdout closed early (a pipe into head). An error is one line on stderr, "
    "'rythmiq: error [code] message'; --debug adds the traceback."
)

#: ``--engine``'s values: the engine registry's names, in its order.
ENGINE_CHOICE = click.Choice(list(ENGINES))


def complete_files(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    """Shell completion for an argument that takes a file name but is not a ``click.Path``
    (a path, folder, glob or URL): the shell completes file names itself."""
    return [click.shell_completion.CompletionItem(incomplete, type="file")]
