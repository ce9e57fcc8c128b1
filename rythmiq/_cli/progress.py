"""The progress bar ``rythmiq process`` draws on stderr over several inputs, with tqdm.

tqdm rather than rich: the core install already has it (``rapidocr`` depends on it), it is one
pure-Python package without dependencies, and it imports in a few milliseconds; rich would add
itself and its dependencies to every install for one bar. tqdm's rate and ETA are smoothed
over the recent documents, and the bar fits the terminal's width.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A progress bar on stderr for runs over several inputs: count, docs/s and ETA.

    By default it is shown only when stderr is a terminal (``force`` overrides that), and never
    for one input. stdout carries only results, so a pipe or file never sees it. Each result
    line is printed above the bar (:meth:`echo`), which is redrawn below it.
    """

    def __init__(self, total: int, force: bool | None = None) -> None:
        tty = sys.stderr.isatty()
        self.shown = total > 1 and (tty if force is None else force)
        self._redraw = self.shown and tty  # results printed above a bar on the terminal
        self._bar = tqdm(
            total=total,
            desc="rythmiq",
            unit="doc",
            file=sys.stderr,
            disable=not self.shown,
            dynamic_ncols=tty,
            ascii=not tty,  # a forced bar into a log file: plain characters
            # Off a terminal (a forced bar into a log file) a line per second at most.
            mininterval=0.1 if tty else 1.0,
            leave=True,
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.close()

    def clear(self) -> None:
        """Wipe the bar (before a log line); the next :meth:`step` draws it again."""
        if self._redraw:
            self._bar.clear()

    def echo(self, text: str) -> None:
        """Print ``text`` on stdout above the bar."""
        if self._redraw:
            with self._bar.external_write_mode(file=sys.stdout):
                click.echo(text)
        else:
            click.echo(text)

    def step(self) -> None:
        """Count one document as done."""
        self._bar.update(1)
