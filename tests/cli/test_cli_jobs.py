"""`rythmiq worker`, run as a real subprocess (`rythmiq payload split`: test_split_resume.py)."""

from __future__ import annotations

import json

from _helpers import run_cli as run


def test_worker_command_delegates_to_the_worker(tmp_path):
    payload = tmp_path / "payload.json"
    payload.write_text("{}")
    out = run("worker", "--payload", str(payload))
    assert out.returncode == 4, out.stderr
    job = json.loads(out.stdout)
    assert job["status"] == "error" and job["error"]["code"].startswith("payload.")
