"""The worker shim end to end: real subprocesses, stdin payloads, a real S3 server."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, on_terminal, render_page
from PIL import Image

from rythmiq import CryptoError
from rythmiq.crypto import EncryptionContext, decrypt
from rythmiq.keyring import Keyring
from rythmiq.metrics import word_f1
from rythmiq.storage import Store

ROOT = Path(__file__).resolve().parents[1]
KEYRING = Keyring.generate("k-worker")


def png(**kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(render_page(**kw)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def page_bytes() -> bytes:
    return png(width=850, height=1100, font_size=24, margin=60)


def worker_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RYTHMIQ_KEYRING",))}
    env["RYTHMIQ_KEYRING"] = base64.b64encode(KEYRING.to_json().encode()).decode()
    env.update(extra or {})
    return env


def run_worker(payload, env, *, args=(), timeout=600):
    data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    if isinstance(data, str):
        data = data.encode()
    return subprocess.run(
        [sys.executable, "-m", "rythmiq.worker", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def one_json(out) -> dict:
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1, out.stdout
    return json.loads(lines[0])


@pytest.fixture
def s3_store(s3_env, page_bytes):
    url = f"s3://{s3_env['bucket']}/w"
    store = Store.open(url)
    store.write("input/a.png", page_bytes)
    store.write("input/b.png", page_bytes)
    store.write("input/broken.png", page_bytes[: len(page_bytes) // 3])
    env = worker_env(
        {k: os.environ[k] for k in os.environ if k.startswith(("RYTHMIQ_S3", "SPACES_"))}
    )
    return store, url, env


def payload(url, docs, **extra):
    return {
        "version": 1,
        "job_id": "job-1",
        "user_id": "u1",
        "documents": [{"document_id": d, "input": f"input/{f}"} for d, f in docs],
        "options": {"ocr": False},
        "output": url,
        **extra,
    }


def test_batch_payload_against_s3(s3_store, page_bytes):
    store, url, env = s3_store
    out = run_worker(payload(url, [("d1", "a.png"), ("d2", "b.png")]), env)
    assert out.returncode == 0, out.stderr
    job = one_json(out)
    assert job["status"] == "ok" and job["exit_code"] == 0
    assert [d["status"] for d in job["documents"]] == ["ok", "ok"]
    keys = set(store.list())
    for d in ("d1", "d2"):
        assert f"master/u1/{d}/master.png.enc" in keys
        assert f"output/u1/job-1/{d}/result.json" in keys
        assert f"output/u1/job-1/{d}/preview.jpg" in keys
    assert "output/u1/job-1/result.json" in keys
    stored = json.loads(store.read("output/u1/job-1/result.json"))
    assert stored["status"] == "ok" and len(stored["documents"]) == 2
    key = "master/u1/d1/master.png.enc"
    assert decrypt(store.read(key), KEYRING, EncryptionContext("u1", "d1", key)) == page_bytes
    acct = job["accounting"]
    assert set(acct) >= {"startup", "job", "documents", "stages", "peak_rss_mb", "efficiency"}
    assert 0 < acct["efficiency"] <= 1
    assert acct["job"]["wall_s"] >= acct["documents"]["wall_s"] > 0
    assert acct["startup"]["process_to_rythmiq_imported_s"] > 0
    assert set(acct["stages"]) >= {"read", "load", "quality", "normalize", "store"}
    assert acct["peak_rss_mb"] > 10


def test_single_document_payload_keeps_the_flat_layout(s3_store):
    store, url, env = s3_store
    single = {
        "version": 1,
        "job_id": "solo",
        "user_id": "u1",
        "document_id": "d9",
        "input": f"{url}/input/a.png",
        "output": url,
        "options": {"ocr": False},
    }
    out = run_worker(single, env)
    assert out.returncode == 0, out.stderr
    job = one_json(out)
    doc = job["documents"][0]
    assert doc["page_count"] == 1 and doc["pages"][0]["quality"]["passed"] is True
    assert doc["result"]["page_count"] == 1 and doc["result"]["passed"] is True
    assert doc["result"]["pages"][0]["quality"]["passed"] is True
    keys = {k for k in store.list() if k.startswith("output/u1/solo/")}
    assert keys == {
        "output/u1/solo/normalized.jpg",
        "output/u1/solo/preview.jpg",
        "output/u1/solo/result.json",
    }


def test_partial_failure(s3_store):
    store, url, env = s3_store
    out = run_worker(payload(url, [("ok1", "a.png"), ("bad", "broken.png")]), env)
    assert out.returncode == 3, out.stderr
    job = one_json(out)
    assert job["status"] == "partial"
    bad = job["documents"][1]
    assert bad["status"] == "failed" and bad["error"]["code"] == "input.unreadable"
    keys = store.list()
    assert not [k for k in keys if "/bad/" in k]  # nothing half-written for the bad one
    assert "output/u1/job-1/ok1/result.json" in keys
    assert json.loads(store.read("output/u1/job-1/result.json"))["status"] == "partial"
    # Besides the document's own log line, one closing line on stderr says how the job went.
    last = out.stderr.decode().splitlines()[-1]
    assert last.startswith(
        "rythmiq worker: partial: 1 of 2 documents failed; the first, bad: [input.unreadable] "
    ), out.stderr


def test_all_failed_uses_the_document_error_code(s3_store):
    _store, url, env = s3_store
    out = run_worker(payload(url, [("bad", "broken.png")]), env)
    assert out.returncode == 5
    assert one_json(out)["status"] == "failed"


BAD_PAYLOADS = {
    "malformed": (b'{"version": 1, "job_id": ', 4, "payload.malformed"),
    "empty": (b"", 4, "payload.empty"),
    "not an object": (b"[1, 2]", 4, "payload.malformed"),
    "wrong version": ({"version": 2}, 4, "payload.version"),
    "no version": (b'{"job_id": "j", "user_id": "u", "output": "x"}', 4, "payload.version"),
    "version as string": ({"version": "1"}, 4, "payload.version"),
    "unknown field": ({"colour": "red"}, 4, "payload.invalid"),
    "unknown option": ({"options": {"colour": 1}}, 4, "payload.invalid"),
    "bad option value": ({"options": {"threshold": 7}}, 4, "payload.invalid"),
    "secret in options": ({"options": {"aws_secret": "x"}}, 4, "payload.invalid"),
    "traversal job id": ({"job_id": "../../etc"}, 4, "payload.invalid"),
    "dotdot user id": ({"user_id": "a..b"}, 4, "payload.invalid_id"),
    "trailing dot id": ({"job_id": "job."}, 4, "payload.invalid_id"),
    "traversal document id": (
        {"documents": [{"document_id": "..", "input": "input/a.png"}]},
        4,
        "payload.invalid",
    ),
    "full-width dots": (
        {"documents": [{"document_id": "d", "input": "input/\uff0e\uff0e/a.png"}]},
        4,
        "payload.invalid_input",
    ),
    "encoded traversal": (
        {"documents": [{"document_id": "d", "input": "input/%2e%2e/a.png"}]},
        4,
        "payload.invalid_input",
    ),
    "input outside prefix": (
        {"documents": [{"document_id": "d", "input": "master/u1/x.enc"}]},
        4,
        "payload.invalid_input",
    ),
    "foreign input url": (
        {"documents": [{"document_id": "d", "input": "s3://other/input/a.png"}]},
        4,
        "payload.invalid_input",
    ),
    "duplicate ids": (
        {
            "documents": [
                {"document_id": "d", "input": "input/a.png"},
                {"document_id": "d", "input": "input/b.png"},
            ]
        },
        4,
        "payload.duplicate_document",
    ),
    "both forms": ({"document_id": "d", "input": "input/a.png"}, 4, "payload.invalid"),
    "http output": ({"output": "http://127.0.0.1:1/x"}, 4, "payload.invalid_output"),
    "missing input object": (
        {"documents": [{"document_id": "d", "input": "input/nope.png"}]},
        5,
        "input.not_found",
    ),
    "huge": (b'{"version": 1, "pad": "' + b"x" * (1 << 20) + b'"}', 4, "payload.too_large"),
}


@pytest.mark.parametrize("name", list(BAD_PAYLOADS))
def test_bad_payloads(name, s3_store):
    store, url, env = s3_store
    body, code, error_code = BAD_PAYLOADS[name]
    if isinstance(body, dict):
        base = payload(url, [("d1", "a.png")])
        if "documents" in body:
            base.pop("documents")
        body = {**base, **body}
    before = store.list()
    out = run_worker(body, env)
    assert out.returncode == code, (out.stdout, out.stderr)
    job = one_json(out)
    assert job["status"] == "error"
    assert job["error"]["code"] == error_code, job
    assert job["error"]["exit_code"] == code
    assert store.list() == before  # nothing written
    # The error also goes to stderr, as one line: the job result is not the only place.
    lines = out.stderr.decode().splitlines()
    assert lines[-1].startswith(f"rythmiq worker: error [{error_code}] "), out.stderr
    assert lines[-1].split("] ", 1)[1] == " ".join(job["error"]["message"].split())


def test_on_a_terminal_the_worker_says_it_reads_stdin(tmp_path):
    for cmd in (
        [sys.executable, "-m", "rythmiq", "worker"],
        [sys.executable, "-m", "rythmiq.worker"],
    ):
        # Ctrl-D on the terminal: an empty payload, so the run ends with payload.empty.
        proc, terminal = on_terminal(cmd, keys=b"\x04", cwd=tmp_path, env=worker_env())
        assert proc.returncode == 4, terminal
        assert "rythmiq worker: reading a JSON payload from stdin (end it with Ctrl-D)" in terminal
        assert "rythmiq worker: error [payload.empty] " in terminal
        assert json.loads(proc.stdout_text)["error"]["code"] == "payload.empty"


def test_a_piped_payload_gets_no_terminal_notice(s3_store):
    _store, url, env = s3_store
    out = run_worker(payload(url, [("d1", "a.png")]), env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == b""  # an ok job from a pipe says nothing on stderr


def test_worker_never_creates_keys(s3_store, tmp_path):
    store, url, env = s3_store
    env = {k: v for k, v in env.items() if k != "RYTHMIQ_KEYRING"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    before = store.list()
    out = run_worker(payload(url, [("d1", "a.png")]), env)
    assert out.returncode == 8
    assert one_json(out)["error"]["code"] == "crypto.no_keyring"
    assert not (tmp_path / "cfg").exists() and store.list() == before


def test_payload_file_option(s3_store, tmp_path):
    _store, url, env = s3_store
    path = tmp_path / "p.json"
    path.write_text(json.dumps(payload(url, [("d1", "a.png")])))
    out = run_worker(b"", env, args=["--payload", str(path)])
    assert out.returncode == 0 and one_json(out)["status"] == "ok"
    out = run_worker(b"", env, args=["--payload", str(tmp_path / "missing.json")])
    assert out.returncode == 4 and one_json(out)["error"]["code"] == "payload.unreadable"


@pytest.mark.integration
def test_ocr_job_and_sigterm_leaves_no_partial_document(tmp_path):
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    for i in range(4):
        store.write(f"input/p{i}.png", png(width=1240, height=1754, font_size=36, margin=90))
    body = payload(str(store_dir), [(f"d{i}", f"p{i}.png") for i in range(4)])
    body["options"] = {"threads": 1}
    env = worker_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rythmiq.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdin.write(json.dumps(body).encode())
    proc.stdin.close()
    proc.stdin = None  # communicate() must not touch it again
    deadline = time.time() + 300
    first = store_dir / "output/u1/job-1/d0/result.json"
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.stderr.read().decode()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr.decode()
    job = json.loads(stdout.decode())
    statuses = [d["status"] for d in job["documents"]]
    assert job["status"] == "cancelled" and statuses[0] == "ok" and "cancelled" in statuses
    first_doc = job["documents"][0]
    assert (
        word_f1(Path(store_dir, "output/u1/job-1/d0/text.txt").read_text(), "\n".join(PAGE_LINES))
        >= 0.95
    )
    assert first_doc["page_count"] == 1
    assert first_doc["pages"][0]["ocr"]["lines"] >= len(PAGE_LINES)
    keys = store.list()
    for i, status in enumerate(statuses):
        mine = [k for k in keys if f"/d{i}/" in k]
        if status == "ok":
            assert f"output/u1/job-1/d{i}/result.json" in mine
        else:  # the document in flight and those after it: nothing at all
            assert mine == [], (i, mine)
    assert not [p for p in store_dir.rglob("*.tmp")]


@pytest.mark.parametrize("ocr", [False, pytest.param(True, marks=pytest.mark.integration)])
def test_example_payload_runs_as_documented(tmp_path, ocr):
    """docs: after `rythmiq keygen`, `cat examples/payload.json | python -m rythmiq.worker`."""
    work = tmp_path / "repo"
    (work / "examples").mkdir(parents=True)
    import shutil

    shutil.copytree(ROOT / "examples" / "store" / "input", work / "examples/store/input")
    body = json.loads((ROOT / "examples" / "payload.json").read_text())
    assert body["output"] == "examples/store"
    if not ocr:
        body["options"]["ocr"] = False  # the fast variant, for the unit suite
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYTHMIQ_KEYRING")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    keygen = subprocess.run(
        [sys.executable, "-m", "rythmiq", "keygen"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert keygen.returncode == 0, keygen.stderr
    out = subprocess.run(
        [sys.executable, "-m", "rythmiq.worker"],
        input=json.dumps(body).encode(),
        capture_output=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    job = one_json(out)
    assert job["status"] == "ok"
    assert (work / "examples/store/output/example-user/example-job-1/result.json").is_file()
    if ocr:
        text = work / "examples/store/output/example-user/example-job-1/invoice-0142/text.txt"
        assert "127.80" in text.read_text()


@pytest.mark.integration
def test_worker_uses_prefetched_models_when_bundled_ones_are_blocked(tmp_path):
    from rythmiq.ocr import prefetch_models

    models = tmp_path / "models"
    prefetch_models(models)
    store_dir = tmp_path / "store"
    Store.open(str(store_dir)).write("input/p.png", png())
    body = payload(str(store_dir), [("d1", "p.png")])
    body["options"] = {"threads": 2}
    blocked = {"RYTHMIQ_BUNDLED_MODELS": "0", "PADDLE_PDX_CACHE_HOME": str(tmp_path / "cache")}
    out = run_worker(body, worker_env({**blocked, "RYTHMIQ_MODEL_DIR": str(models)}))
    assert out.returncode == 0, out.stderr
    assert one_json(out)["status"] == "ok"
    text = (store_dir / "output/u1/job-1/d1/text.txt").read_text()
    assert word_f1(text, "\n".join(PAGE_LINES)) >= 0.95
    # Control: the same job without the prefetched folder finds no model: the default
    # engine's models are never downloaded.
    env = worker_env({**blocked, "RYTHMIQ_MODEL_DIR": str(tmp_path / "empty")})
    env = {k: v for k, v in env.items() if k != "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK"}
    out = run_worker({**body, "job_id": "job-2"}, env)
    assert out.returncode == 6 and one_json(out)["error"]["code"] == "model.not_found"


# ------------------------------------------------ issue 18: the payload's "encrypt" option


def _opened(store, key, document_id="d1"):
    return decrypt(store.read(key), KEYRING, EncryptionContext("u1", document_id, key))


def test_encrypt_all_in_a_payload_keeps_the_text_out_of_every_stored_byte(tmp_path):
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    store.write("input/a.png", png(width=620, height=877, font_size=18, margin=45))
    body = {
        "version": 1,
        "job_id": "job-e",
        "user_id": "u1",
        "output": str(store_dir),
        "document_id": "d1",
        "input": "input/a.png",
        "options": {"threads": 1, "encrypt": "all"},
        "resume": True,
    }
    out = run_worker(body, worker_env())
    assert out.returncode == 0, out.stderr
    job = one_json(out)
    assert job["status"] == "ok" and job["encrypt"] == "all"
    assert sorted(store.list("output/")) == [
        "output/u1/job-e/normalized.jpg.enc",
        "output/u1/job-e/preview.jpg",
        "output/u1/job-e/result.json",
        "output/u1/job-e/text.txt.enc",
    ]
    text = _opened(store, "output/u1/job-e/text.txt.enc").decode()
    assert word_f1(text, "\n".join(PAGE_LINES)) >= 0.9
    words = {w for line in PAGE_LINES for w in line.split() if len(w) >= 6}
    # Not in the stored job result, nor in any other stored file, nor on stdout.
    for path in store_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes().decode("latin-1")
            assert not [w for w in words if w in data], path
    assert not [w for w in words if w in out.stdout.decode()]
    entry = job["documents"][0]
    assert entry["result"]["text"] is None and entry["pages"][0]["ocr"]["lines"] >= 5
    assert {a["key"]: a["encrypted"] for a in entry["artifacts"]} == {
        "master/u1/d1/master.png.enc": True,
        "output/u1/job-e/normalized.jpg.enc": True,
        "output/u1/job-e/preview.jpg": False,
        "output/u1/job-e/text.txt.enc": True,
    }
    # A resumed run reads the stored result without its text and skips the document.
    again = run_worker(body, worker_env())
    assert again.returncode == 0, again.stderr
    resumed = one_json(again)
    assert resumed["resumed"] == 1 and resumed["documents"][0]["pages"] == entry["pages"]


def test_encrypt_all_in_a_list_payload_seals_each_document_s_outputs(tmp_path):
    store_dir = tmp_path / "store"
    store = Store.open(str(store_dir))
    store.write("input/a.png", png(width=400, height=500, font_size=18, margin=30))
    body = payload(str(store_dir), [("d1", "a.png"), ("d2", "a.png")])
    body["options"] = {"ocr": False, "outputs": ["hocr", "pdf"], "encrypt": "all"}
    out = run_worker(body, worker_env())
    assert out.returncode == 0, out.stderr
    for document_id in ("d1", "d2"):
        folder = f"output/u1/job-1/{document_id}/"
        assert sorted(k.removeprefix(folder) for k in store.list(folder)) == [
            "normalized.jpg.enc",
            "preview.jpg",
            "result.json",
            "searchable.pdf.enc",
            "text.hocr.enc",
        ]
        assert _opened(store, folder + "searchable.pdf.enc", document_id).startswith(b"%PDF")
        assert json.loads(store.read(folder + "result.json"))["encrypt"] == "all"
    # Each document's ciphertext is bound to it: d2's PDF does not open as d1's.
    with pytest.raises(CryptoError, match="authentication failed"):
        decrypt(
            store.read("output/u1/job-1/d2/searchable.pdf.enc"),
            KEYRING,
            EncryptionContext("u1", "d1", "output/u1/job-1/d1/searchable.pdf.enc"),
        )


@pytest.mark.parametrize("policy", ["none", "ALL", True, ["all"]])
def test_a_payload_with_an_unknown_policy_is_refused(policy):
    from rythmiq import PayloadError
    from rythmiq.payload import parse_payload

    body = payload("/tmp/store", [("d1", "a.png")])
    body["options"] = {"encrypt": policy}
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps(body))
    assert exc.value.code == "payload.invalid" and "encrypt" in str(exc.value)
    body["options"] = {"encrypt": "all+preview"}
    assert parse_payload(json.dumps(body)).options.encrypt == "all+preview"


# --------------------------------- issue 18, finding 3: a local store's links and odd inputs


def _local_job(tmp_path, page_bytes):
    """A local store with ``input/a.png``, a folder ``outside`` with a page of its own."""
    root, outside = tmp_path / "store", tmp_path / "outside"
    (root / "input").mkdir(parents=True)
    (root / "input" / "a.png").write_bytes(page_bytes)
    outside.mkdir()
    (outside / "secret.png").write_bytes(page_bytes)
    return root, outside


def _stored(root):
    """The files in the store, links left out."""
    files = (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(str(p.relative_to(root)) for p in files)


@pytest.mark.parametrize(
    ("link", "target", "key"),
    [
        ("input/shared", "{outside}", "shared/secret.png"),  # a linked input folder
        ("input/s.png", "../../outside/secret.png", "s.png"),  # a linked input file
        ("input/z.png", "/dev/zero", "z.png"),  # read until memory ran out
    ],
)
def test_a_payload_cannot_read_through_a_link_out_of_a_local_store(
    tmp_path, page_bytes, link, target, key
):
    root, outside = _local_job(tmp_path, page_bytes)
    (root / link).symlink_to(target.format(outside=outside))
    job = payload(str(root), [("d1", "a.png"), ("d2", key)])
    out = run_worker(job, worker_env(), timeout=120)
    assert out.returncode == 7, out.stderr
    error = one_json(out)["error"]
    assert error["code"] == "storage.outside_root" and f"input/{key}" in error["message"]
    # Checked before anything was written: no master (of the outside page, or any other).
    assert _stored(root) == ["input/a.png"]


def test_a_payload_output_folder_linked_out_of_the_store_is_not_written(tmp_path, page_bytes):
    root, outside = _local_job(tmp_path, page_bytes)
    (root / "output").mkdir()
    (root / "output" / "u1").symlink_to(outside)
    out = run_worker(payload(str(root), [("d1", "a.png")]), worker_env(), timeout=120)
    assert out.returncode == 7, out.stderr
    assert one_json(out)["documents"][0]["error"]["code"] == "storage.outside_root"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]
    assert _stored(root) == ["input/a.png"]  # the master was rolled back
