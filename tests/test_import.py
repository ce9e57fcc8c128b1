"""`import rythmiq` stays cheap: no numpy, OpenCV, Paddle or s3fs until needed."""

from __future__ import annotations

import json
import subprocess
import sys

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
