"""The work of ``rythmiq process``: options checked, inputs run, results printed in order.

It imports the pipeline (and so numpy), which is why :mod:`rythmiq._cli.process` loads it
only when the command runs.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from rythmiq._cli.inputs import Input, document_id, expand_inputs, shown
from rythmiq._cli.process_options import (
    InputOptions,
    NormalizeOptions,
    OcrOptions,
    OutputOptions,
    QualityOptions,
    StoreOptions,
    WorkerOptions,
)
from rythmiq._cli.progress import Progress
from rythmiq._cli.summary import summary
from rythmiq._errors import ExitCode, RythmiqError, error_dict
from rythmiq.batch import DEFAULT_MAX_DOCS_PER_WORKER, process_many
from rythmiq.keyring import Keyring, load_keyring
from rythmiq.layout import Ids
from rythmiq.options import ProcessOptions
from rythmiq.pipeline import process as run_pipeline
from rythmiq.results import ProcessResult
from rythmiq.storage import Store

__all__ = ["run_process"]

log = logging.getLogger("rythmiq.cli")

Outcome = ProcessResult | RythmiqError


@dataclass(frozen=True)
class _Target:
    """Where ``--out`` puts each input's artifacts: the store, the keyring and the ids."""

    store: Store
    keyring: Keyring
    options: StoreOptions
    stamp: str
    max_input_bytes: int

    def ids(self, source: Input) -> Ids:
        """The ids of one input: a job id generated per input unless ``--job-id`` is given."""
        job = self.options.job_id or f"job-{self.stamp}-{uuid.uuid4().hex[:8]}"
        doc = self.options.document_id or document_id(source, max_bytes=self.max_input_bytes)
        return Ids(self.options.user_id, job, doc)


def _keyring_for_cli() -> Keyring:
    loaded = load_keyring(create=True)
    if loaded.created:
        click.echo(
            f"rythmiq: created a new keyring at {loaded.path} (mode 0600). Back it up: "
            "without it the stored masters cannot be decrypted.",
            err=True,
        )
    return loaded.keyring


def _target(store: StoreOptions, inputs: int, options: ProcessOptions) -> _Target | None:
    """The store and keyring of ``--out`` (None without it), after the ids' checks."""
    store.check(inputs)
    if store.out is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    opened = Store.open(store.out)  # before the keyring: a bad --out creates none
    return _Target(opened, _keyring_for_cli(), store, stamp, options.max_input_bytes)


def _one_by_one(
    sources: list[Input], options: ProcessOptions, target: _Target | None, bar: Progress
) -> Iterator[tuple[Input, Outcome]]:
    """Each input processed here, in order."""
    for source in sources:
        extra: dict[str, Any] = {}
        try:
            if target is not None:
                ids = target.ids(source)  # may read the input: an error of that input
                extra = {"store": target.store, "ids": ids, "keyring": target.keyring}
            yield source, run_pipeline(source, options=options, **extra)
        except RythmiqError as exc:
            yield source, exc
        bar.step()


def _in_workers(
    sources: list[Input],
    options: ProcessOptions,
    target: _Target | None,
    workers: WorkerOptions,
    bar: Progress,
) -> Iterator[tuple[Input, Outcome]]:
    """Each input processed by a pool of worker processes, yielded in input order."""
    for item in process_many(
        sources,
        options=options,
        workers=workers.workers,
        store=None if target is None else target.store,
        ids=None if target is None else (lambda i, _source: target.ids(sources[i])),
        keyring=None if target is None else target.keyring,
        ordered=True,
        max_docs_per_worker=workers.max_docs_per_worker or DEFAULT_MAX_DOCS_PER_WORKER,
        timeout=workers.timeout,
        # Progress counts documents as they finish, even those held back for order.
        on_progress=lambda _progress: bar.step(),
    ):
        source = sources[item.index]  # process_many got the list, so indexes match
        if item.error is not None:
            yield source, item.error
        else:
            assert item.result is not None
            yield source, item.result


def run_process(
    paths: tuple[str, ...],
    *,
    inputs: InputOptions,
    quality: QualityOptions,
    normalize: NormalizeOptions,
    ocr: OcrOptions,
    store: StoreOptions,
    output: OutputOptions,
    workers: WorkerOptions,
) -> int:
    """Run ``rythmiq process``; returns the exit code (3 when some inputs failed).

    An error of the only input, or a model or options error of any, is raised.
    """
    settings = {
        **quality.settings(),
        **normalize.settings(),
        **ocr.settings(),
        **inputs.settings(),
        **store.settings(),
    }
    options = ProcessOptions(**settings)
    sources = expand_inputs(paths)
    if not sources:
        raise click.UsageError(f"no input matched {' '.join(paths)}")
    target = _target(store, len(sources), options)
    workers.check()
    failures = 0
    with Progress(len(sources), output.progress) as bar:
        if workers.workers == 1 or len(sources) == 1:
            outcomes = _one_by_one(sources, options, target, bar)
        else:
            outcomes = _in_workers(sources, options, target, workers, bar)
        for source, outcome in outcomes:
            if isinstance(outcome, RythmiqError):
                bar.clear()
                if outcome.code.startswith(("model.", "options.")) or len(sources) == 1:
                    raise outcome
                failures += 1
                log.error("%s: %s", source, outcome)
                if output.as_json:
                    bar.echo(json.dumps({"source": shown(source), "error": error_dict(outcome)}))
            elif output.as_json:
                bar.echo(json.dumps({"source": shown(source), **outcome.to_dict()}))
            else:
                bar.echo(summary(source, outcome))
    return int(ExitCode.PARTIAL if failures else ExitCode.OK)
