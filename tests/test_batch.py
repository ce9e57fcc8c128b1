"""process_many: real worker processes, real crashes, real recycling."""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, render_page
from batch_engines import HANG, KILL, RAISE, command_engine, page_png
from PIL import Image

from rythmiq import BatchError, Ids, ModelError, OptionsError, ProcessOptions, process_many
from rythmiq._system import usable_cpus
from rythmiq.batch import BatchProgress, plan_workers
from rythmiq.keyring import Keyring
from rythmiq.metrics import word_f1
from rythmiq.storage import Store

# rotate=False: orientation detection would hand CommandEngine line crops, not the page,
# and these tests are about batching, not orientation.
FAST = ProcessOptions(preview_size=64, rotate=False)
# run_batch asks for 2 workers; plan_workers cuts that to the usable cores.
WORKERS = min(2, usable_cpus())
RYTHMIQ = (sys.executable, "-m", "rythmiq")


def run_batch(sources, **kw):
    kw.setdefault("engine_factory", command_engine)
    kw.setdefault("options", FAST)
    kw.setdefault("workers", 2)
    return list(process_many(sources, **kw))


def assert_exactly_once(results, n):
    indexes = [r.index for r in results]
    assert sorted(indexes) == list(range(n)), "every document exactly once"


def assert_read_back(results):
    for r in results:
        if r.ok:
            assert r.result.ocr.text == f"doc {r.index}", "result belongs to its own input"


@pytest.fixture(autouse=True)
def no_leftover_workers():
    yield
    for child in multiprocessing.active_children():
        child.join(5)
    assert multiprocessing.active_children() == []


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("workers", "threads", "expected"),
    [
        (None, None, (2, 1)),
        (1, None, (1, 1)),
        (4, None, (2, 1)),  # never more workers than cores
        (None, 2, (1, 2)),
        (2, 2, (2, 1)),  # workers x threads fits the cores
        (1, 8, (1, 2)),
    ],
)
def test_plan_never_exceeds_the_cores(workers, threads, expected):
    assert plan_workers(workers, threads, cores=2) == expected
    w, t = plan_workers(workers, threads, cores=2)
    assert w * t <= 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_plan_rejects_bad_counts(bad):
    with pytest.raises(OptionsError):
        plan_workers(bad, None, cores=2)
    with pytest.raises(OptionsError):
        plan_workers(None, bad, cores=2)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_plan_respects_cpu_affinity():
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from rythmiq.batch import plan_workers; print(plan_workers(), plan_workers(4, 2))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1, 1) (1, 1)"


# --------------------------------------------------------------------------- outcomes


def test_n_in_n_out_without_duplicates():
    results = run_batch([page_png(i) for i in range(60)])
    assert_exactly_once(results, 60)
    assert all(r.ok for r in results)
    assert_read_back(results)
    assert len({r.worker_pid for r in results}) == WORKERS
    assert all(r.worker_rss_mb and r.worker_peak_rss_mb >= r.worker_rss_mb * 0.5 for r in results)


def test_ordered_yields_in_input_order(tmp_path):
    paths = []
    for i in range(25):
        paths.append(tmp_path / f"p{i}.png")
        paths[-1].write_bytes(page_png(i, size=48 + 40 * (i % 3)))
    results = run_batch(paths, ordered=True)
    assert [r.index for r in results] == list(range(25))
    assert [r.source for r in results] == [str(p) for p in paths]
    assert_read_back(results)


def test_poisoned_documents_among_good_ones(tmp_path):
    sources: list = [page_png(i) for i in range(20)]
    sources[3] = page_png(3, RAISE)  # an untyped exception inside the engine
    sources[8] = b"this is not an image"
    sources[12] = str(tmp_path / "missing.png")
    results = {r.index: r for r in run_batch(sources)}
    assert len(results) == 20
    assert results[3].error.code == "internal" and "poisoned page" in results[3].error.message
    assert results[8].error.code == "input.unsupported"
    assert results[12].error.code == "input.not_found"
    assert results[12].source == str(tmp_path / "missing.png")
    good = [r for i, r in results.items() if i not in (3, 8, 12)]
    assert all(r.ok for r in good)
    assert_read_back(good)
    d = results[3].to_dict()
    assert d["ok"] is False and d["result"] is None and d["error"]["code"] == "internal"
    json.dumps(results[0].to_dict())


def test_worker_killed_with_sigkill_is_replaced_and_its_document_reported():
    sources = [page_png(i) for i in range(30)]
    sources[7] = page_png(7, KILL)
    results = run_batch(sources)
    assert_exactly_once(results, 30)
    by_index = {r.index: r for r in results}
    lost = by_index[7]
    assert not lost.ok and isinstance(lost.error, BatchError)
    assert lost.error.code == "batch.worker_died" and "SIGKILL" in lost.error.message
    assert all(r.ok for r in results if r.index != 7)
    assert_read_back(results)


def test_the_only_worker_killed_is_replaced():
    sources = [page_png(i) for i in range(6)]
    sources[2] = page_png(2, KILL)
    results = run_batch(sources, workers=1, ordered=True)
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    before, after = {results[0].worker_pid}, {r.worker_pid for r in results[3:]}
    assert len(before | after) == 2 and not before & after


def test_worker_killed_from_outside_loses_at_most_its_own_document():
    killed = []

    def kill_first_worker(progress: BatchProgress) -> None:
        if not killed and progress.last.worker_pid:
            killed.append(progress.last.worker_pid)
            os.kill(progress.last.worker_pid, signal.SIGKILL)

    results = run_batch([page_png(i) for i in range(40)], on_progress=kill_first_worker)
    assert_exactly_once(results, 40)
    failed = [r for r in results if not r.ok]
    # The worker was idle (its next document goes elsewhere) or busy (that one is reported).
    assert len(failed) <= 1
    assert all(r.error.code == "batch.worker_died" for r in failed)
    assert_read_back(results)


def test_hung_document_times_out_and_the_batch_goes_on():
    sources = [page_png(i) for i in range(8)]
    sources[3] = page_png(3, HANG)
    results = {r.index: r for r in run_batch(sources, timeout=3)}
    assert len(results) == 8
    assert results[3].error.code == "batch.timeout"
    assert results[3].wall_s >= 3
    assert all(results[i].ok for i in range(8) if i != 3)


def test_workers_are_recycled_after_n_documents():
    results = run_batch([page_png(i) for i in range(23)], max_docs_per_worker=5)
    assert_exactly_once(results, 23)
    per_pid = collections.Counter(r.worker_pid for r in results)
    assert max(per_pid.values()) <= 5
    assert len(per_pid) >= 5  # ceil(23 / 5)
    assert all(r.ok for r in results)


def test_a_thousand_documents_lose_nothing():
    results = run_batch(
        [page_png(i, size=32) for i in range(1000)],
        options=ProcessOptions(preview_size=32, box=None, rotate=False),
        max_docs_per_worker=300,
    )
    assert_exactly_once(results, 1000)
    assert all(r.ok for r in results)
    assert_read_back(results)


def test_lazy_sources_and_progress():
    taken = []

    def sources():
        for i in range(12):
            taken.append(i)
            yield page_png(i)

    seen: list[BatchProgress] = []
    batch = process_many(
        sources(), options=FAST, workers=2, engine_factory=command_engine, on_progress=seen.append
    )
    assert taken == []  # nothing starts before the first result is asked for
    first = next(batch)
    assert len(taken) <= 12 and first.ok
    rest = list(batch)
    assert_exactly_once([first, *rest], 12)
    assert [p.done for p in seen] == list(range(1, 13))
    assert all(p.total is None and p.eta_s is None for p in seen)
    assert seen[-1].docs_per_s > 0 and seen[-1].failed == 0


def test_progress_counts_failures_and_eta():
    seen: list[BatchProgress] = []
    sources = [page_png(i) for i in range(6)]
    sources[2] = b"junk"
    run_batch(sources, on_progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 7))
    assert seen[-1].failed == 1 and seen[-1].total == 6 and seen[-1].eta_s == 0
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in seen)


def test_stopping_early_stops_the_workers():
    batch = process_many(
        [page_png(i) for i in range(50)], options=FAST, workers=2, engine_factory=command_engine
    )
    assert next(batch).ok
    assert len(multiprocessing.active_children()) == WORKERS
    batch.close()
    assert multiprocessing.active_children() == []


# --------------------------------------------------------------------------- store


def test_every_document_is_stored(tmp_path):
    store_dir = tmp_path / "store"
    keyring = Keyring.generate("k1")
    results = run_batch(
        [page_png(i) for i in range(6)],
        store=str(store_dir),
        ids=lambda i, _source: Ids("user-1", "job-1", f"doc-{i}"),
        keyring=keyring,
    )
    assert all(r.ok for r in results)
    store = Store.open(str(store_dir))
    for r in results:
        assert r.result.ids == Ids("user-1", "job-1", f"doc-{r.index}")
        keys = [a.key for a in r.result.artifacts]
        assert keys[-1].endswith("result.json")
        assert all(store.exists(k) for k in keys)
        # One flat output folder per job: these documents share the job, so use per-doc ids.
    assert (store_dir / "master/user-1/doc-5/master.png.enc").is_file()


def test_s3_urls_are_read_by_the_workers(s3_env):
    import s3fs

    from rythmiq.storage import s3_storage_options

    fs = s3fs.S3FileSystem(**s3_storage_options())
    urls = []
    for i in range(5):
        fs.pipe_file(f"{s3_env['bucket']}/input/p{i}.png", page_png(i))
        urls.append(f"s3://{s3_env['bucket']}/input/p{i}.png")
    urls.append(f"s3://{s3_env['bucket']}/input/missing.png")
    results = run_batch(urls, ordered=True)
    assert [r.source for r in results] == urls
    assert all(r.ok for r in results[:5])
    assert_read_back(results[:5])
    assert results[5].error.code == "storage.not_found"


def test_a_bad_id_fails_only_its_document(tmp_path):
    def ids(i, _source):
        return Ids("user-1", "job-1", "../escape" if i == 2 else f"doc-{i}")

    results = {
        r.index: r
        for r in run_batch(
            [page_png(i) for i in range(4)],
            store=str(tmp_path / "s"),
            ids=ids,
            keyring=Keyring.generate("k1"),
        )
    }
    assert results[2].error.code.startswith("storage.")
    assert all(results[i].ok for i in (0, 1, 3))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0},
        {"max_docs_per_worker": 0},
        {"timeout": -1},
        {"start_method": "teleport"},
        {"ids": [Ids("u", "j", "d")]},  # ids without a store
        {"store": "memory://batch", "ids": lambda i, s: Ids("u", "j", f"d{i}")},
        {"options": {"threshold": 0.5}},
    ],
)
def test_bad_arguments_are_refused_before_any_worker_starts(kwargs):
    with pytest.raises(OptionsError):
        process_many([page_png(0)], **kwargs)
    assert multiprocessing.active_children() == []


def test_ids_must_match_the_sources(tmp_path):
    with pytest.raises(OptionsError, match="2 ids for 1 sources"):
        process_many(
            [page_png(0)],
            store=str(tmp_path),
            ids=[Ids("u", "j", "a"), Ids("u", "j", "b")],
            keyring=Keyring.generate("k1"),
        )


# --------------------------------------------------------------------------- fatal errors


def broken_models():
    raise ModelError("no models here", code="model.not_found")


def dies_at_start():
    os._exit(3)


def test_a_model_error_stops_the_batch():
    with pytest.raises(ModelError, match="no models here"):
        run_batch([page_png(i) for i in range(5)], engine_factory=broken_models)


def test_workers_that_die_at_start_end_the_batch():
    with pytest.raises(BatchError) as info:
        run_batch([page_png(i) for i in range(5)], engine_factory=dies_at_start)
    assert info.value.code == "batch.worker_start_failed"
    assert "exited with status 3" in info.value.message


# --------------------------------------------------------------------------- CLI


def _folder(root: Path, n: int) -> Path:
    folder = root / "scans"
    folder.mkdir()
    for i in range(n):
        (folder / f"page-{i:02d}.png").write_bytes(page_png(i, size=64))
    return folder


def test_cli_workers_with_a_broken_file(tmp_path):
    folder = _folder(tmp_path, 6)
    (folder / "page-03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = subprocess.run(
        [*RYTHMIQ, "process", "--no-ocr", "--json", "--workers", "2", "--progress", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 3, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(d["source"]).name for d in lines] == [f"page-{i:02d}.png" for i in range(6)]
    assert lines[3]["error"]["code"].startswith("input.")
    assert all(
        d["page_count"] == 1 and "quality" in d["pages"][0] and "error" not in d
        for i, d in enumerate(lines)
        if i != 3
    )
    # Forced on a pipe (--progress): tqdm's bar in plain characters, ending full at 6/6.
    progress = [line for line in out.stderr.splitlines() if line.startswith("rythmiq:")]
    assert re.fullmatch(r"rythmiq: 100%\|#+\| 6/6 \[[\d:]+<00:00, +[\d.]+doc/s\]", progress[-1])
    assert progress[0].startswith("rythmiq:   0%|")


def test_cli_workers_options_need_workers(tmp_path):
    folder = _folder(tmp_path, 2)
    out = subprocess.run(
        [*RYTHMIQ, "process", "--no-ocr", "--timeout", "5", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 2 and "need --workers" in out.stderr


@pytest.mark.integration
def test_cli_folder_with_two_workers_and_real_ocr(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        page = render_page(width=900, height=500, font_size=28, margin=40)
        Image.fromarray(page).save(folder / f"letter-{i}.png")
    out_dir = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYTHMIQ_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out = subprocess.run(
        [*RYTHMIQ, "process", str(folder), "--json", "--workers", "2", "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 3
    expected = "\n".join(PAGE_LINES)
    for d in lines:
        assert d["page_count"] == 1
        assert word_f1(d["pages"][0]["ocr"]["text"], expected) > 0.8
        assert d["text"] == d["pages"][0]["ocr"]["text"]
        assert d["artifacts"][-1]["key"].endswith("result.json")
        assert (out_dir / d["artifacts"][-1]["key"]).is_file()
    assert "doc/s" not in out.stderr  # stderr is not a terminal: no progress bar
