"""The public names: listed once (rythmiq/__init__.pyi), named ``rythmiq.X``, picklable, and
their annotations resolvable by ``typing.get_type_hints``."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import pickle
import pydoc
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import rythmiq

STUB = Path(rythmiq.__file__).with_suffix(".pyi")
OBJECTS = [n for n in rythmiq.__all__ if n != "__version__"]


def test_the_stub_is_the_one_list_of_public_names():
    tree = ast.parse(STUB.read_text("utf-8"))
    listed = [a.name for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names]
    assert len(listed) == len(set(listed)), "a name is listed twice"
    assert sorted(listed) == sorted(rythmiq.__all__)
    # Each is re-exported for type checkers (`X as X`), and nothing else is in the stub.
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 1 and all(a.asname == a.name for a in node.names)
        else:
            assert isinstance(node, ast.Expr), ast.dump(node)  # the docstring only
    # __init__.py lists nothing itself.
    source = Path(rythmiq.__file__).read_text("utf-8")
    assert "ProcessResult" not in source and "process_many" not in source


@pytest.mark.parametrize("name", OBJECTS)
def test_public_types_and_functions_are_named_from_the_root(name):
    obj = getattr(rythmiq, name)
    assert obj.__module__ == "rythmiq", f"{name} is {obj.__module__}.{obj.__qualname__}"
    assert obj.__qualname__ == name


@pytest.mark.parametrize("name", OBJECTS)
def test_public_names_pickle_by_reference(name):
    obj = getattr(rythmiq, name)
    assert pickle.loads(pickle.dumps(obj)) is obj


@pytest.mark.parametrize("name", OBJECTS)
def test_type_hints_resolve(name):
    obj = getattr(rythmiq, name)
    hints = typing.get_type_hints(obj)
    if dataclasses.is_dataclass(obj):
        assert set(hints) >= {f.name for f in dataclasses.fields(obj)}
        assert not any(isinstance(h, str | typing.ForwardRef) for h in hints.values())
    if inspect.isfunction(obj):
        assert "return" in hints


@pytest.mark.parametrize("name", OBJECTS)
def test_help_shows_resolved_types_not_strings(name):
    # `from __future__ import annotations` leaves every annotation a string: help() showed
    # `process(source: 'Source', ...)`. Classes' methods are the class's own business.
    obj = getattr(rythmiq, name)
    if not callable(obj):
        pytest.skip("a constant")
    target = obj.__init__ if isinstance(obj, type) and dataclasses.is_dataclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        pytest.skip("no signature")
    quoted = [p.name for p in signature.parameters.values() if isinstance(p.annotation, str)]
    assert not quoted, f"{name}: {quoted} are strings"
    assert not isinstance(signature.return_annotation, str), name
    text = pydoc.render_doc(obj, renderer=pydoc.plaintext)
    assert "'Source'" not in text and "NoneType" not in text.split("\n", 3)[2]


def _results(page, engine, tmp_path):
    """One real instance of each result type, from real calls."""
    engine.lines = [(f"line {i} of a long page", 0.912345678 - i / 1000) for i in range(30)]
    result = rythmiq.process(page, engine=engine)
    first = result.pages[0]
    store = rythmiq.Store.open(str(tmp_path / "store"))
    stored = rythmiq.process(
        page,
        engine=engine,
        store=store,
        ids=rythmiq.Ids("u", "j", "d"),
        keyring=rythmiq.Keyring.generate("k1"),
    )
    no_ocr = rythmiq.ProcessOptions(ocr=False)
    batch = list(rythmiq.process_many([page, b"not an image"], workers=1, options=no_ocr))
    return [
        result,
        first,
        first.quality,
        first.quality.exposure_stats,
        first.image,
        first.preview,
        first.ocr,
        first.ocr.lines[0],
        result.timings,
        result.timings.ocr,
        stored.artifacts[0],
        *batch,
        rythmiq.load_image(page),
        rythmiq.load_document(page),
        next(rythmiq.load_document(page).pages()),
    ]


def test_every_result_prints_on_one_short_line(page, engine, tmp_path):
    # QualityReport and PageResult printed every float in full (0.9086927409166653) and
    # PageResult ran to 1,400 characters; LoadedImage printed its pixel array.
    def digits(number: str) -> int:  # significant digits of a decimal literal
        return len(number.replace(".", "").lstrip("0"))

    for obj in _results(page, engine, tmp_path):
        text = repr(obj)
        assert text.startswith(type(obj).__name__ + "("), text
        assert "\n" not in text and len(text) <= 250, (len(text), text)
        floats = re.findall(r"(?<![\w.'])\d+\.\d+", text)
        assert all(digits(f) <= 4 for f in floats), text
    quality = _results(page, engine, tmp_path)[2]
    assert repr(quality).endswith(f"reasons={quality.reasons!r})")  # the headline only
    assert f"{quality.score:.4g}" in repr(quality)


def test_results_and_errors_round_trip_through_pickle(page, engine):
    result = rythmiq.process(page, engine=engine)
    again = pickle.loads(pickle.dumps(result))
    assert type(again) is rythmiq.ProcessResult
    assert again.to_dict() == result.to_dict()
    exc = rythmiq.InputError("no such file", code="input.not_found")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is rythmiq.InputError and back.code == "input.not_found"
    assert repr(type(back)) == "<class 'rythmiq.InputError'>"


def test_a_fresh_interpreter_unpickles_a_result_without_importing_its_module_first(
    page, engine, tmp_path
):
    # The pickle names rythmiq.ProcessResult; the root's lazy attribute finds it.
    path = tmp_path / "result.pickle"
    path.write_bytes(pickle.dumps(rythmiq.process(page, engine=engine)))
    code = (
        "import pickle, sys; r = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(type(r).__module__, type(r).__name__, r.quality.passed)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["rythmiq", "ProcessResult", "True"]


USER_SCRIPT = """
import rythmiq

rythmiq.ProcessOptions(engine="paddle", runtime="openvino", outputs=("txt", "pdf"))
rythmiq.ProcessOptions(engine="tesseract")
rythmiq.ProcessOptions(runtime="cuda")
rythmiq.ProcessOptions(outputs=("doc",))
rythmiq.ProcessOptions(assumed_page="tabloid")
rythmiq.EngineConfig(engine="tesseract")
"""


def test_a_type_checker_refuses_an_option_value_outside_its_choices(tmp_path):
    # The enumerated options are Literal types: mypy (as a user runs it) names each bad value.
    pytest.importorskip("mypy")
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    env = dict(os.environ)
    home = Path(rythmiq.__file__).parents[1]
    if "site-packages" not in home.parts:  # an editable install: mypy cannot follow its hook
        env["MYPYPATH"] = str(home)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--follow-imports=silent",
            script.name,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    lines = sorted(
        int(line.split(":")[1]) for line in out.stdout.splitlines() if ": error:" in line
    )
    assert lines == [5, 6, 7, 8, 9], out.stdout
    for value in ("tesseract", "cuda", "doc", "tabloid"):
        assert f"Literal['{value}']" in out.stdout
