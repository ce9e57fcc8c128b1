"""The CLI's machinery, in process: option groups (rythmiq._cli.grouping) and the lazy
runners (rythmiq._cli.lazy)."""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import FrozenInstanceError, dataclass

import click
import pytest
from click.testing import CliRunner

from rythmiq._cli import bundle, jobs, keys, lazy, models, process
from rythmiq._cli.grouping import GroupedCommand, OptionGroup, option
from rythmiq._cli.lazy import Deferred, resolve
from rythmiq._cli.process_options import OcrOptions, StoreOptions, WorkerOptions
from rythmiq._errors import OptionsError


@dataclass(frozen=True)
class Size:
    width: int
    height: int | None


SIZE = OptionGroup(
    "Size",
    "size",
    Size,
    (
        option("--width", type=int, default=1, help="The width."),
        option("--height", type=int, help="The height."),
    ),
)


def _command(seen):
    @click.command(cls=GroupedCommand)
    @click.option("--name", default="x", help="A name.")
    @SIZE
    def show(name, size):
        seen.append((name, size))

    return show


def test_a_group_reaches_the_command_as_one_frozen_dataclass():
    seen = []
    result = CliRunner().invoke(_command(seen), ["--height", "7", "--name", "y"])
    assert result.exit_code == 0, result.output
    assert seen == [("y", Size(width=1, height=7))]
    with pytest.raises(FrozenInstanceError):
        seen[0][1].width = 2  # type: ignore[misc]


def test_help_has_one_section_per_group_then_the_others():
    result = CliRunner().invoke(_command([]), ["--help"])
    assert result.exit_code == 0
    text = result.output
    assert text.index("Other options:") < text.index("Size:")  # in the order of first use
    size = text[text.index("Size:") :]
    assert re.search(r"\n  --width INTEGER +The width\.\n  --height INTEGER +The height\.\n", size)
    assert text.count("--width") == 1 and "Options:" not in text.replace("Other options:", "")


def test_a_dataclass_that_does_not_match_its_options_is_refused():
    @dataclass(frozen=True)
    class Wrong:
        width: int

    wrong = OptionGroup("Wrong", "wrong", Wrong, (option("--width", type=int), option("--x")))
    with pytest.raises(TypeError, match=r"Wrong has fields \['width'\].*\['width', 'x'\]"):
        click.command(cls=GroupedCommand)(wrong(lambda wrong: None))


def test_process_groups_give_the_process_options_they_set():
    ocr = OcrOptions(
        no_ocr=True, threads=2, engine=None, runtime=None, det_model="d", rec_model=None
    )
    assert ocr.settings() == {"threads": 2, "det_model": "d", "ocr": False}
    store = StoreOptions(
        out=None,
        user_id="local",
        job_id=None,
        document_id=None,
        want_pdf=True,
        want_hocr=False,
        want_txt=True,
    )
    with pytest.raises(OptionsError, match="give --out"):
        store.settings()
    with_out = StoreOptions(**{**store.__dict__, "out": "memory://x", "job_id": "j"})
    assert with_out.settings() == {"outputs": ("txt", "pdf")}
    with pytest.raises(OptionsError, match="need a single input"):
        with_out.check(2)
    with pytest.raises(OptionsError, match="need --workers 2"):
        WorkerOptions(workers=1, max_docs_per_worker=None, timeout=3.0).check()


def test_every_runner_is_deferred_and_resolves_to_a_function_that_takes_the_call():
    found = {name: value for name, value in vars(lazy).items() if isinstance(value, Deferred)}
    assert sorted(found) == [
        "run_bundle",
        "run_decrypt",
        "run_keygen",
        "run_models_list",
        "run_models_prefetch",
        "run_payload_split",
        "run_process",
        "run_worker",
    ]
    assert sorted(found) == sorted(n for n in lazy.__all__ if n.startswith("run_"))
    for name, stand_in in found.items():
        function = resolve(stand_in.target)
        assert callable(function) and inspect.signature(function).parameters, name
    module = importlib.import_module("rythmiq._cli.process_run")
    assert resolve(found["run_process"].target) is module.run_process
    # The declarations call the stand-ins, not the runners.
    for declaration in (bundle, jobs, keys, models, process):
        called = [v for v in vars(declaration).values() if isinstance(v, Deferred)]
        assert called and all(v in found.values() for v in called), declaration.__name__


def test_a_deferred_target_must_name_a_module_and_a_function():
    for target in ["rythmiq._cli.keys_run", ":run", "rythmiq._cli.keys_run:"]:
        with pytest.raises(ValueError, match="module:function"):
            Deferred(target)
    assert Deferred("math:floor")(2.5) == 2
