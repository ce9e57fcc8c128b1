"""The work of ``rythmiq payload split``: job payloads written, one per shard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from rythmiq._errors import ExitCode, OptionsError
from rythmiq.layout import job_payload_key
from rythmiq.payload import (
    CAMBER_CONCURRENT_JOBS,
    MAX_SPLIT_BYTES,
    read_payload_bytes,
    split_payload,
)
from rythmiq.storage import Store

__all__ = ["run_payload_split"]


def run_payload_split(
    *, source: str, shards: int | None, per_job: int | None, out_dir: Path, force: bool
) -> int:
    """Write one job payload per shard into ``out_dir``; print each one's path and size."""
    if shards is not None and per_job is not None:
        raise click.UsageError("give --shards or --per-job, not both")
    parts = split_payload(read_payload_bytes(source, MAX_SPLIT_BYTES), shards, per_job=per_job)
    keys = [job_payload_key(part["job_id"]) for part in parts]
    if not force:
        existing = [str(out_dir / key) for key in keys if os.path.lexists(out_dir / key)]
        if existing:
            raise OptionsError(
                f"{len(existing)} job payload file(s) already exist ({', '.join(existing[:3])}"
                f"{', ...' if len(existing) > 3 else ''}); pass --force to replace them",
                code="options.exists",
            )
    # The same temp-file, fsync and rename as any local artifact write.
    folder = Store.open(str(out_dir.resolve()))
    for key, part in zip(keys, parts, strict=True):
        folder.write(key, (json.dumps(part, indent=2) + "\n").encode("utf-8"))
        click.echo(f"{out_dir / key}  {len(part['documents'])} documents")
    if len(parts) > CAMBER_CONCURRENT_JOBS:
        click.echo(
            f"rythmiq: warning: {len(parts)} job payloads; Camber runs only 4-6 jobs at once, "
            "the others wait in its queue",
            err=True,
        )
    return int(ExitCode.OK)
