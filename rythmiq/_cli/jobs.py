"""The batch-job commands: ``rythmiq worker`` and ``rythmiq payload split``.

Their work, :func:`rythmiq.worker.main` and :mod:`rythmiq._cli.payload_run`, is loaded when a
command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rythmiq._cli.common import EXIT_CODES, complete_files
from rythmiq._cli.lazy import run_payload_split, run_worker

__all__ = ["payload_group", "worker"]


@click.command()
@click.option(
    "--payload",
    metavar="FILE",
    shell_complete=complete_files,
    help="Payload file (default: stdin).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Skip documents a previous run of this job already stored with the same options "
    '(as "resume": true in the payload does).',
)
@click.pass_context
def worker(ctx: click.Context, payload: str | None, resume: bool) -> int:
    """Run one batch job from a JSON payload; print one JSON job result.

    The same as `python -m rythmiq.worker`. Artifacts and
    output/{user_id}/{job_id}/result.json (written last) go to the payload's store.
    """
    # Without --debug the worker's own default ($RYTHMIQ_DEBUG) applies.
    debug = bool(ctx.find_root().params.get("debug"))
    return run_worker(payload, debug=True if debug else None, resume=resume)


@click.group("payload", no_args_is_help=False)
def payload_group() -> None:
    """Work with worker payloads."""


@payload_group.command("split", epilog=EXIT_CODES)
@click.argument("source", metavar="PAYLOAD", shell_complete=complete_files)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    metavar="N",
    help="Number of job payloads (default 4, more when one would hold over 1000 documents).",
)
@click.option(
    "--per-job",
    type=click.IntRange(min=1),
    metavar="M",
    help="Instead of --shards: at most M documents per job payload.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the job payloads, DIR/<job_id>.json (created if missing).",
)
@click.option("--force", is_flag=True, help="Replace job payload files that already exist.")
def payload_split(**options: Any) -> int:
    """Cut a payload's documents into job payloads, one per worker job.

    PAYLOAD is a payload file in the list form (or - for stdin); it may hold more than the
    1000 documents of one job, up to 64 MiB. The documents are cut into contiguous runs of
    balanced size, in order; each job payload keeps the user, output and options, gets the
    job id <job_id>-<i>of<N> and "resume": true. One line per job payload is printed: its
    path and number of documents.
    """
    return run_payload_split(**options)
