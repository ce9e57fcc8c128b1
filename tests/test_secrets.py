"""Known secret values never appear in any output, log line or stored artifact."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from conftest import render_page
from PIL import Image

from rythmiq.keyring import Keyring

SPACES_KEY = "SPACESKEYa1b2c3d4e5"
SPACES_SECRET = "spaces-SECRET-9f8e7d6c5b4a3f2e1d0c"


def run(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", "--debug", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_no_secret_in_outputs_logs_or_artifacts(s3_env, tmp_path):
    keyring = Keyring.generate("k-secret-test")
    keyring_json = keyring.to_json()
    encoded = base64.b64encode(keyring_json.encode()).decode()
    raw_key = keyring.key("k-secret-test")
    secrets = [
        SPACES_KEY,
        SPACES_SECRET,
        encoded,
        base64.b64encode(raw_key).decode(),
        base64.urlsafe_b64encode(raw_key).decode().rstrip("="),
        raw_key.hex(),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SPACES_"))}
    env.update(
        SPACES_KEY=SPACES_KEY,
        SPACES_SECRET=SPACES_SECRET,
        RYTHMIQ_KEYRING=encoded,
        RYTHMIQ_S3_ENDPOINT=s3_env["endpoint"],
        RYTHMIQ_S3_REGION="eu-west-1",
        RYTHMIQ_S3_MAX_ATTEMPTS="1",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    page = tmp_path / "page.png"
    Image.fromarray(render_page(width=600, height=800, font_size=20, margin=40)).save(page)
    store = f"s3://{s3_env['bucket']}/sec"
    outputs = [
        run(
            "process",
            "--no-ocr",
            "--json",
            "--out",
            store,
            "--document-id",
            "d1",
            str(page),
            env=env,
        ),
        run(
            "decrypt",
            "--store",
            store,
            "--user-id",
            "local",
            "--document-id",
            "d1",
            "-o",
            str(tmp_path / "out.png"),
            env=env,
        ),
        run(
            "decrypt",
            "--store",
            store,
            "--user-id",
            "local",
            "--document-id",
            "nope",
            "-o",
            str(tmp_path / "x.png"),
            env=env,
        ),
        run("process", "--no-ocr", str(tmp_path / "missing.png"), env=env),
        run(
            "process",
            "--no-ocr",
            "--out",
            "s3://nowhere-bucket/x",
            str(page),
            env={**env, "RYTHMIQ_S3_ENDPOINT": "http://127.0.0.1:9"},
        ),
        run(
            "process",
            "--no-ocr",
            "--out",
            store,
            str(page),
            env={**env, "RYTHMIQ_KEYRING": "bm90LWEta2V5cmluZw=="},
        ),
        run("keygen", "--file", str(tmp_path / "kr.json"), env=env),
    ]
    codes = [o.returncode for o in outputs]
    assert codes[:2] == [0, 0], outputs[0].stderr + outputs[1].stderr
    assert all(c != 0 for c in codes[2:6]), codes
    assert codes[6] == 0
    # The failure paths did produce debug output and tracebacks worth checking.
    assert "Traceback" in outputs[4].stderr
    # Stored artifacts, result JSON included.
    import s3fs

    from rythmiq.storage import s3_storage_options

    fs = s3fs.S3FileSystem(**s3_storage_options(env))
    stored = {path: fs.cat_file(path) for path in fs.find(f"{s3_env['bucket']}/sec")}
    assert any(path.endswith("result.json") for path in stored)
    json.loads(next(v for p, v in stored.items() if p.endswith("result.json")))
    for secret in secrets:
        for out in outputs:
            assert secret not in out.stdout and secret not in out.stderr, secret
        for path, data in stored.items():
            assert secret.encode() not in data, (secret, path)
    assert repr(keyring).count("k-secret-test") >= 1
    for secret in secrets[2:]:
        assert secret not in repr(keyring) and secret not in str(keyring)


@pytest.mark.parametrize("name", ["SPACES_SECRET", "AWS_SECRET_ACCESS_KEY", "RYTHMIQ_KEYRING"])
def test_redact_blanks_each_secret_variable(name, monkeypatch):
    from rythmiq.storage import redact

    monkeypatch.setenv(name, "value-that-must-not-leak")
    assert redact("error: value-that-must-not-leak!") == "error: ***!"
