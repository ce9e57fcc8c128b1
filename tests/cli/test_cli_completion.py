"""Shell completion, as docs/cli.md tells users to turn it on: the real `rythmiq` command in a
subprocess prints each shell's script and answers completion requests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The console script next to this Python (what a user's shell runs); `python -m rythmiq`
# where it is not installed: both are prog "rythmiq", so both answer _RYTHMIQ_COMPLETE.
SCRIPT = Path(sys.executable).with_name("rythmiq")
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "rythmiq"]


def complete(cli_env, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        COMMAND, capture_output=True, text=True, timeout=60, env=cli_env | env, check=False
    )


def request(cli_env, words: str, cword: int) -> list[str]:
    """What bash would be offered for ``words`` with the cursor on word ``cword``."""
    out = complete(
        cli_env, COMP_WORDS=words, COMP_CWORD=str(cword), _RYTHMIQ_COMPLETE="bash_complete"
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout.splitlines()


@pytest.mark.parametrize(
    ("shell", "marks"),
    [
        ("bash", ["_rythmiq_completion()", "complete -o nosort -F _rythmiq_completion rythmiq"]),
        ("zsh", ["#compdef rythmiq", "compdef _rythmiq_completion rythmiq"]),
        ("fish", ["function _rythmiq_completion", "complete --no-files --command rythmiq"]),
    ],
)
def test_each_shell_gets_its_script(cli_env, shell, marks):
    out = complete(cli_env, _RYTHMIQ_COMPLETE=f"{shell}_source")
    assert out.returncode == 0 and out.stderr == ""
    for mark in marks:
        assert mark in out.stdout, (shell, mark)


def test_requests_offer_commands_options_and_values(cli_env):
    assert request(cli_env, "rythmiq pro", 1) == ["plain,process"]
    assert request(cli_env, "rythmiq models ", 2) == ["plain,list", "plain,prefetch"]
    assert "plain,--engine" in request(cli_env, "rythmiq process --eng", 2)
    assert request(cli_env, "rythmiq process --engine ", 3) == ["plain,onnx", "plain,paddle"]


def test_inputs_complete_as_file_names(cli_env):
    # "file" tells the shell to complete file names itself (bash: compopt -o default).
    assert request(cli_env, "rythmiq process sc", 2) == ["file,sc"]
    assert request(cli_env, "rythmiq worker --payload jo", 3) == ["file,jo"]
    assert request(cli_env, "rythmiq payload split ", 3) == ["file,"]


@pytest.mark.skipif(not SCRIPT.is_file() or shutil.which("bash") is None, reason="no bash")
def test_bash_runs_the_script_it_was_given(cli_env):
    """The line docs/cli.md gives for ~/.bashrc, in a real bash: the function it defines
    asks rythmiq and fills COMPREPLY."""
    script = r"""
eval "$(_RYTHMIQ_COMPLETE=bash_source rythmiq)"
complete -p rythmiq
COMP_WORDS=(rythmiq process --engine ""); COMP_CWORD=3
_rythmiq_completion rythmiq
echo "offered: ${COMPREPLY[*]}"
"""
    path = f"{SCRIPT.parent}{os.pathsep}{cli_env.get('PATH', '')}"
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env | {"PATH": path},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "complete -o nosort -F _rythmiq_completion rythmiq",
        "offered: onnx paddle",
    ]


@pytest.mark.skipif(not SCRIPT.is_file() or shutil.which("fish") is None, reason="no fish")
def test_fish_completes_file_names_for_process(cli_env, tmp_path):
    (tmp_path / "scan-01.jpg").write_bytes(b"")
    path = f"{SCRIPT.parent}{os.pathsep}{cli_env.get('PATH', '')}"
    out = subprocess.run(
        [
            "fish",
            "--no-config",
            "-c",
            '_RYTHMIQ_COMPLETE=fish_source rythmiq | source; complete -C "rythmiq process sca"',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=cli_env | {"PATH": path, "HOME": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["scan-01.jpg"]
