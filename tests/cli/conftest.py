"""Fixtures of the command-line tests: a private environment and a page on disk."""

from __future__ import annotations

import os

import pytest
from _helpers import render_page
from PIL import Image


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


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "page.png"
    Image.fromarray(render_page()).save(path, dpi=(200, 200))
    return path
