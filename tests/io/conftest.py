"""Fixtures of the io tests (shared ones live in ../conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import render_page


@pytest.fixture(scope="module")
def pages() -> list[np.ndarray]:
    """Three distinguishable pages: different sizes, different text."""
    return [
        render_page([f"Page one of three, line {i}" for i in range(3)], width=850, height=1100),
        render_page(["Second page"], width=1100, height=850),
        render_page(["Third page, grey"], width=600, height=800)[:, :, 0],
    ]


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(owner, name)`` wraps ``owner.name`` and returns the list of its calls,
    each as ``(args, kwargs)``: proof of how often a step runs."""

    def wrap(owner: object, name: str) -> list[tuple[tuple[object, ...], dict[str, object]]]:
        calls: list[tuple[tuple[object, ...], dict[str, object]]] = []
        original = getattr(owner, name)

        def counted(*args: object, **kwargs: object) -> object:
            calls.append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
        return calls

    return wrap
