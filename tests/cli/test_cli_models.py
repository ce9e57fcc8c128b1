"""`rythmiq models`, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from _helpers import needs_paddle
from _helpers import run_cli as run


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
