"""The `rythmiq` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PAGE_LINES, render_page
from PIL import Image

from rythmiq.metrics import word_f1

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli_env(tmp_path):
    """The environment for CLI runs: a private config dir, no keyring or cloud settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RYTHMIQ_", "AWS_", "SPACES_")) and k != "XDG_CONFIG_HOME"
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rythmiq", *args], capture_output=True, text=True, timeout=600, **kw
    )


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "page.png"
    Image.fromarray(render_page()).save(path, dpi=(200, 200))
    return path


def test_no_ocr_json(page_file, tmp_path, cli_env):
    store = tmp_path / "store"
    out = run(
        "process",
        "--no-ocr",
        "--json",
        "--out",
        str(store),
        "--job-id",
        "j1",
        str(page_file),
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    d = json.loads(line)
    assert d["source"] == str(page_file) and d["quality"]["passed"] is True
    assert d["ocr"] is None and d["ocr_skipped_reason"] == "disabled"
    assert d["ids"] == {"user_id": "local", "job_id": "j1", "document_id": "page"}
    keys = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert keys == [
        "master/local/page/master.png.enc",
        "output/local/j1/normalized.jpg",
        "output/local/j1/preview.jpg",
        "output/local/j1/result.json",
    ]
    assert json.loads((store / "output/local/j1/result.json").read_text())["image"]["dpi"] == 200
    # First use created the local keyring, said so, and made it private.
    keyring = Path(cli_env["XDG_CONFIG_HOME"]) / "rythmiq" / "keyring.json"
    assert "created a new keyring" in out.stderr and str(keyring) in out.stderr
    assert keyring.stat().st_mode & 0o777 == 0o600


def test_decrypt_round_trip_and_rotation(page_file, tmp_path, cli_env):
    store = tmp_path / "store"
    out = run(
        "process",
        "--no-ocr",
        "--out",
        store.as_uri(),
        "--user-id",
        "u7",
        "--document-id",
        "d7",
        str(page_file),
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    target = tmp_path / "master.png"
    out = run(
        "decrypt",
        "--store",
        str(store),
        "--user-id",
        "u7",
        "--document-id",
        "d7",
        "-o",
        str(target),
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == page_file.read_bytes()
    # The wrong document id finds no master; a forged path is refused before any I/O.
    out = run(
        "decrypt",
        "--store",
        str(store),
        "--user-id",
        "u7",
        "--document-id",
        "d8",
        "-o",
        str(tmp_path / "x"),
        env=cli_env,
    )
    assert out.returncode == 7 and not (tmp_path / "x").exists()
    out = run(
        "decrypt",
        "--store",
        str(store),
        "--user-id",
        "../u7",
        "--document-id",
        "d7",
        "-o",
        str(tmp_path / "x"),
        env=cli_env,
    )
    assert out.returncode == 7 and "storage.invalid_key" in out.stderr
    # Rotation keeps old masters readable.
    out = run("keygen", "--rotate", env=cli_env)
    assert out.returncode == 0, out.stderr
    out = run(
        "decrypt",
        "--store",
        str(store),
        "--user-id",
        "u7",
        "--document-id",
        "d7",
        "-o",
        str(tmp_path / "again.png"),
        env=cli_env,
    )
    assert out.returncode == 0 and (tmp_path / "again.png").read_bytes() == target.read_bytes()
    # keygen refuses to overwrite the keyring without --force.
    out = run("keygen", env=cli_env)
    assert out.returncode == 8 and "crypto.keyring_exists" in out.stderr


def test_decrypt_without_a_keyring_fails_clearly(tmp_path, cli_env):
    out = run(
        "decrypt",
        "--store",
        str(tmp_path),
        "--user-id",
        "u",
        "--document-id",
        "d",
        "--ext",
        "png",
        "-o",
        str(tmp_path / "x"),
        env=cli_env,
    )
    assert out.returncode == 8 and "crypto.no_keyring" in out.stderr


def test_missing_file_exits_with_input_code(tmp_path):
    out = run("process", str(tmp_path / "nope.jpg"))
    assert out.returncode == 5
    assert "input.not_found" in out.stderr and out.stdout == ""


def test_not_an_image_names_the_type(tmp_path):
    bad = tmp_path / "doc.pdf"
    bad.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    out = run("process", str(bad))
    assert out.returncode == 5 and "PDF" in out.stderr


def test_partial_batch(page_file, tmp_path):
    out = run("process", "--no-ocr", "--json", str(page_file), str(tmp_path / "missing.png"))
    assert out.returncode == 3, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["quality"]["passed"] and rows[1]["error"]["code"] == "input.not_found"


def test_usage_errors_exit_2():
    assert run("process").returncode == 2
    assert run("process", "--box", "big", "x.jpg").returncode == 2
    out = run("process", "--threshold", "7", "x.jpg")
    assert out.returncode == 2 and "threshold" in out.stderr


@pytest.mark.integration
def test_process_with_ocr_prints_text(page_file):
    out = run("process", "--threads", "2", str(page_file))
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout
    text = out.stdout.split("  text:\n", 1)[1]
    assert word_f1(text, "\n".join(PAGE_LINES)) >= 0.95
    # Library logs and model chatter stay off stdout's first line.
    assert out.stdout.splitlines()[0] == str(page_file)


@pytest.mark.integration
def test_bundled_sample_runs():
    sample = ROOT / "examples" / "data" / "sample.jpg"
    out = run("process", "--json", str(sample))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["quality"]["passed"] and "127.80" in d["ocr"]["text"]
