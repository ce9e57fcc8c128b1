"""The progress line ``rythmiq process`` draws on stderr over several inputs."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

__all__ = ["Progress"]


class Progress:
    """A progress line on stderr for runs over several inputs: count, docs/s and ETA.

    By default it is shown only when stderr is a terminal (``force`` overrides that). stdout
    carries only results, so a pipe or file never sees it. On a terminal the line is redrawn
    in place and wiped before each result or log line; elsewhere each step is its own line.
    """

    WIDTH = 24

    def __init__(self, total: int, force: bool | None = None) -> None:
        self._total = total
        self._t0 = time.monotonic()
        self._done = 0
        self._tty = sys.stderr.isatty()
        self._show = total > 1 and (self._tty if force is None else force)

    def __enter__(self) -> Progress:
        self._draw()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._show and self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def line(self) -> str:
        """The progress line: bar, count, throughput and ETA."""
        done, total = self._done, self._total
        filled = self.WIDTH * done // total if total else self.WIDTH
        elapsed = time.monotonic() - self._t0
        rate = done / elapsed if done and elapsed > 0 else 0.0
        if rate > 0 and done < total:
            eta = time.strftime("%H:%M:%S", time.gmtime((total - done) / rate))
        else:
            eta = "--:--:--"
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"rythmiq [{bar}] {done}/{total}  {rate:.2f} docs/s  ETA {eta}"

    def _draw(self) -> None:
        if not self._show:
            return
        if self._tty:
            sys.stderr.write("\r\033[K" + self.line())
        else:
            sys.stderr.write(self.line() + "\n")
        sys.stderr.flush()

    def clear(self) -> None:
        if self._show and self._tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def echo(self, text: str) -> None:
        self.clear()
        click.echo(text)
        if self._show and self._tty:
            self._draw()

    def step(self) -> None:
        self._done += 1
        self._draw()
