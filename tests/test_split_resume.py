"""Sharded payloads (``split_payload``, ``rythmiq payload split``) and resumable worker jobs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from _helpers import ScriptedEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_worker import KEYRING, one_json, png, run_worker, worker_env

import rythmiq
from rythmiq import OptionsError, PayloadError, ProcessOptions
from rythmiq.layout import ID_PATTERN, Ids, validate_id
from rythmiq.payload import (
    DEFAULT_SHARDS,
    MAX_DOCUMENTS,
    MAX_SPLIT_BYTES,
    parse_payload,
    split_payload,
)
from rythmiq.persist import store_artifacts
from rythmiq.storage import Store
from rythmiq.worker import run_job


def big_payload(n: int, *, job_id: str = "job-7", long_inputs: bool = False) -> dict:
    # Long input keys make a 2500-document payload weigh over the 1 MiB worker limit.
    folder = "f" * 200 + "/" + "g" * 200 + "/" if long_inputs else ""
    return {
        "version": 1,
        "job_id": job_id,
        "user_id": "u-42",
        "documents": [
            {"document_id": f"doc-{i:05d}", "input": f"input/{folder}scan-{i:05d}.png"}
            for i in range(n)
        ],
        "options": {"threshold": 0.7, "ocr": False, "box": [1000, 1400]},
        "output": "s3://space/prefix",
    }


def check_shards(source: dict, shards: tuple[dict, ...]) -> None:
    """Every split invariant: order, each document once, balance, valid and parseable jobs."""
    assert [d for s in shards for d in s["documents"]] == source["documents"]
    sizes = [len(s["documents"]) for s in shards]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and max(sizes) <= MAX_DOCUMENTS
    assert sizes == sorted(sizes, reverse=True)  # the larger shards come first
    ids = [s["job_id"] for s in shards]
    assert len(set(ids)) == len(ids)
    width = len(str(len(shards)))
    for i, shard in enumerate(shards, start=1):
        assert shard["job_id"] == f"{source['job_id']}-{i:0{width}d}of{len(shards)}"
        assert ID_PATTERN.fullmatch(shard["job_id"]) and validate_id(shard["job_id"])
        assert shard["resume"] is True
        for field in ("version", "user_id", "output", "options"):
            assert shard[field] == source[field]
        parsed = parse_payload(json.dumps(shard, indent=2))
        assert parsed.resume is True and parsed.job_id == shard["job_id"]
        assert [d.document_id for d in parsed.documents] == [
            d["document_id"] for d in shard["documents"]
        ]


@pytest.mark.parametrize(
    ("n", "shards", "per_job", "expected"),
    [
        (1, None, None, 1),
        (3, None, None, 3),  # never more shards than documents
        (3, 10, None, 3),
        (10, None, None, DEFAULT_SHARDS),
        (10, 3, None, 3),
        (10, None, 3, 4),
        (10, None, 10, 1),
        (2500, None, None, DEFAULT_SHARDS),
        (2500, 3, None, 3),
        (2500, None, 1000, 3),
        (2500, None, 7, 358),
        (4500, None, None, 5),  # the default grows to keep each job within 1000 documents
    ],
)
def test_split_keeps_every_document_once_in_order(n, shards, per_job, expected):
    source = big_payload(n, long_inputs=n >= 2500)
    parts = split_payload(source, shards, per_job=per_job)
    assert len(parts) == expected
    check_shards(source, parts)
    if per_job is not None:
        assert max(len(p["documents"]) for p in parts) <= per_job


def test_split_reads_text_bytes_and_objects_alike_and_leaves_the_input_alone():
    source = big_payload(9)
    before = json.dumps(source)
    text = split_payload(json.dumps(source), 2)
    assert split_payload(before.encode(), 2) == text == split_payload(source, 2)
    assert json.dumps(source) == before
    text[0]["options"]["threshold"] = 0.1  # the shards share nothing with the input
    assert source["options"]["threshold"] == 0.7


def test_split_takes_more_than_a_job_but_the_worker_does_not():
    source = json.dumps(big_payload(2500, long_inputs=True))
    assert len(source) > 1 << 20
    with pytest.raises(PayloadError) as exc:
        parse_payload(source)
    assert exc.value.code == "payload.too_large"
    small = json.dumps(big_payload(MAX_DOCUMENTS + 1))
    with pytest.raises(PayloadError) as exc:
        parse_payload(small)
    assert exc.value.code == "payload.invalid"
    assert len(split_payload(small, 2)) == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 120),
    how=st.one_of(
        st.none(),
        st.tuples(st.just("shards"), st.integers(1, 150)),
        st.tuples(st.just("per_job"), st.integers(1, 150)),
    ),
)
def test_split_property(n, how):
    source = big_payload(n)
    if how is None:
        parts = split_payload(source)
        assert len(parts) == min(n, DEFAULT_SHARDS)
    elif how[0] == "shards":
        parts = split_payload(source, how[1])
        assert len(parts) == min(n, how[1])
    else:
        parts = split_payload(source, per_job=how[1])
        assert len(parts) == -(-n // how[1])
    check_shards(source, parts)


@pytest.mark.parametrize(
    ("kwargs", "code", "match"),
    [
        ({"shards": 2}, "payload.too_many_documents", "at least 3 shards"),
        ({"per_job": 1500}, "payload.too_many_documents", "at least 3 shards"),
    ],
)
def test_split_refuses_jobs_over_the_document_cap(kwargs, code, match):
    with pytest.raises(PayloadError, match=match) as exc:
        split_payload(big_payload(2500), **kwargs)
    assert exc.value.code == code


def test_split_errors():
    single = {k: v for k, v in big_payload(1).items() if k != "documents"}
    single.update(document_id="d1", input="input/a.png")
    with pytest.raises(PayloadError, match="nothing to split") as exc:
        split_payload(single)
    assert exc.value.code == "payload.invalid"
    with pytest.raises(PayloadError, match="shard suffix") as exc:
        split_payload(big_payload(3, job_id="j" * 124))
    assert exc.value.code == "payload.invalid_id"
    assert len(split_payload(big_payload(3, job_id="j" * 123))[0]["job_id"]) == 128
    huge = b'{"version": 1, "pad": "' + b"x" * MAX_SPLIT_BYTES + b'"}'
    with pytest.raises(PayloadError) as exc:
        split_payload(huge)
    assert exc.value.code == "payload.too_large"
    # The checks of parse_payload still apply, deep in a long list too.
    bad = big_payload(1500)
    bad["documents"][1400]["document_id"] = "a..b"
    with pytest.raises(PayloadError) as exc:
        split_payload(bad)
    assert exc.value.code == "payload.invalid_id"
    bad = big_payload(1500)
    bad["documents"][1499]["input"] = "input/%2e%2e/x.png"
    with pytest.raises(PayloadError) as exc:
        split_payload(bad)
    assert exc.value.code == "payload.invalid_input"
    with pytest.raises(PayloadError) as exc:
        split_payload({**big_payload(2), "options": {"threshold": float("nan")}})
    assert exc.value.code == "payload.malformed"
    for kwargs in ({"shards": 0}, {"per_job": 0}, {"shards": True}, {"shards": 2, "per_job": 2}):
        with pytest.raises(OptionsError):
            split_payload(big_payload(3), **kwargs)


def test_a_shard_over_the_byte_limit_asks_for_more_shards():
    # 1000 documents with 1000-character input keys: one job of them is over 1 MiB.
    deep = "/".join(["s" * 245] * 4)
    source = big_payload(MAX_DOCUMENTS)
    for i, doc in enumerate(source["documents"]):
        doc["input"] = f"input/{deep}/{i:04d}.png"
    with pytest.raises(PayloadError, match="use more shards") as exc:
        split_payload(source, 1)
    assert exc.value.code == "payload.too_large"
    check_shards(source, split_payload(source, 2))


def test_payload_resume_field():
    assert parse_payload(json.dumps(big_payload(1))).resume is False
    assert parse_payload(json.dumps({**big_payload(1), "resume": True})).resume is True
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps({**big_payload(1), "resume": "yes"}))
    assert exc.value.code == "payload.invalid"


# --------------------------------------------------------------------------- the CLI


def cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_cli_split_writes_one_file_per_shard_and_never_overwrites(tmp_path):
    source = tmp_path / "p.json"
    body = big_payload(10)
    source.write_text(json.dumps(body))
    out = tmp_path / "shards"
    run = cli("payload", "split", str(source), "--shards", "3", "--out", str(out))
    assert run.returncode == 0, run.stderr
    names = ["job-7-1of3.json", "job-7-2of3.json", "job-7-3of3.json"]
    assert run.stdout.splitlines() == [
        f"{out / name}  {size} documents" for name, size in zip(names, (4, 3, 3), strict=True)
    ]
    assert sorted(os.listdir(out)) == names  # no temporary files left either
    written = tuple(json.loads((out / name).read_text()) for name in names)
    check_shards(body, written)
    assert "warning" not in run.stderr
    stamps = {name: (out / name).stat().st_mtime_ns for name in names}

    # Already there: refused, nothing written (also when only some are there).
    (out / names[1]).unlink()
    again = cli("payload", "split", str(source), "--shards", "3", "--out", str(out))
    assert again.returncode == 2
    assert "[options.exists]" in again.stderr and "--force" in again.stderr
    assert sorted(os.listdir(out)) == [names[0], names[2]]
    assert {n: (out / n).stat().st_mtime_ns for n in (names[0], names[2])} == {
        n: stamps[n] for n in (names[0], names[2])
    }
    forced = cli("payload", "split", str(source), "--shards", "3", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert sorted(os.listdir(out)) == names
    assert tuple(json.loads((out / name).read_text()) for name in names) == written


def test_cli_split_defaults_per_job_and_the_camber_warning(tmp_path):
    source = tmp_path / "p.json"
    source.write_text(json.dumps(big_payload(8)))
    run = cli("payload", "split", str(source), "--out", str(tmp_path / "a"))
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == DEFAULT_SHARDS and "warning" not in run.stderr
    run = cli("payload", "split", str(source), "--per-job", "1", "--out", str(tmp_path / "b"))
    assert run.returncode == 0, run.stderr
    assert len(os.listdir(tmp_path / "b")) == 8
    assert "warning" in run.stderr and "Camber runs only 4-6" in run.stderr
    run = cli("payload", "split", "-", "--shards", "2", "--out", str(tmp_path / "c"),
              input=source.read_text())  # fmt: skip
    assert run.returncode == 0 and len(os.listdir(tmp_path / "c")) == 2


@pytest.mark.parametrize(
    ("content", "args", "code", "error"),
    [
        ('{"version": 1, "job_id": ', (), 4, "payload.malformed"),
        (None, (), 4, "payload.unreadable"),
        (json.dumps(big_payload(2500)), ("--shards", "2"), 4, "payload.too_many_documents"),
        (json.dumps(big_payload(5)), ("--shards", "2", "--per-job", "2"), 2, "options.invalid"),
        (json.dumps(big_payload(5)), ("--shards", "0"), 2, "options.invalid"),
    ],
)
def test_cli_split_errors(tmp_path, content, args, code, error):
    source = tmp_path / "p.json"
    if content is not None:
        source.write_text(content)
    run = cli("payload", "split", str(source), *args, "--out", str(tmp_path / "out"))
    assert run.returncode == code, run.stderr
    assert f"[{error}]" in run.stderr and run.stdout == ""
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- resume


@pytest.fixture
def keyring_env(monkeypatch):
    monkeypatch.delenv("RYTHMIQ_KEYRING_FILE", raising=False)
    monkeypatch.setenv("RYTHMIQ_KEYRING", base64.b64encode(KEYRING.to_json().encode()).decode())


@pytest.fixture(scope="module")
def small_png() -> bytes:
    return png(width=620, height=877, font_size=18, margin=45)


def local_job(tmp_path: Path, small_png: bytes, n: int = 3, **options) -> tuple[Path, dict]:
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    for i in range(n):
        store.write(f"input/p{i}.png", small_png)
    body = {
        "version": 1,
        "job_id": "job-1",
        "user_id": "u1",
        "documents": [{"document_id": f"d{i}", "input": f"input/p{i}.png"} for i in range(n)],
        "options": {"ocr": False, **options},
        "output": str(store_dir),
    }
    return store_dir, body


def doc_result(store_dir: Path, doc: str) -> Path:
    return store_dir / "output/u1/job-1" / doc / "result.json"


def stamps(store_dir: Path, doc: str) -> dict[str, tuple[bytes, int]]:
    """Every stored file of one document: its bytes and mtime."""
    folders = [store_dir / "output/u1/job-1" / doc, store_dir / "master/u1" / doc]
    return {
        str(p.relative_to(store_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def temporaries(store_dir: Path) -> list[str]:
    return [
        os.path.join(root, name)
        for root, _dirs, files in os.walk(store_dir)
        for name in files
        if name.endswith(".tmp")
    ]


def test_stored_results_say_ok_and_carry_the_options_fingerprint(tmp_path, small_png, keyring_env):
    store_dir, body = local_job(tmp_path, small_png, 1, threshold=0.6)
    code, job = run_job(json.dumps(body))
    assert code == 0, job
    stored = json.loads(doc_result(store_dir, "d0").read_text())
    options = ProcessOptions.from_dict(body["options"])
    canonical = json.dumps(options.to_dict(), sort_keys=True, separators=(",", ":"))
    assert options.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()
    assert stored["status"] == "ok" and stored["options_sha256"] == options.fingerprint()
    assert job["options_sha256"] == options.fingerprint() and job["resumed"] == 0
    assert ProcessOptions(threshold=0.61).fingerprint() != options.fingerprint()
    # The library path (and with it `rythmiq process --out`) records it too.
    opts = ProcessOptions(threshold=0.5, rotate=False)
    rythmiq.process(
        small_png,
        options=opts,
        engine=ScriptedEngine(),
        store=Store.open(str(store_dir)),
        ids=Ids("u1", "lib", "x"),
        keyring=KEYRING,
    )
    stored = json.loads((store_dir / "output/u1/lib/result.json").read_text())
    assert stored["status"] == "ok" and stored["options_sha256"] == opts.fingerprint()


def test_resume_skips_stored_documents_and_reports_them_as_processed(
    tmp_path, small_png, keyring_env
):
    store_dir, body = local_job(tmp_path, small_png)
    code, first = run_job(json.dumps(body))
    assert code == 0 and first["resumed"] == 0
    before = {d: stamps(store_dir, d) for d in ("d0", "d1", "d2")}
    job_marker = (store_dir / "output/u1/job-1/result.json").stat().st_mtime_ns
    code, again = run_job(json.dumps(body), resume=True)
    assert code == 0 and again["status"] == "ok" and again["resumed"] == 3
    assert {d: stamps(store_dir, d) for d in ("d0", "d1", "d2")} == before
    # The job result is written again, last, as the completion marker of this run.
    assert (store_dir / "output/u1/job-1/result.json").stat().st_mtime_ns > job_marker
    assert json.loads((store_dir / "output/u1/job-1/result.json").read_text())["resumed"] == 3
    for done, skipped in zip(first["documents"], again["documents"], strict=True):
        assert skipped["resumed"] is True and "resumed" not in done
        assert skipped["wall_s"] == skipped["cpu_s"] == 0.0 and "timings" not in skipped
        same = {k: v for k, v in done.items() if k not in ("timings", "wall_s", "cpu_s")}
        assert {k: v for k, v in skipped.items() if k in same} == same
    acct = again["accounting"]
    assert acct["documents"] == {"wall_s": 0.0, "cpu_s": 0.0} and acct["efficiency"] == 0.0
    assert acct["resume_check"]["wall_s"] > 0 and "store" not in acct["stages"]
    assert again["engine"] is None
    # Without resume the same job is simply done again.
    code, plain = run_job(json.dumps(body))
    assert code == 0 and plain["resumed"] == 0
    assert (
        stamps(store_dir, "d0")["output/u1/job-1/d0/result.json"]
        != before["d0"]["output/u1/job-1/d0/result.json"]
    )


def test_resume_from_the_payload_field_and_both_command_lines(tmp_path, small_png):
    store_dir, body = local_job(tmp_path, small_png, 2)
    env = worker_env()
    assert run_worker(body, env).returncode == 0
    before = stamps(store_dir, "d0")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(body))
    for command in (
        [sys.executable, "-m", "rythmiq.worker", "--payload", str(path), "--resume"],
        [sys.executable, "-m", "rythmiq", "worker", "--payload", str(path), "--resume"],
    ):
        out = subprocess.run(command, capture_output=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        assert one_json(out)["resumed"] == 2
    out = run_worker({**body, "resume": True}, env)
    assert out.returncode == 0 and one_json(out)["resumed"] == 2
    assert stamps(store_dir, "d0") == before


def test_resume_redoes_a_document_whose_options_changed(tmp_path, small_png, keyring_env):
    store_dir, body = local_job(tmp_path, small_png, 2)
    assert run_job(json.dumps(body))[0] == 0
    before = stamps(store_dir, "d1")
    changed = {**body, "options": {**body["options"], "threshold": 0.55}}
    code, job = run_job(json.dumps(changed), resume=True)
    assert code == 0 and job["resumed"] == 0
    assert not any(d.get("resumed") for d in job["documents"])
    stored = json.loads(doc_result(store_dir, "d1").read_text())
    assert stored["options_sha256"] == ProcessOptions.from_dict(changed["options"]).fingerprint()
    assert stored["pages"][0]["quality"]["threshold"] == 0.55
    key = "output/u1/job-1/d1/result.json"
    assert stamps(store_dir, "d1")[key][1] != before[key][1]
    # Run again with the new options: now everything is already there.
    assert run_job(json.dumps(changed), resume=True)[1]["resumed"] == 2


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw, other: b'{"status": "ok", "pages": [', "is not valid JSON"),
        (lambda raw, other: b"\xff\xfe", "is not valid JSON"),
        (lambda raw, other: b"[]", "does not say status ok"),
        (lambda raw, other: raw.replace(b'"status": "ok"', b'"status": "failed"'), "status ok"),
        (lambda raw, other: other, "names other ids"),  # another document's result
        (
            lambda raw, other: json.dumps({**json.loads(raw), "options_sha256": None}).encode(),
            "other options",
        ),
        (
            lambda raw, other: json.dumps({**json.loads(raw), "pages": [{}]}).encode(),
            "is not a stored result",
        ),
    ],
)
def test_resume_redoes_a_document_whose_result_is_corrupt(
    tmp_path, small_png, keyring_env, caplog, damage, reason
):
    store_dir, body = local_job(tmp_path, small_png)
    code, first = run_job(json.dumps(body))
    assert code == 0
    target = doc_result(store_dir, "d1")
    target.write_bytes(damage(target.read_bytes(), doc_result(store_dir, "d2").read_bytes()))
    kept = stamps(store_dir, "d0")
    with caplog.at_level(logging.INFO, logger="rythmiq.worker"):
        code, job = run_job(json.dumps(body), resume=True)
    assert code == 0 and job["status"] == "ok" and job["resumed"] == 2
    assert [d.get("resumed", False) for d in job["documents"]] == [True, False, True]
    assert any(reason in r.getMessage() and "d1" in r.getMessage() for r in caplog.records)
    assert stamps(store_dir, "d0") == kept
    redone = json.loads(target.read_text())
    assert redone["status"] == "ok" and redone["ids"]["document_id"] == "d1"
    assert job["documents"][1]["pages"] == first["documents"][1]["pages"]


def test_a_job_whose_documents_are_all_stored_never_loads_the_engine(
    tmp_path, small_png, keyring_env
):
    # Stored as the worker stores them, with an OCR engine that needs no model...
    store_dir, body = local_job(tmp_path, small_png, 2, ocr=True, det_model="no-such-model")
    store = Store.open(str(store_dir))
    options = ProcessOptions.from_dict(body["options"])
    for doc in body["documents"]:
        ids = Ids("u1", "job-1", doc["document_id"])
        result = rythmiq.process(small_png, options=options, engine=ScriptedEngine())
        store_artifacts(
            replace(result, ids=ids),
            store,
            ids,
            master=small_png,
            master_ext="png",
            keyring=KEYRING,
            per_document=True,
            outputs=options.outputs,
            options_sha256=options.fingerprint(),
        )
    # ...while the options name a model that does not exist: loading it would fail.
    code, job = run_job(json.dumps(body))
    assert code == 6 and job["error"]["code"] == "model.not_found"
    code, job = run_job(json.dumps(body), resume=True)
    assert code == 0, job
    assert job["engine"] is None and job["resumed"] == 2
    assert job["documents"][0]["pages"][0]["ocr"]["engine"] == "scripted"
    assert job["documents"][0]["pages"][0]["ocr"]["lines"] == 1


def test_resume_in_the_single_document_form(tmp_path, small_png, keyring_env):
    store_dir, body = local_job(tmp_path, small_png, 1)
    del body["documents"]
    body.update(job_id="solo", document_id="d0", input="input/p0.png")
    code, first = run_job(json.dumps(body))
    assert code == 0
    image = store_dir / "output/u1/solo/normalized.jpg"
    stamp = image.stat().st_mtime_ns
    code, job = run_job(json.dumps(body), resume=True)
    assert code == 0 and job["resumed"] == 1 and image.stat().st_mtime_ns == stamp
    (doc,) = job["documents"]
    assert doc["resumed"] is True and doc["result"] == first["documents"][0]["result"]
    assert doc["artifacts"] == first["documents"][0]["artifacts"]
    stored = json.loads((store_dir / "output/u1/solo/result.json").read_text())
    assert stored["resumed"] == 1 and stored["documents"][0]["resumed"] is True
    # A resumed job result resumes again; other options are processed again.
    assert run_job(json.dumps(body), resume=True)[1]["resumed"] == 1
    other = {**body, "options": {"ocr": False, "threshold": 0.5}}
    code, job = run_job(json.dumps(other), resume=True)
    assert code == 0 and job["resumed"] == 0 and image.stat().st_mtime_ns != stamp


def test_resume_removes_what_a_killed_write_left(tmp_path, small_png, keyring_env):
    store_dir, body = local_job(tmp_path, small_png, 2)
    assert run_job(json.dumps(body))[0] == 0
    doc_result(store_dir, "d1").unlink()
    left = [
        store_dir / "output/u1/job-1/d1" / f".preview.jpg.{'a' * 32}.tmp",
        store_dir / "master/u1/d1" / f".master.png.enc.{'b' * 32}.tmp",
        store_dir / "output/u1/job-1" / f".result.json.{'c' * 32}.tmp",
    ]
    for path in left:
        path.write_bytes(b"half")
    unrelated = store_dir / "output/u1/job-1/d1/.notes.tmp"
    unrelated.write_bytes(b"mine")
    code, job = run_job(json.dumps(body), resume=True)
    assert code == 0 and job["resumed"] == 1
    assert temporaries(store_dir) == [str(unrelated)]


@pytest.mark.integration
def test_resume_after_the_worker_was_killed_half_way(tmp_path):
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    n = 6
    for i in range(n):
        store.write(f"input/p{i}.png", png(width=1240, height=1754, font_size=36, margin=90))
    body = {
        "version": 1,
        "job_id": "job-1",
        "user_id": "u1",
        "documents": [{"document_id": f"d{i}", "input": f"input/p{i}.png"} for i in range(n)],
        "options": {"threads": 1},  # OCR on, the default engine
        "output": str(store_dir),
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(body))
    env = worker_env()
    log = tmp_path / "first.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rythmiq.worker", "--payload", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                if sum(doc_result(store_dir, f"d{i}").exists() for i in range(n)) >= 2:
                    break
                time.sleep(0.01)
            proc.kill()  # SIGKILL: no handler, no rollback, no job result
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -9, log.read_text()
    done = [f"d{i}" for i in range(n) if doc_result(store_dir, f"d{i}").exists()]
    assert 2 <= len(done) < n, (done, log.read_text())
    assert not (store_dir / "output/u1/job-1/result.json").exists()
    before = {d: stamps(store_dir, d) for d in done}

    out = run_worker(b"", env, args=["--payload", str(path), "--resume"])
    assert out.returncode == 0, out.stderr.decode()
    job = one_json(out)
    assert job["status"] == "ok" and job["exit_code"] == 0
    assert job["resumed"] == len(done)
    assert [d["document_id"] for d in job["documents"]] == [f"d{i}" for i in range(n)]
    assert [d["document_id"] for d in job["documents"] if d.get("resumed")] == done
    assert all(d["status"] == "ok" for d in job["documents"])
    # The finished documents were not touched: the same bytes, the same mtimes.
    assert {d: stamps(store_dir, d) for d in done} == before
    for doc in job["documents"]:
        assert doc_result(store_dir, doc["document_id"]).exists()
        assert doc["pages"][0]["ocr"]["lines"] >= 6
        if not doc.get("resumed"):
            assert doc["wall_s"] > 0
    assert job["accounting"]["documents"]["wall_s"] == pytest.approx(
        sum(d["wall_s"] for d in job["documents"]), abs=1e-3
    )
    stored = json.loads((store_dir / "output/u1/job-1/result.json").read_text())
    assert stored["status"] == "ok" and stored["resumed"] == len(done)
    assert temporaries(store_dir) == []
