"""rythmiq.dask on a real LocalCluster: worker processes, a worker plugin, S3 URLs."""

from __future__ import annotations

import base64
import collections
import json

import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from batch_engines import KILL, RAISE, command_engine, page_png  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from rythmiq import BatchError, Ids, ModelError, OptionsError, ProcessOptions  # noqa: E402
from rythmiq.crypto import EncryptionContext, decrypt  # noqa: E402
from rythmiq.dask import PLUGIN_NAME, process_on_cluster  # noqa: E402
from rythmiq.keyring import Keyring  # noqa: E402
from rythmiq.storage import Store  # noqa: E402

# rotate=False: orientation detection would hand CommandEngine line crops, not the page,
# and these tests are about scheduling on a cluster, not orientation.
FAST = ProcessOptions(preview_size=64, rotate=False)


def cluster(**kw):
    return LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=":0", **kw
    )


@pytest.fixture(scope="module")
def client():
    with cluster() as c, Client(c) as cl:
        yield cl


def run(client, sources, **kw):
    kw.setdefault("engine_factory", command_engine)
    kw.setdefault("options", FAST)
    return list(process_on_cluster(client, sources, **kw))


def test_order_completeness_and_one_engine_per_worker(client):
    results = run(client, [page_png(i) for i in range(40)], ordered=True)
    assert [r.index for r in results] == list(range(40))
    assert all(r.ok and r.result.ocr.text == f"doc {r.index}" for r in results)
    per_pid = collections.Counter(r.worker_pid for r in results)
    assert len(per_pid) == 2  # both worker processes took documents
    engines = client.run(lambda dask_worker: id(dask_worker.plugins[PLUGIN_NAME].engine))
    assert len(engines) == 2 and all(engines.values())
    # The same engine object served every task on a worker: run again, same engines.
    run(client, [page_png(i) for i in range(4)])
    again = client.run(lambda dask_worker: id(dask_worker.plugins[PLUGIN_NAME].engine))
    assert len(again) == 2


def test_the_nanny_malloc_setting_is_undone_on_the_workers(client):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which makes PaddleOCR ~3x slower."""
    import platform

    run(client, [page_png(0)])
    env = client.run(lambda: __import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"))
    tuned = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].malloc_tuned)
    if platform.libc_ver()[0] != "glibc" or set(env.values()) == {None}:
        pytest.skip("needs glibc and Dask's nanny environment")
    assert set(tuned.values()) == {True}
    run(client, [page_png(0)], tune_malloc=False)
    tuned = client.run(lambda dask_worker: dask_worker.plugins[PLUGIN_NAME].malloc_tuned)
    assert set(tuned.values()) == {False}


def test_unordered_results_and_poisoned_documents(client):
    sources = [page_png(i) for i in range(12)]
    sources[2] = page_png(2, RAISE)
    sources[5] = b"not an image"
    results = {r.index: r for r in run(client, sources)}
    assert sorted(results) == list(range(12))
    assert results[2].error.code == "internal" and "poisoned page" in results[2].error.message
    assert results[5].error.code == "input.unsupported"
    assert all(results[i].ok for i in range(12) if i not in (2, 5))


def test_as_dict_results_are_json(client):
    dicts = run(client, [page_png(i) for i in range(3)] + [b"junk"], as_dict=True, ordered=True)
    assert [d["index"] for d in dicts] == [0, 1, 2, 3]
    assert dicts[0]["ok"] and dicts[0]["result"]["page_count"] == 1
    assert dicts[0]["result"]["pages"][0]["ocr"]["text"] == "doc 0"
    assert dicts[0]["result"]["text"] == "doc 0"
    assert dicts[3]["error"]["code"] == "input.unsupported" and dicts[3]["result"] is None
    json.dumps(dicts)


def test_lazy_sources_are_read_ahead_only_so_far(client):
    taken = []

    def sources():
        for i in range(30):
            taken.append(i)
            yield page_png(i)

    batch = process_on_cluster(
        client, sources(), options=FAST, engine_factory=command_engine, max_in_flight=3
    )
    first = next(batch)
    assert first.ok and len(taken) <= 4
    assert sorted([first.index] + [r.index for r in batch]) == list(range(30))


def broken_models():
    raise ModelError("no models on this worker", code="model.not_found")


def test_a_model_error_on_the_workers_is_raised(client):
    with pytest.raises(ModelError, match="no models on this worker"):
        run(client, [page_png(0)], engine_factory=broken_models)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ids": [Ids("u", "j", "d")]},  # ids without a store
        {"options": {"threshold": 0.5}},
        {"max_in_flight": 0},
    ],
)
def test_bad_arguments(client, kwargs):
    with pytest.raises(OptionsError):
        process_on_cluster(client, [page_png(0)], **kwargs)


def test_a_killed_worker_loses_only_its_documents():
    sources = [page_png(i) for i in range(16)]
    sources[5] = page_png(5, KILL)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        cluster() as c,
        Client(c) as cl,
    ):
        results = run(cl, sources)
    assert sorted(r.index for r in results) == list(range(16))
    by_index = {r.index: r for r in results}
    assert isinstance(by_index[5].error, BatchError)
    assert by_index[5].error.code == "batch.worker_died"
    failed = [r for r in results if not r.ok]
    # Only the task running on the dead worker (and at most one queued behind it) is lost.
    assert len(failed) <= 2 and all(r.error.code == "batch.worker_died" for r in failed)


def test_s3_urls_read_and_written_on_the_workers(s3_env, monkeypatch):
    """Workers read s3:// inputs and write artifacts with their own environment and keyring."""
    import s3fs

    from rythmiq.storage import s3_storage_options

    keyring = Keyring.generate("dask-k1")
    fs = s3fs.S3FileSystem(**s3_storage_options())
    bucket = s3_env["bucket"]
    urls = []
    for i in range(4):
        fs.pipe_file(f"{bucket}/input/page-{i}.png", page_png(i))
        urls.append(f"s3://{bucket}/input/page-{i}.png")
    # Workers inherit this environment: the S3 endpoint, credentials and keyring stay there.
    monkeypatch.setenv("RYTHMIQ_KEYRING", base64.b64encode(keyring.to_json().encode()).decode())
    with cluster() as c, Client(c) as cl:
        results = run(
            cl,
            urls,
            store=f"s3://{bucket}/store",
            ids=lambda i, _url: Ids("user-1", f"job-{i}", f"doc-{i}"),
            ordered=True,
        )
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.source for r in results] == urls
    store = Store.open(f"s3://{bucket}/store")
    for r in results:
        keys = [a.key for a in r.result.artifacts]
        assert keys[-1] == f"output/user-1/job-{r.index}/result.json" and store.exists(keys[-1])
        master = f"master/user-1/doc-{r.index}/master.png.enc"
        ctx = EncryptionContext("user-1", f"doc-{r.index}", master)
        assert decrypt(store.read(master), keyring, ctx) == page_png(r.index)


@pytest.mark.integration
def test_the_dask_example_runs_on_a_local_cluster():
    """examples/dask_cluster.py as a user runs it: real PaddleOCR on 2 Dask worker processes."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "examples" / "dask_cluster.py"), "examples/data"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = out.stdout.strip()
    assert line.startswith("examples/data/sample.jpg: quality") and "PASS" in line
    assert "first line: 'NORTHWIND" in line  # the sample invoice's letterhead, read by OCR
