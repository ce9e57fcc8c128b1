"""Known secret values never appear in any output, log line, job result or stored artifact.

The sweep sets known credentials and a known keyring in the environment, plants a presigned
URL signature and URL credentials in inputs and payloads, runs every command of the CLI and
the worker through its success and failure paths with ``--debug`` (so tracebacks are
printed), and then greps everything they printed and everything they wrote for each secret.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _helpers import render_page
from PIL import Image

from rythmiq.keyring import Keyring

SPACES_KEY = "SPACESKEYa1b2c3d4e5"
# "/" and "+" as in real AWS secret keys: they also show up URL-encoded.
SPACES_SECRET = "spaces-SECRET/9f8e+7d6c5b4a3f2e1d0c"
AWS_KEY_ID = "AKIAAWSKEYIDX7Y8Z9W0"
AWS_SECRET = "aws-SECRET-Qm4Nw8Rt2Yu6Io0Pa3Sd"
# Planted in inputs and payloads, never in the environment: only the URL patterns hide them.
PLANTED_SIGNATURE = "deadbeef" * 8
PLANTED_CREDENTIAL = "AKIAPLANTEDCRED00001"
PLANTED_TOKEN = "FwoGZXIvYXdzPLANTEDtoken"
PLANTED_PASSWORD = "planted-url-pw-Xq77Zr"
# A secret with a "/" planted in a URL's authority: fsspec would take what comes before the
# "/" for part of the bucket name and quote it in its errors.
PLANTED_SLASHED = "planted-half/other-half-99"
PRESIGNED = (
    f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={PLANTED_CREDENTIAL}%2F20261128%2F"
    f"us-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token={PLANTED_TOKEN}"
    f"&X-Amz-Signature={PLANTED_SIGNATURE}"
)


def key_forms(keyring: Keyring) -> list[str]:
    """Every printable form of a keyring's secret material."""
    encoded = base64.b64encode(keyring.to_json().encode()).decode()
    out = [encoded]
    for key_id in keyring.key_ids:
        raw = keyring.key(key_id)
        out += [
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            raw.hex(),
        ]
    return out


@dataclass(frozen=True)
class Run:
    name: str
    args: tuple[str, ...]
    codes: tuple[int, ...]  # acceptable exit codes
    env: Mapping[str, str] | None = None
    stdin: str = ""
    module: str = "rythmiq"


@dataclass(frozen=True)
class Outcome:
    run: Run
    returncode: int
    stdout: str
    stderr: str


def execute(run: Run, env: Mapping[str, str]) -> Outcome:
    debug = ("--debug",) if run.module == "rythmiq" else ()
    out = subprocess.run(
        [sys.executable, "-m", run.module, *debug, *run.args],
        input=run.stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, **(run.env or {})},
    )
    return Outcome(run, out.returncode, out.stdout, out.stderr)


def execute_all(runs: list[Run], env: Mapping[str, str]) -> list[Outcome]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda r: execute(r, env), runs))
    for o in outcomes:
        assert o.returncode in o.run.codes, (o.run.name, o.returncode, o.stdout, o.stderr)
    return outcomes


def payload(output: str, *docs: tuple[str, str], job: str = "job-sec", **extra: object) -> str:
    return json.dumps(
        {
            "version": 1,
            "job_id": job,
            "user_id": "u1",
            "documents": [{"document_id": d, "input": f"input/{f}"} for d, f in docs],
            "options": {"ocr": False},
            "output": output,
            **extra,
        }
    )


def pieces(secrets: list[str], size: int = 8) -> set[str]:
    """Each secret, and every run of ``size`` consecutive characters of it."""
    out = set(secrets)
    for secret in secrets:
        out.update(secret[i : i + size] for i in range(len(secret) - size + 1))
    return out


@dataclass
class Sweep:
    """The environment of a sweep: secrets set, pages rendered, a bucket with one input."""

    env: dict[str, str]
    secrets: list[str]
    other_keyring: str  # RYTHMIQ_KEYRING of a keyring that cannot decrypt the masters
    tmp: Path
    pages: Path
    bucket: str
    fs: Any

    def check(self, outcomes: list[Outcome]) -> None:
        """No secret, nor any 8-character piece of one, in any output, nor in any object in
        the bucket or file under tmp."""
        stored = {path: self.fs.cat_file(path) for path in self.fs.find(self.bucket)}
        assert any(path.endswith("result.json") for path in stored)
        written = {
            str(p): p.read_bytes()
            for p in self.tmp.rglob("*")
            if p.is_file() and p.parent != self.pages
        }
        for piece in sorted(pieces(self.secrets)):
            for o in outcomes:
                assert piece not in o.stdout, (piece, o.run.name, o.stdout)
                assert piece not in o.stderr, (piece, o.run.name, o.stderr)
            for path, data in {**stored, **written}.items():
                assert piece.encode() not in data, (piece, path)


@pytest.fixture
def sweep(s3_env, tmp_path) -> Iterator[Sweep]:
    import s3fs

    from rythmiq.storage import s3_storage_options

    keyring = Keyring.generate("k-secret-test")
    other = Keyring.generate("k-secret-test")  # same key id, other key: decrypt must fail
    secrets = [
        SPACES_KEY,
        SPACES_SECRET,
        quote(SPACES_SECRET, safe=""),
        AWS_KEY_ID,
        AWS_SECRET,
        *key_forms(keyring),
        *key_forms(other),
        PLANTED_SIGNATURE,
        PLANTED_CREDENTIAL,
        PLANTED_TOKEN,
        PLANTED_PASSWORD,
        PLANTED_SLASHED,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPACES_"))}
    env.update(
        SPACES_KEY=SPACES_KEY,
        SPACES_SECRET=SPACES_SECRET,
        AWS_ACCESS_KEY_ID=AWS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        RYTHMIQ_KEYRING=key_forms(keyring)[0],
        RYTHMIQ_S3_ENDPOINT=s3_env["endpoint"],
        RYTHMIQ_S3_REGION="eu-west-1",
        RYTHMIQ_S3_MAX_ATTEMPTS="1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    pages = tmp_path / "pages"
    pages.mkdir()
    for name in ("p1.png", "p2.png"):
        Image.fromarray(render_page(width=600, height=800, font_size=20, margin=40)).save(
            pages / name
        )
    fs = s3fs.S3FileSystem(**s3_storage_options(env))
    fs.pipe_file(f"{s3_env['bucket']}/w/input/a.png", (pages / "p1.png").read_bytes())
    yield Sweep(env, secrets, key_forms(other)[0], tmp_path, pages, s3_env["bucket"], fs)
    assert repr(keyring).count("k-secret-test") >= 1
    for secret in key_forms(keyring):
        assert secret not in repr(keyring) and secret not in str(keyring)


def test_no_secret_in_outputs_logs_or_artifacts(sweep):
    env, tmp_path, pages, bucket = sweep.env, sweep.tmp, sweep.pages, sweep.bucket
    other_encoded = sweep.other_keyring
    unreachable = {"RYTHMIQ_S3_ENDPOINT": "http://127.0.0.1:9"}
    page = str(pages / "p1.png")
    store = f"s3://{bucket}/sec"

    runs = [
        Run("version", ("--version",), (0,)),
        Run("help", ("--help",), (0,)),
        Run("models list", ("models", "list"), (0,)),
        Run("models list --json", ("models", "list", "--json"), (0,)),
        Run(
            "process --json --out s3",
            ("process", "--no-ocr", "--json", "--out", store, "--document-id", "d1", page),
            (0,),
        ),
        Run(
            "process --workers 2 --out s3, one presigned URL failing",
            (
                "process",
                "--no-ocr",
                "--json",
                "--workers",
                "2",
                "--out",
                store,
                str(pages),
                f"s3://{bucket}/sec/input/x.png{PRESIGNED}",
            ),
            (3,),
        ),
        Run(
            "process --out local",
            ("process", "--no-ocr", "--out", str(tmp_path / "local"), page),
            (0,),
        ),
        Run("process summary", ("process", "--no-ocr", page), (0,)),
        Run(
            "process presigned and credential URLs among others",
            (
                "process",
                "--no-ocr",
                "--json",
                page,
                f"http://user:{PLANTED_PASSWORD}@127.0.0.1:9/scan.png",
                f"http://127.0.0.1:9/scan.png{PRESIGNED}",
                f"s3://{bucket}/sec/missing.png{PRESIGNED}",
            ),
            (3,),
        ),
        Run(
            "process one presigned URL",
            ("process", "--no-ocr", f"https://127.0.0.1:9/scan.png{PRESIGNED}"),
            (7,),
        ),
        Run("process missing file", ("process", "--no-ocr", str(tmp_path / "missing.png")), (5,)),
        Run(
            "process store unreachable",
            ("process", "--no-ocr", "--out", "s3://nowhere-bucket/x", page),
            (7,),
            env=unreachable,
        ),
        Run(
            "process bad keyring",
            ("process", "--no-ocr", "--out", store, page),
            (8,),
            env={"RYTHMIQ_KEYRING": "bm90LWEta2V5cmluZw=="},
        ),
        Run(
            "process bad option",
            ("process", "--no-ocr", "--threshold", "7", page),
            (2,),
        ),
        Run("worker ok", ("worker",), (0,), stdin=payload(f"s3://{bucket}/w", ("d1", "a.png"))),
        Run(
            "python -m rythmiq.worker ok",
            (),
            (0,),
            stdin=payload(f"s3://{bucket}/w", ("d2", "a.png"), job="job-module"),
            module="rythmiq.worker",
            env={"RYTHMIQ_DEBUG": "1"},
        ),
        Run("worker malformed payload", ("worker",), (4,), stdin='{"version": 1, "job_id": '),
        Run(
            "worker secret in payload options",
            ("worker",),
            (4,),
            stdin=payload(
                f"s3://{bucket}/w", ("d1", "a.png"), options={"aws_secret": SPACES_SECRET}
            ),
        ),
        Run(
            "worker credentials in the output URL",
            ("worker",),
            (4, 7),
            stdin=payload(
                f"s3://{PLANTED_CREDENTIAL}:{PLANTED_PASSWORD}@{bucket}/w", ("d1", "a.png")
            ),
        ),
        Run(
            "worker env credentials with a '/' in the output URL",
            ("worker",),
            (7,),
            stdin=payload(f"s3://{SPACES_KEY}:{SPACES_SECRET}@{bucket}/w", ("d1", "a.png")),
        ),
        Run(
            "process --out with planted credentials holding a '/'",
            (
                "process",
                "--no-ocr",
                "--out",
                f"s3://{PLANTED_CREDENTIAL}:{PLANTED_SLASHED}@{bucket}/x",
                page,
            ),
            (7,),
        ),
        Run(
            "worker missing input",
            ("worker",),
            (5,),
            stdin=payload(f"s3://{bucket}/w", ("d1", "nope.png")),
        ),
        Run(
            "worker store unreachable",
            ("worker",),
            (7,),
            stdin=payload(f"s3://{bucket}/w", ("d1", "a.png")),
            env=unreachable,
        ),
        Run(
            "worker no keyring",
            ("worker",),
            (8,),
            stdin=payload(f"s3://{bucket}/w", ("d1", "a.png")),
            # Its own config folder: "keygen default path" creates a keyring in the shared one.
            env={"RYTHMIQ_KEYRING": "", "XDG_CONFIG_HOME": str(tmp_path / "config-none")},
        ),
        Run("keygen", ("keygen", "--file", str(tmp_path / "kr.json")), (0,)),
        Run("keygen for --rotate", ("keygen", "--file", str(tmp_path / "k2.json")), (0,)),
        Run("keygen default path", ("keygen",), (0,)),
    ]
    outcomes = execute_all(runs, env)
    # Depend on the first pass: the master of d1, and a keyring file to refuse to overwrite.
    decrypt = ("decrypt", "--store", store, "--user-id", "local")
    outcomes += execute_all(
        [
            Run(
                "decrypt ok",
                (*decrypt, "--document-id", "d1", "-o", str(tmp_path / "out.png")),
                (0,),
            ),
            Run(
                "decrypt wrong key",
                (*decrypt, "--document-id", "d1", "-o", str(tmp_path / "bad.png")),
                (8,),
                env={"RYTHMIQ_KEYRING": other_encoded},
            ),
            Run(
                "decrypt missing master",
                (*decrypt, "--document-id", "nope", "-o", str(tmp_path / "x.png")),
                (7,),
            ),
            Run(
                "keygen refuses to overwrite", ("keygen", "--file", str(tmp_path / "kr.json")), (8,)
            ),
            Run(
                "keygen --rotate", ("keygen", "--rotate", "--file", str(tmp_path / "k2.json")), (0,)
            ),
        ],
        env,
    )
    by_name = {o.run.name: o for o in outcomes}

    # The sweep is not vacuous: the failure paths printed tracebacks and the planted URLs...
    assert "Traceback" in by_name["process store unreachable"].stderr
    assert "Traceback" in by_name["process one presigned URL"].stderr
    assert "X-Amz-Signature=***" in by_name["process one presigned URL"].stderr
    mixed = by_name["process presigned and credential URLs among others"]
    assert "X-Amz-Signature=***" in mixed.stdout and "http://***@127.0.0.1:9" in mixed.stdout
    batch = by_name["process --workers 2 --out s3, one presigned URL failing"]
    assert "X-Amz-Signature=***" in batch.stdout and batch.stdout.count('"error"') == 1
    # ...and the worker's JSON errors are the ones expected.
    for name, code in {
        "worker malformed payload": "payload.malformed",
        "worker secret in payload options": "payload.invalid",
        "worker missing input": "input.not_found",
        "worker env credentials with a '/' in the output URL": "storage.invalid_url",
        "worker store unreachable": "storage.read_failed",
        "worker no keyring": "crypto.no_keyring",
    }.items():
        job = json.loads(by_name[name].stdout)
        assert job["status"] == "error" and job["error"]["code"] == code, (name, job)
    for name in ("worker ok", "python -m rythmiq.worker ok"):
        assert json.loads(by_name[name].stdout)["status"] == "ok"
    assert (tmp_path / "out.png").read_bytes() == (pages / "p1.png").read_bytes()

    # Every kind of place was written to: the bucket, a local store, keygen's default path.
    keys = sweep.fs.find(bucket)
    assert sum(k.endswith("result.json") for k in keys) >= 5
    assert list(tmp_path.glob("local/output/*/*/result.json"))
    assert (tmp_path / "config" / "rythmiq" / "keyring.json").is_file()
    sweep.check(outcomes)


@pytest.mark.integration
def test_no_secret_with_ocr(sweep):
    """The default path, with PaddleOCR: its start-up and debug logs, and the text artifact."""
    store = f"s3://{sweep.bucket}/ocr"
    ocr_payload = json.loads(payload(f"s3://{sweep.bucket}/w", ("d1", "a.png"), job="ocr"))
    ocr_payload["options"] = {"threads": 1}
    outcomes = execute_all(
        [
            Run(
                "process with OCR --json --out s3",
                (
                    "process",
                    "--json",
                    "--threads",
                    "1",
                    "--out",
                    store,
                    str(sweep.pages / "p1.png"),
                ),
                (0,),
            ),
            Run("worker with OCR", ("worker",), (0,), stdin=json.dumps(ocr_payload)),
        ],
        sweep.env,
    )
    assert any(k.endswith("text.txt") for k in sweep.fs.find(store))
    assert any(k.endswith("ocr/d1/text.txt") for k in sweep.fs.find(f"{sweep.bucket}/w"))
    sweep.check(outcomes)


@pytest.mark.parametrize("name", ["SPACES_SECRET", "AWS_SECRET_ACCESS_KEY", "RYTHMIQ_KEYRING"])
def test_redact_blanks_each_secret_variable(name, monkeypatch):
    from rythmiq.storage import redact

    monkeypatch.setenv(name, "value/that+must-not-leak")
    assert redact("error: value/that+must-not-leak!") == "error: ***!"
    assert redact("url: s3://b/k?x=value%2Fthat%2Bmust-not-leak") == "url: s3://b/k?x=***"
