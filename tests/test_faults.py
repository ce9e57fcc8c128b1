"""Storage faults served by a real S3 server behind a fault-injecting proxy (tests/faults.py).

Each test points ``RYTHMIQ_S3_ENDPOINT`` at a :class:`faults.FaultProxy` in front of the
session's moto server, so every request goes over a socket through botocore's real retry
logic; nothing in rythmiq, s3fs or botocore is patched.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import pickle
import subprocess
import sys

import pytest
import s3fs
from _helpers import ScriptedEngine, render_page
from faults import FaultProxy
from PIL import Image

from rythmiq import StorageError, process
from rythmiq.keyring import Keyring
from rythmiq.layout import Ids
from rythmiq.storage import Store

IDS = Ids("user-1", "job-1", "doc-1")
KEYS = {
    "master/user-1/doc-1/master.png.enc",
    "output/user-1/job-1/normalized.jpg",
    "output/user-1/job-1/preview.jpg",
    "output/user-1/job-1/text.txt",
    "output/user-1/job-1/result.json",
}
PREVIEW = "/output/user-1/job-1/preview.jpg"
# RYTHMIQ_S3_MAX_ATTEMPTS in these tests: the first try and 2 retries. botocore's backoff
# (a random delay below 1 s, then below 2 s...) is not configurable, so budgets stay small.
ATTEMPTS = 3


@pytest.fixture(scope="module")
def page_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(render_page(width=600, height=800, font_size=20, margin=40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate("k-faults")


@pytest.fixture
def proxy(s3_env, monkeypatch):
    """A fault proxy in front of moto; s3:// stores opened from now on go through it."""
    with FaultProxy(s3_env["endpoint"]) as fp:
        monkeypatch.setenv("RYTHMIQ_S3_ENDPOINT", fp.endpoint)
        monkeypatch.setenv("RYTHMIQ_S3_MAX_ATTEMPTS", str(ATTEMPTS))
        s3fs.S3FileSystem.clear_instance_cache()
        yield fp
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def store(proxy, s3_env) -> Store:
    """The store under test, through the proxy."""
    return Store.open(f"s3://{s3_env['bucket']}/t")


@pytest.fixture
def backend(proxy, s3_env) -> Store:
    """The same store straight on moto: what really is in the bucket, faults or not."""
    return Store.open(f"s3://{s3_env['bucket']}/t", {"endpoint_url": s3_env["endpoint"]})


def with_attempts(attempts: int, monkeypatch, s3_env) -> Store:
    """The store under test, reopened with another retry budget."""
    monkeypatch.setenv("RYTHMIQ_S3_MAX_ATTEMPTS", str(attempts))
    return Store.open(f"s3://{s3_env['bucket']}/t")


def run(page_png: bytes, store: Store, keyring: Keyring, **kw):
    return process(page_png, store=store, ids=IDS, keyring=keyring, engine=ScriptedEngine(), **kw)


def stable(result_json: bytes) -> dict:
    """A stored result.json without what legitimately differs between two runs."""
    doc = json.loads(result_json)
    doc.pop("timings")
    for page in doc["pages"]:
        page.pop("timings")  # each page has its own stage times too
    for artifact in doc["artifacts"]:
        if artifact["kind"] == "master":
            # A fresh data key and nonce per write: same size, different ciphertext.
            artifact.pop("sha256")
    return doc


def test_throttling_is_retried_until_every_artifact_is_written(
    proxy, store, backend, page_png, keyring
):
    proxy.add("slowdown", method="PUT", times=ATTEMPTS - 1)
    order = []
    result = run(page_png, store, keyring, on_written=lambda a: order.append(a.kind))
    # The proxy really served the 503s, and the client sent the same PUT again each time.
    assert proxy.count("slowdown") == ATTEMPTS - 1
    master_puts = [s.status for s in proxy.seen if s.method == "PUT" and "/master/" in s.path]
    assert master_puts == [503] * (ATTEMPTS - 1) + [200]
    assert order == ["master", "normalized", "preview", "text", "result"]
    puts = [s.path for s in proxy.seen if s.method == "PUT" and s.status == 200]
    assert puts[-1].endswith("/output/user-1/job-1/result.json")  # the marker came last
    assert set(backend.list()) == KEYS
    for artifact in result.artifacts:
        assert hashlib.sha256(backend.read(artifact.key)).hexdigest() == artifact.sha256


@pytest.mark.parametrize("action", ["internal", "drop"])
def test_transient_errors_are_retried(action, proxy, store, backend, page_png, keyring):
    proxy.add(action, method="PUT", path_contains=PREVIEW, times=ATTEMPTS - 1)
    run(page_png, store, keyring)
    assert proxy.count(action, path_contains=PREVIEW) == ATTEMPTS - 1
    assert set(backend.list()) == KEYS


def test_a_write_that_always_fails_leaves_nothing_and_a_rerun_is_idempotent(
    proxy, store, backend, page_png, keyring
):
    fault = proxy.add("internal", method="PUT", path_contains=PREVIEW)
    with pytest.raises(StorageError) as exc:
        run(page_png, store, keyring)
    assert exc.value.code == "storage.write_failed" and exc.value.exit_code == 7
    assert f"s3://{backend.root}/output/user-1/job-1/preview.jpg" in exc.value.message
    # botocore spent exactly the configured budget: no second retry layer multiplies it.
    assert fault.served == ATTEMPTS
    # store_artifacts' rollback deleted what this call had written before the failure, and
    # the key of the failed write too: an interrupted write may have landed.
    assert backend.list() == []
    assert {s.path for s in proxy.seen if s.method == "DELETE"} == {
        f"/{backend.root}/master/user-1/doc-1/master.png.enc",
        f"/{backend.root}/output/user-1/job-1/normalized.jpg",
        f"/{backend.root}/output/user-1/job-1/preview.jpg",
    }

    proxy.clear()
    first = run(page_png, store, keyring)
    assert set(backend.list()) == KEYS
    result_json = backend.read("output/user-1/job-1/result.json")
    second = run(page_png, store, keyring)
    assert set(backend.list()) == KEYS  # the same keys again, nothing duplicated
    assert [a.key for a in first.artifacts] == [a.key for a in second.artifacts]
    assert stable(backend.read("output/user-1/job-1/result.json")) == stable(result_json)


def test_throttling_beyond_the_budget_fails_with_a_typed_error(
    proxy, s3_env, backend, page_png, keyring, monkeypatch
):
    store = with_attempts(2, monkeypatch, s3_env)
    fault = proxy.add("slowdown", method="PUT", path_contains="/normalized.jpg", times=2)
    with pytest.raises(StorageError) as exc:
        run(page_png, store, keyring)
    assert exc.value.code == "storage.write_failed"
    assert fault.served == 2
    assert backend.list() == []


def test_rollback_that_cannot_delete_leaves_no_marker_and_a_rerun_repairs(
    proxy, s3_env, backend, page_png, keyring, caplog, monkeypatch
):
    store = with_attempts(1, monkeypatch, s3_env)  # the point here is the rollback, not retries
    proxy.add("internal", method="PUT", path_contains="/text.txt")
    proxy.add("internal", method="DELETE")
    with (
        caplog.at_level(logging.WARNING, logger="rythmiq.storage"),
        pytest.raises(StorageError) as exc,
    ):
        run(page_png, store, keyring)
    assert exc.value.code == "storage.write_failed"
    # The master and two images written before the failure, and the failed text.txt (its
    # write may have landed): each delete fails.
    assert caplog.text.count("could not remove") == 4
    # As store_artifacts documents: only this document's deterministic keys, never the marker.
    assert set(backend.list()) == KEYS - {
        "output/user-1/job-1/text.txt",
        "output/user-1/job-1/result.json",
    }
    proxy.clear()
    run(page_png, store, keyring)
    assert set(backend.list()) == KEYS


def test_a_store_sent_to_another_process_keeps_the_budget(
    proxy, s3_env, backend, page_png, monkeypatch
):
    store = with_attempts(2, monkeypatch, s3_env)
    # Batch workers receive the Store pickled; fsspec rebuilds the file system there, in a
    # process whose instance cache is empty.
    sent = pickle.dumps(store)
    s3fs.S3FileSystem.clear_instance_cache()
    copy = pickle.loads(sent)
    # SlowDown: the error s3fs's own loop would retry again after botocore gave up.
    fault = proxy.add("slowdown", method="PUT", times=2)
    with pytest.raises(StorageError):
        copy.write("input/x.png", page_png)
    assert fault.served == 2
    copy.write("input/x.png", page_png)
    assert backend.read("input/x.png") == page_png


def test_worker_job_through_throttling_completes(proxy, s3_env, backend, page_png, keyring):
    url = f"s3://{s3_env['bucket']}/t"
    backend.write("input/a.png", page_png)
    backend.write("input/b.png", page_png)
    # Throttle the job's first PUT, and the input read of the second document.
    proxy.add("slowdown", method="PUT", times=1)
    proxy.add("slowdown", method="GET", path_contains="/input/b.png", times=1)
    body = {
        "version": 1,
        "job_id": "job-1",
        "user_id": "u1",
        "documents": [
            {"document_id": "d1", "input": "input/a.png"},
            {"document_id": "d2", "input": "input/b.png"},
        ],
        "options": {"ocr": False},
        "output": url,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["RYTHMIQ_KEYRING"] = base64.b64encode(keyring.to_json().encode()).decode()
    out = subprocess.run(
        [sys.executable, "-m", "rythmiq.worker"],
        input=json.dumps(body).encode(),
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr.decode()
    job = json.loads(out.stdout)
    assert job["status"] == "ok" and [d["status"] for d in job["documents"]] == ["ok", "ok"]
    assert proxy.count("slowdown", method="PUT") == 1
    assert proxy.count("slowdown", method="GET") == 1
    keys = set(backend.list())
    for d in ("d1", "d2"):
        assert f"master/u1/{d}/master.png.enc" in keys
        assert f"output/u1/job-1/{d}/result.json" in keys
    assert json.loads(backend.read("output/u1/job-1/result.json"))["status"] == "ok"
