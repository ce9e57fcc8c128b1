"""The ``rythmiq`` command group and its entry point: the edge where errors become exit codes.

Every error leaves the CLI through :func:`main`, as one ``rythmiq: error [code] message``
line on stderr, its control characters escaped (:func:`rythmiq._util.printable`). The code,
message and exit status come from :func:`rythmiq._errors.error_dict` and
:func:`rythmiq._errors.exit_code_of`, as in the worker. click's own errors are first put in
rythmiq's terms: a usage error is ``options.invalid`` (exit code 2).

Two endings are not errors. ``rythmiq`` alone prints the help (exit 0). A reader that closes
stdout early (``rythmiq process ... | head -1``) stops the run quietly, with exit status
141, 128 + SIGPIPE, what a shell reports for a Unix tool stopped the same way: no
traceback, and not 1, which means a bug. The inputs not yet done are not processed.
"""

from __future__ import annotations

import logging
import os
import select
import sys
from collections.abc import Sequence
from typing import Any

import click

from rythmiq._cli.bundle import bundle
from rythmiq._cli.common import EXIT_CODES
from rythmiq._cli.jobs import payload_group, worker
from rythmiq._cli.keys import decrypt, keygen
from rythmiq._cli.models import models
from rythmiq._cli.process import process
from rythmiq._errors import (
    EXIT_BROKEN_PIPE,
    ExitCode,
    OptionsError,
    RythmiqError,
    error_dict,
    exit_code_of,
)
from rythmiq._logging import setup_logging
from rythmiq._util import error_line
from rythmiq._version import __version__

__all__ = ["cli", "main"]

log = logging.getLogger("rythmiq.cli")


class _StdoutClosed(Exception):
    """stdout's reader went away (a broken pipe): the run stops quietly."""


class _Group(click.Group):
    """The ``rythmiq`` group: a broken pipe on stdout leaves it as :class:`_StdoutClosed`.

    click would catch the ``BrokenPipeError`` itself and exit 1, the status of a bug.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
            sys.stdout.flush()  # a pipe closed early fails here, not at the interpreter's exit
            return rv
        except BrokenPipeError as exc:
            if _stdout_is_broken():
                raise _StdoutClosed() from exc
            # Another pipe: a bug, reported as an internal error (click would hide it).
            raise RuntimeError(f"broken pipe: {exc}") from exc


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
    no_args_is_help=False,
)
@click.version_option(__version__, prog_name="rythmiq", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Log details and tracebacks to stderr.")
def cli(debug: bool) -> None:
    """Document image quality scoring, normalization and OCR."""
    setup_logging(debug)


for _command in (process, worker, payload_group, models, keygen, decrypt, bundle):
    cli.add_command(_command)


def _failed(exc: Exception) -> int:
    """Print ``exc`` as one error line on stderr; return its exit code."""
    error = error_dict(exc)
    if not isinstance(exc, RythmiqError):
        error["message"] = f"{error['message']} (run with --debug for the traceback)"
    click.echo(error_line(error), err=True)
    return exit_code_of(exc)


def _stdout_is_broken() -> bool:
    """Whether stdout is a pipe whose reader is gone (poll reports an error or a hang-up); where
    that cannot be asked (no poll, no file descriptor), a broken pipe is taken to be it."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def _stdout_closed() -> int:
    """The exit status after a broken pipe on stdout, with stdout pointed at the null device
    so that the interpreter's last flush at exit does not fail on it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind sys.stdout: nothing to flush
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rythmiq`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:  # bare `rythmiq`: the help, as `rythmiq --help` prints it
        args = ["--help"]
    try:
        # standalone_mode=False: click returns the command's value (our exit code) and
        # raises its errors here instead of printing them and exiting.
        rv = cli.main(args=args, prog_name="rythmiq", standalone_mode=False)
    except _StdoutClosed:
        return _stdout_closed()
    except KeyboardInterrupt as exc:
        return exit_code_of(exc)
    except click.Abort:  # click's own Ctrl-C
        return exit_code_of(KeyboardInterrupt())
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return _failed(OptionsError(exc.format_message() + hint))
    except click.ClickException as exc:
        return _failed(RythmiqError(exc.format_message()))
    except RythmiqError as exc:
        log.debug("error details", exc_info=True)
        return _failed(exc)
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        return _failed(exc)
    return rv if isinstance(rv, int) else int(ExitCode.OK)
