"""Every example in examples/ runs as a user would run it: a real subprocess, real OCR."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, render_page
from PIL import Image

from rythmiq.keyring import Keyring
from rythmiq.metrics import word_f1

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SAMPLE = EXAMPLES / "data" / "sample.jpg"


def example_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment minus rythmiq, AWS and Spaces settings, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RYTHMIQ_", "AWS_", "SPACES_")) and k != "XDG_CONFIG_HOME"
    }
    env.update(extra or {})
    return env


def run_example(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=cwd,
        env=env if env is not None else example_env(),
    )


def keyring_env(keyring: Keyring) -> dict[str, str]:
    return {"RYTHMIQ_KEYRING": base64.b64encode(keyring.to_json().encode()).decode()}


def s3_example_env(s3_env) -> dict[str, str]:
    return example_env(
        {
            name: os.environ[name]
            for name in ("RYTHMIQ_S3_ENDPOINT", "RYTHMIQ_S3_REGION", "SPACES_KEY", "SPACES_SECRET")
        }
    )


@pytest.mark.integration
def test_quickstart_reads_the_sample_and_draws_its_boxes(tmp_path):
    overlay = tmp_path / "boxes.png"
    out = run_example("examples/quickstart.py", "--overlay", str(overlay))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "PASS" in out.stdout and "NORTHWIND" in out.stdout
    with Image.open(overlay) as im:
        assert max(im.size) == 1024  # the preview's long side, boxes drawn on it


def test_quickstart_reports_a_bad_file_with_its_code(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = run_example("examples/quickstart.py", str(bad))
    assert out.returncode == 5  # ExitCode.INPUT
    assert "input.unsupported" in out.stdout


@pytest.mark.integration
def test_batch_folder_writes_one_line_per_document(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(3):
        page = render_page(width=900, height=500, font_size=28, margin=40)
        Image.fromarray(page).save(folder / f"page-{i}.png")
    (folder / "page-9.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    results = tmp_path / "results.jsonl"
    out = run_example("examples/batch_folder.py", str(folder), str(results), "--workers", "2")
    assert out.returncode == 3, out.stderr[-2000:]  # one document failed
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [Path(d["source"]).name for d in lines] == [f"page-{i}.png" for i in (0, 1, 2, 9)]
    assert [d["ok"] for d in lines] == [True, True, True, False]
    assert lines[3]["error"]["code"].startswith("input.")
    for d in lines[:3]:
        assert d["result"]["page_count"] == 1
        assert word_f1(d["result"]["pages"][0]["ocr"]["text"], "\n".join(PAGE_LINES)) > 0.8
    assert "3 ok, 1 failed" in out.stderr and "docs/s" in out.stderr


@pytest.mark.integration
def test_spaces_storage_round_trip_on_the_s3_server(s3_env):
    keyring = Keyring.generate("example-k1")
    env = s3_example_env(s3_env) | keyring_env(keyring)
    store = f"s3://{s3_env['bucket']}/rythmiq"
    out = run_example(
        "examples/spaces_storage.py", str(SAMPLE), store, "--user-id", "u-42", env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    kinds = [line.split()[0] for line in out.stdout.splitlines()[:5]]
    assert kinds == ["master", "normalized", "preview", "text", "result"]
    assert "master decrypts to the original: True" in out.stdout
    assert "result.json: 1 page(s), quality" in out.stdout
    for secret in (env["SPACES_SECRET"], env["RYTHMIQ_KEYRING"]):
        assert secret not in out.stdout + out.stderr


def test_spaces_storage_without_a_keyring_fails_cleanly(s3_env):
    env = s3_example_env(s3_env)
    out = run_example(
        "examples/spaces_storage.py", str(SAMPLE), f"s3://{s3_env['bucket']}/x", env=env
    )
    assert out.returncode != 0
    assert "crypto.no_keyring" in out.stdout + out.stderr
    assert env["SPACES_SECRET"] not in out.stdout + out.stderr


def test_camber_payload_is_valid():
    from rythmiq.payload import parse_payload

    payload = parse_payload((EXAMPLES / "camber" / "payload.json").read_bytes())
    assert [d.document_id for d in payload.documents] == ["invoice-0142", "invoice-0143"]


@pytest.mark.integration
def test_camber_job_then_poll_for_its_result(s3_env, tmp_path):
    """The Camber flow: inputs in the Space, the worker on the payload, poll for result.json."""
    import s3fs

    from rythmiq.storage import s3_storage_options

    keyring = Keyring.generate("camber-k1")
    fs = s3fs.S3FileSystem(**s3_storage_options())
    prefix = f"{s3_env['bucket']}/rythmiq"
    fs.pipe_file(f"{prefix}/input/sample.jpg", SAMPLE.read_bytes())
    fs.pipe_file(f"{prefix}/input/sample-2.jpg", SAMPLE.read_bytes())
    payload = json.loads((EXAMPLES / "camber" / "payload.json").read_text())
    payload["output"] = f"s3://{prefix}"
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps(payload))
    env = s3_example_env(s3_env) | keyring_env(keyring)

    # Before the job has run, polling gives up at its deadline with 124.
    early = run_example(
        "examples/camber/poll_result.py", str(payload_file), "--timeout", "0.5",
        "--interval", "0.1", env=env,
    )  # fmt: skip
    assert early.returncode == 124 and "no s3://" in early.stderr

    job = subprocess.run(
        [sys.executable, "-m", "rythmiq.worker"],
        input=payload_file.read_text(),
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
    )
    assert job.returncode == 0, job.stderr[-2000:]
    out = run_example(
        "examples/camber/poll_result.py", str(payload_file), "--interval", "0.1", env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("job camber-example-1: ok (exit code 0)")
    assert "invoice-0142: ok, quality" in out.stdout and "invoice-0143: ok" in out.stdout


@pytest.mark.integration
def test_quickstart_notebook_executes_and_shows_html():
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("data:image/jpeg;base64," in h and "PASS" in h for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # draw_ocr's PIL image
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "NORTHWIND" in text and "sigma 4: score" in text
