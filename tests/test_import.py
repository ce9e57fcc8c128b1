"""`import rythmiq` stays cheap: no numpy, OpenCV, Paddle or s3fs until needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import rythmiq

HEAVY = ("numpy", "cv2", "paddle", "paddleocr", "paddlex", "s3fs", "PIL")


def test_import_loads_no_heavy_module():
    code = (
        f"import json, sys, rythmiq; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_names_resolve():
    for name in rythmiq.__all__:
        assert getattr(rythmiq, name) is not None
    assert "process" in dir(rythmiq)
    try:
        rythmiq.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown attribute did not raise")


def test_the_version_is_written_once():
    import importlib.metadata

    from rythmiq._version import __version__

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    assert rythmiq.__version__ == __version__ == importlib.metadata.version("rythmiq")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "rythmiq._version.__version__"}
