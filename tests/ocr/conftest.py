"""Fixtures of the OCR tests: an environment without model settings, the rendered page as PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import render_page
from PIL import Image

from rythmiq.ocr import BUNDLED_MODELS_ENV, MODEL_DIR_ENV


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither ``$RYTHMIQ_MODEL_DIR`` nor ``$RYTHMIQ_BUNDLED_MODELS`` is set."""
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    monkeypatch.delenv(BUNDLED_MODELS_ENV, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def page_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered page (``render_page``) as a 200-dpi PNG, one per test module."""
    path = tmp_path_factory.mktemp("page") / "page.png"
    Image.fromarray(render_page()).save(path, dpi=(200, 200))
    return path
