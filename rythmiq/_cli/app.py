"""The ``rythmiq`` command group and its entry point: the edge where errors become exit codes.

Every error leaves the CLI through :func:`main`, as one ``rythmiq: error [code] message``
line on stderr, its control characters escaped (:func:`rythmiq._util.printable`). The code,
message and exit status come from :func:`rythmiq._errors.error_dict` and
:func:`rythmiq._errors.exit_code_of`, as in the worker. click's own errors are first put in
rythmiq's terms: a usage error is ``options.invalid`` (exit code 2).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from rythmiq._cli.bundle import bundle
from rythmiq._cli.common import EXIT_CODES
from rythmiq._cli.jobs import payload_group, worker
from rythmiq._cli.keys import decrypt, keygen
from rythmiq._cli.models import models
from rythmiq._cli.process import process
from rythmiq._errors import ExitCode, OptionsError, RythmiqError, error_dict, exit_code_of
from rythmiq._logging import setup_logging
from rythmiq._util import printable
from rythmiq._version import __version__

__all__ = ["cli", "main"]

log = logging.getLogger("rythmiq.cli")


@click.group(
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


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _failed(exc: Exception) -> int:
    """Print ``exc`` as one error line on stderr; return its exit code."""
    error = error_dict(exc)
    message = str(error["message"])
    if not isinstance(exc, RythmiqError):
        message += " (run with --debug for the traceback)"
    click.echo(f"rythmiq: error [{error['code']}] {printable(_one_line(message))}", err=True)
    return exit_code_of(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rythmiq`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # standalone_mode=False: click returns the command's value (our exit code) and
        # raises its errors here instead of printing them and exiting.
        rv = cli.main(args=args, prog_name="rythmiq", standalone_mode=False)
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
