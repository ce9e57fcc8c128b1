"""The `rythmiq` group, run as a real subprocess: usage errors, --version, --debug, --help."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import click
import pytest
from _helpers import run_cli as run
from PIL import Image

from rythmiq._cli import app
from rythmiq._cli.process import process
from rythmiq._errors import EXIT_BROKEN_PIPE, InputError

RYTHMIQ = [sys.executable, "-m", "rythmiq"]


def test_broken_pipe_status_is_the_shell_s_sigpipe_status():
    assert EXIT_BROKEN_PIPE == 128 + signal.SIGPIPE


def test_usage_errors_exit_2():
    assert run("process").returncode == 2
    assert run("process", "--box", "big", "x.jpg").returncode == 2
    out = run("process", "--threshold", "7", "x.jpg")
    assert out.returncode == 2 and "threshold" in out.stderr
    for args in [("nope",), ("process", "--nope", "x.jpg"), ("models",)]:
        out = run(*args)
        assert out.returncode == 2, args
        # One line, in the same shape as every other error.
        assert out.stderr.startswith("rythmiq: error [options.invalid] "), args
        assert len(out.stderr.splitlines()) == 1 and out.stdout == "", args


def test_bare_rythmiq_prints_the_help_and_exits_0():
    out = run()
    assert out.returncode == 0, out.stderr
    assert out.stdout == run("--help").stdout and out.stderr == ""
    assert out.stdout.startswith("Usage: rythmiq [OPTIONS] COMMAND") and "process" in out.stdout


def _many_pages(folder: Path, n: int) -> None:
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (64, 48), (250, 250, 250)).save(folder / f"p{i:02d}.png")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_reader_that_stops_early_ends_the_run_quietly_with_141(tmp_path, workers):
    _many_pages(tmp_path / "pages", 30)
    # A real pipe, read as `| head -1` would: one line, then the reader goes away.
    proc = subprocess.Popen(
        [*RYTHMIQ, "process", "--no-ocr", "--json", "--workers", workers, "pages"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 141  # 128 + SIGPIPE
    assert json.loads(first)["source"] == "pages/p00.png"
    assert err == ""  # no traceback, no "Exception ignored" from the exit flush


def test_a_shell_pipeline_into_head_under_pipefail(tmp_path):
    _many_pages(tmp_path / "pages", 30)
    script = (
        f"{shlex.join(RYTHMIQ)} process --no-ocr --json pages | head -1;"
        ' echo "status ${PIPESTATUS[*]}"'
    )
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.stdout.splitlines()[-1] == "status 141 0", out
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_version():
    from rythmiq import __version__

    out = run("--version")
    assert out.returncode == 0 and out.stdout == f"rythmiq {__version__}\n"


def test_debug_shows_a_traceback_default_shows_one_line(tmp_path):
    missing = str(tmp_path / "nope.png")
    out = run("process", "--no-ocr", missing)
    assert out.returncode == 5
    assert out.stderr.splitlines() == [
        f"rythmiq: error [input.not_found] no such file: {missing!r}"
    ]
    out = run("--debug", "process", "--no-ocr", missing)
    assert out.returncode == 5
    assert "Traceback (most recent call last)" in out.stderr
    assert out.stderr.rstrip().endswith(
        f"rythmiq: error [input.not_found] no such file: {missing!r}"
    )


# --------------------------------------------------------------------------- --help


PROCESS_SECTIONS = {
    "Input": ["--pdf-dpi", "--max-pages"],
    "Quality": ["--threshold", "--skip-ocr-on-fail"],
    "Normalization": [
        "--box",
        "--target-dpi",
        "--max-bytes",
        "--max-output-pixels",
        "--rotate",
        "--no-rotate",
        "--deskew",
        "--no-deskew",
    ],
    "OCR": ["--no-ocr", "--threads", "--engine", "--runtime", "--det-model", "--rec-model"],
    "Storage": [
        "--out",
        "--user-id",
        "--job-id",
        "--document-id",
        "--pdf",
        "--hocr",
        "--txt",
        "--encrypt",
    ],
    "Output": ["--json", "--progress", "--no-progress"],
    "Workers": ["--workers", "--max-docs-per-worker", "--timeout"],
    "Other options": ["-h", "--help"],
}


def _help_sections(text):
    """``{heading: [flags of its rows]}`` of a --help text, in order."""
    sections: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if re.fullmatch(r"\S.*:", line):
            heading = line[:-1]
            sections[heading] = []
        elif heading is not None and line.startswith("  -"):
            first_column = re.split(r"\s{2,}", line.strip())[0]
            sections[heading] += re.findall(r"(?<![\w-])--?[a-z][a-z-]*", first_column)
    return sections


def test_process_help_lists_every_option_once_under_its_group():
    out = run("process", "--help")
    assert out.returncode == 0, out.stderr
    assert _help_sections(out.stdout) == PROCESS_SECTIONS
    flags = [flag for rows in _help_sections(out.stdout).values() for flag in rows]
    assert sorted(Counter(flags).values()) == [1] * len(flags)
    # ... and they are all of the command's options: none is left out of a group.
    declared = [o for p in process.params for o in (*p.opts, *p.secondary_opts) if o[0] == "-"]
    assert sorted(flags) == sorted([*declared, "-h", "--help"])
    # The usage line, the description and the epilog are where they were.
    assert out.stdout.startswith("Usage: rythmiq process [OPTIONS] PATH|DIR|GLOB|URL...\n")
    assert "Score, normalize and OCR document images and PDFs." in out.stdout
    assert out.stdout.rstrip().endswith("--debug adds the traceback.")
    assert ".md" not in out.stdout  # an installed wheel has no docs/ page to point at


def test_the_other_commands_keep_one_options_section():
    commands = [(), ("worker",), ("models",), ("models", "list"), ("payload", "split"), ("bundle",)]
    for args in commands:
        out = run(*args, "--help")
        assert out.returncode == 0, out.stderr
        headings = ["Options", "Commands"] if args in [(), ("models",)] else ["Options"]
        assert list(_help_sections(out.stdout)) == headings, args


HELP_RUNS = [
    ["--help"],
    ["--version"],
    ["process", "--help"],
    ["worker", "--help"],
    ["payload", "split", "--help"],
    ["models", "list", "--help"],
    ["models", "prefetch", "--help"],
    ["keygen", "--help"],
    ["decrypt", "--help"],
    ["bundle", "--help"],
]
HEAVY = ("numpy", "cv2", "PIL", "paddle", "onnxruntime", "openvino", "rapidocr", "s3fs")


@pytest.mark.parametrize("args", HELP_RUNS, ids=" ".join)
def test_help_and_version_import_no_numpy_and_no_runner(args):
    # As `python -m rythmiq ARGS` runs, then the modules it loaded, on stdout's last line.
    code = (
        "import json, sys\n"
        "from rythmiq._cli import main\n"
        f"code = main({args!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    code, imported = json.loads(out.stdout.splitlines()[-1])
    assert code == 0 and "rythmiq._cli.process" in imported
    assert {name.split(".")[0] for name in imported} & set(HEAVY) == set()
    # Nor cryptography, the store or any command's runner: only the declarations.
    assert not {"cryptography", "rythmiq.storage", "rythmiq.keyring"} & set(imported)
    assert [name for name in imported if name.endswith("_run")] == []


# --------------------------------------------------------------------------- the error edge


@pytest.mark.parametrize(
    ("raised", "code", "line"),
    [
        (KeyboardInterrupt(), 130, None),
        (click.Abort(), 130, None),
        (InputError("no such file: 'x'", code="input.not_found"), 5, "[input.not_found] no such"),
        (click.UsageError("bad"), 2, "[options.invalid] bad"),
        (click.FileError("f", "gone"), 1, "[internal] Could not open file 'f': gone"),
        (RuntimeError("boom"), 1, "[internal] RuntimeError: boom (run with --debug for the"),
    ],
)
def test_main_turns_each_error_into_one_line_and_its_exit_code(
    monkeypatch, capsys, raised, code, line
):
    def fail(**_kw):
        raise raised

    monkeypatch.setattr(app.cli, "main", fail)
    assert app.main(["process", "x.png"]) == code
    err = capsys.readouterr().err
    if line is None:
        assert err == ""
    else:
        assert err.startswith(f"rythmiq: error {line}") and len(err.splitlines()) == 1
