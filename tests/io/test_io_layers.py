"""rythmiq.io moves data one way: each module imports only the modules before it in the flow,
and no module reads a private name of another."""

from __future__ import annotations

import ast
from pathlib import Path

IO = Path(__file__).resolve().parents[2] / "rythmiq" / "io"
RYTHMIQ = IO.parent
# The order of the package docstring; tiff and pdf are two readers side by side.
ORDER = ["limits", "pages", "source", "sniff", "preflight", "raster", "tiff", "pdf", "load"]


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    tree = ast.parse(path.read_text("utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _io_targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    return [n.split(".")[2] for n in names if n.startswith("rythmiq.io.")]


def test_every_module_is_in_the_flow():
    assert sorted(p.stem for p in IO.glob("*.py")) == sorted([*ORDER, "__init__"])


def test_modules_import_only_the_steps_before_them():
    for rank, name in enumerate(ORDER):
        allowed = set(ORDER[:rank]) - ({"tiff"} if name == "pdf" else set())
        for node in _imports(IO / f"{name}.py"):
            assert isinstance(node, ast.Import) or node.level == 0, f"{name}: relative import"
            if isinstance(node, ast.ImportFrom) and node.module == "rythmiq.io":
                raise AssertionError(f"{name} imports the package rythmiq.io (a cycle)")
            for target in _io_targets(node):
                assert target in allowed, f"rythmiq.io.{name} imports rythmiq.io.{target}"


def test_no_module_imports_a_private_name_of_the_io_package():
    for path in sorted(RYTHMIQ.rglob("*.py")):
        for node in _imports(path):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "rythmiq.io"
            ):
                continue
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.relative_to(RYTHMIQ)}:{node.lineno} imports {private}"


def test_nothing_reaches_rythmiq_io_through_a_relative_import():
    # `from . import io` in rythmiq/ would shadow the standard library's io by name.
    for path in sorted(RYTHMIQ.rglob("*.py")):
        assert not [n for n in _imports(path) if isinstance(n, ast.ImportFrom) and n.level], path
