"""Shared fixtures: a rendered page, a scripted engine, S3 on loopback (helpers: _helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import PAGE_LINES, ScriptedEngine, render_page
from numpy.typing import NDArray


@pytest.fixture(scope="session")
def page() -> NDArray[np.uint8]:
    return render_page()


@pytest.fixture(scope="session")
def small_print_page() -> NDArray[np.uint8]:
    """A 1200x1600 page of 24 px print: strokes about 1 px wide at the 1024 px analysis size,
    like a receipt, so that blur lifts their darkest pixels."""
    return render_page(PAGE_LINES * 3, width=1200, height=1600, font_size=24, margin=80)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


# --------------------------------------------------------------------------- S3 on loopback


@pytest.fixture(scope="session")
def moto_server():
    """A real S3 protocol server (moto's server mode) on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    handle = {"server": server, "endpoint": f"http://{host}:{port}", "port": port}
    yield handle
    handle["server"].stop()


@pytest.fixture
def s3_env(moto_server, monkeypatch):
    """Environment pointing s3:// stores at the moto server, with a fresh bucket."""
    import uuid

    import s3fs

    monkeypatch.setenv("RYTHMIQ_S3_ENDPOINT", moto_server["endpoint"])
    monkeypatch.setenv("RYTHMIQ_S3_REGION", "eu-west-1")
    monkeypatch.setenv("RYTHMIQ_S3_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SPACES_KEY", "test-spaces-key-7Hq2")
    monkeypatch.setenv("SPACES_SECRET", "test-spaces-secret-Zx81LmQ0pR")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    from rythmiq.storage import s3_storage_options

    s3fs.S3FileSystem(**s3_storage_options()).mkdir(bucket)
    yield {"bucket": bucket, **moto_server}
    s3fs.S3FileSystem.clear_instance_cache()
