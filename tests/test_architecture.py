"""The import graph of rythmiq/ has no cycle.

Every import of a rythmiq module counts, at the top of a module or inside a function, except
those in ``if TYPE_CHECKING:`` blocks (types only, never run) and those labelled
``# upward, lazy`` on their line: a function-level import that reaches up a layer on purpose
(the notebook display of the result types, an old public name kept at its old home).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rythmiq"
LABEL = "# upward, lazy"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 700


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """``({module: modules it imports}, labelled imports as "module:line")``."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    labelled: list[str] = []

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    for name, path in modules.items():
        source = path.read_text("utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        skipped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif node.module is None or node.level:
                continue
            else:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            targets = [t for t in targets if t == "rythmiq" or t.startswith("rythmiq.")]
            if not targets:
                continue
            if LABEL in lines[node.lineno - 1]:
                labelled.append(f"{name}:{node.lineno}")
                continue
            for target in targets:
                found = resolve(target)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph, labelled


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def _path_of(module: str) -> Path:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    return path if path.exists() else path.with_suffix("") / "__init__.py"


def test_labelled_upward_imports_are_few_and_inside_functions():
    _, labelled = import_graph()
    # The three notebook displays and storage's old store_artifacts name.
    assert len(labelled) == 4, labelled
    for place in labelled:
        name, line = place.split(":")
        text = _path_of(name).read_text("utf-8").splitlines()[int(line) - 1]
        assert text.startswith("        "), f"{place} is not inside a function: {text!r}"


def function_level_imports() -> list[str]:
    """``module:line`` of every import of a rythmiq module inside a function, unlabelled."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text("utf-8")
        lines = source.splitlines()
        for func in ast.walk(ast.parse(source)):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                ours = any(n == "rythmiq" or n.startswith("rythmiq.") for n in names)
                if ours and LABEL not in lines[node.lineno - 1]:
                    found.append(f"{_module_name(path)}:{node.lineno}")
    return sorted(set(found))


def test_rythmiq_modules_are_imported_at_module_level():
    # Lazy imports are for heavy third-party libraries; rythmiq's own modules are imported
    # at the top, so the import graph above is the whole truth.
    assert function_level_imports() == []


def test_the_layers_contract_ignores_exactly_the_labelled_imports():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text("utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    ignored = sorted(contract["ignore_imports"])
    labelled = []
    for place in import_graph()[1]:
        name, line = place.split(":")
        text = _path_of(name).read_text("utf-8").splitlines()[int(line) - 1]
        target = ast.parse(text.strip()).body[0]
        assert isinstance(target, ast.ImportFrom)
        labelled.append(f"{name} -> {target.module}")
    assert ignored == sorted(labelled)
    # Every rythmiq module sits in exactly one layer.
    layered = [
        m.strip() for layer in contract["layers"] for m in layer.replace("|", ":").split(":")
    ]
    assert len(layered) == len(set(layered))
    modules = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert sorted(modules - {"__init__", "__main__"}) == sorted(layered)


def test_functions_and_modules_stay_small():
    long_functions, long_modules = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text("utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{path.relative_to(PACKAGE)}: {source.count(chr(10))}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name} {length}")
    assert long_functions == []
    assert long_modules == []


def test_the_checker_sees_a_cycle():
    # The check itself can fail: a made-up graph with a loop is reported.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
