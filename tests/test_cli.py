"""The `rythmiq` command line, run as a real subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, needs_paddle, render_page
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
    assert d["source"] == str(page_file) and d["page_count"] == 1 and d["passed"] is True
    (page,) = d["pages"]
    assert page["quality"]["passed"] is True
    assert page["ocr"] is None and page["ocr_skipped_reason"] == "disabled"
    assert d["text"] is None
    assert d["ids"] == {"user_id": "local", "job_id": "j1", "document_id": "page"}
    keys = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert keys == [
        "master/local/page/master.png.enc",
        "output/local/j1/normalized.jpg",
        "output/local/j1/preview.jpg",
        "output/local/j1/result.json",
    ]
    stored = json.loads((store / "output/local/j1/result.json").read_text())
    assert stored["page_count"] == 1 and stored["pages"][0]["image"]["dpi"] == 200
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
    assert rows[0]["page_count"] == 1 and rows[0]["pages"][0]["quality"]["passed"]
    assert rows[1]["error"]["code"] == "input.not_found"


def test_usage_errors_exit_2():
    assert run("process").returncode == 2
    assert run("process", "--box", "big", "x.jpg").returncode == 2
    out = run("process", "--threshold", "7", "x.jpg")
    assert out.returncode == 2 and "threshold" in out.stderr
    for args in [(), ("nope",), ("process", "--nope", "x.jpg"), ("models",)]:
        out = run(*args)
        assert out.returncode == 2, args
        # One line, in the same shape as every other error.
        assert out.stderr.startswith("rythmiq: error [options.invalid] "), args
        assert len(out.stderr.splitlines()) == 1 and out.stdout == "", args


def test_version():
    from rythmiq import __version__

    out = run("--version")
    assert out.returncode == 0 and out.stdout == f"rythmiq {__version__}\n"


def _images(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_page(width=300, height=400, font_size=12, margin=20)).save(path)


def _sources(out):
    return [json.loads(line)["source"] for line in out.stdout.splitlines()]


def test_directory_input_recurses_sorted_images_only(tmp_path):
    _images(tmp_path, ["d/b.png", "d/a/z.JPG", "d/a/y.webp", "d/c.tiff", "d/.hidden/h.png"])
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    (tmp_path / "d" / "empty").mkdir()
    out = run("process", "--no-ocr", "--json", "d", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _sources(out) == ["d/a/y.webp", "d/a/z.JPG", "d/b.png", "d/c.tiff"]


def test_glob_input_is_expanded_when_the_shell_did_not(tmp_path):
    _images(tmp_path, ["s/one.png", "s/deep/two.png", "s/three.jpg"])
    # subprocess runs no shell, so the patterns arrive unexpanded.
    out = run("process", "--no-ocr", "--json", "s/**/*.png", "s/*.jpg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _sources(out) == ["s/deep/two.png", "s/one.png", "s/three.jpg"]
    # A pattern and a folder that overlap process each file once.
    out = run("process", "--no-ocr", "--json", "s/*.jpg", "s", cwd=tmp_path)
    assert _sources(out) == ["s/three.jpg", "s/deep/two.png", "s/one.png"]


def test_no_matching_input_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for arg in ["nothing/*.png", "empty"]:
        out = run("process", "--no-ocr", arg, cwd=tmp_path)
        assert out.returncode == 2 and "no input matched" in out.stderr, out.stderr


def test_piped_batch_stdout_is_pure_json_lines(tmp_path):
    _images(tmp_path, ["p/1.png", "p/2.png", "p/3.png"])
    out = run("process", "--no-ocr", "--json", "p", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["source"] for line in lines)
    # Neither a bar nor click's non-terminal stand-in for one (its label) is printed.
    assert out.stderr == "" and "\r" not in out.stdout


def test_progress_bar_goes_to_a_terminal_stderr_only(tmp_path):
    _images(tmp_path, ["p/1.png", "p/2.png", "p/3.png"])
    master, slave = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    proc = subprocess.run(
        [sys.executable, "-m", "rythmiq", "process", "--no-ocr", "--json", "p"],
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=tmp_path,
        timeout=600,
    )
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "3/3" in terminal and "1/3" in terminal
    assert "docs/s" in terminal and "ETA" in terminal
    lines = proc.stdout.decode().splitlines()
    assert [json.loads(line)["source"] for line in lines] == ["p/1.png", "p/2.png", "p/3.png"]


def test_url_inputs_take_the_document_id_from_the_name(s3_env, tmp_path):
    import s3fs

    from rythmiq.storage import s3_storage_options

    fs = s3fs.S3FileSystem(**s3_storage_options())
    _images(tmp_path, ["scan-7.png", "odd name.png"])
    for name in ["scan-7.png", "odd name.png"]:
        fs.put_file(str(tmp_path / name), f"{s3_env['bucket']}/input/{name}")
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    urls = [
        f"s3://{s3_env['bucket']}/input/scan-7.png",
        f"s3://{s3_env['bucket']}/input/odd name.png",
    ]
    store = tmp_path / "store"
    out = run("process", "--no-ocr", "--json", "--out", str(store), *urls, env=env)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["source"] for r in rows] == urls
    digest = hashlib.sha256((tmp_path / "odd name.png").read_bytes()).hexdigest()[:16]
    assert [r["ids"]["document_id"] for r in rows] == ["scan-7", f"doc-{digest}"]
    assert (store / "master/local/scan-7/master.png.enc").is_file()


def test_debug_shows_a_traceback_default_shows_one_line(tmp_path):
    missing = str(tmp_path / "nope.png")
    out = run("process", "--no-ocr", missing)
    assert out.returncode == 5
    assert out.stderr.splitlines() == [
        f"rythmiq: error [input.not_found] no such file: {missing!r}"
    ]
    out = run("--debug", "process", "--no-ocr", missing)
    assert out.returncode == 5
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().endswith(
        f"rythmiq: error [input.not_found] no such file: {missing!r}"
    )


def test_models_list_shows_the_default_engines_bundled_models(cli_env):
    out = run("models", "list", "--json", env=cli_env)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["engine"] == "onnx"
    assert d["det"]["name"] == "PP-OCRv6_det_small" and d["rec"]["name"] == "PP-OCRv6_rec_small"
    for role in ("det", "rec"):
        assert d[role]["source"] == "bundled" and d[role]["path"].endswith(".onnx")
        assert Path(d[role]["path"]).is_file()


@needs_paddle
def test_models_list_shows_bundled_sources_for_paddle(cli_env):
    out = run("models", "list", "--engine", "paddle", "--json", env=cli_env)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["det"]["name"] == "PP-OCRv5_mobile_det" and d["rec"]["name"] == "PP-OCRv5_mobile_rec"
    for role in ("det", "rec"):
        assert d[role]["source"] == "bundled"
        assert (Path(d[role]["path"]) / "inference.pdiparams").is_file()
    out = run(
        "models", "list", "--engine", "paddle", "--det-model", "PP-OCRv5_server_det", env=cli_env
    )
    det, rec = out.stdout.splitlines()
    assert det.split()[:3] == ["det", "PP-OCRv5_server_det", "download"]
    assert rec.split()[:3] == ["rec", "PP-OCRv5_mobile_rec", "bundled"]
    assert run("models", "list", "--rec-model", "../x", env=cli_env).returncode == 2


def test_worker_command_delegates_to_the_worker(tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text("{}")
    out = run("worker", "--payload", str(payload))
    assert out.returncode == 4, out.stderr
    job = json.loads(out.stdout)
    assert job["status"] == "error" and job["error"]["code"].startswith("payload.")


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
    assert d["page_count"] == 1 and d["pages"][0]["quality"]["passed"]
    assert "127.80" in d["pages"][0]["ocr"]["text"] and d["text"] == d["pages"][0]["ocr"]["text"]
