"""Regression tests of the second hostile-testing round (issue 18), one group per finding.

Findings with a natural home are tested there instead: credentials in URLs and redaction in
test_storage.py and test_secrets.py, reserved document ids in test_layout.py, the keyring's
messages in test_keyring.py. docs/security.md lists each threat with its test.
"""

from __future__ import annotations

import json

import pytest

from rythmiq import PayloadError
from rythmiq.payload import parse_payload

PAYLOAD = {
    "version": 1,
    "job_id": "j1",
    "user_id": "u1",
    "output": "/tmp/store",
    "document_id": "d1",
    "input": "input/a.png",
}


# ------------------------------------------------ 12: repeated names; 14: a version of 1.0


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "version": 1, "job_id": "j1"}',
        json.dumps(PAYLOAD)[:-1] + ', "options": {"ocr": true, "ocr": false}}',
        json.dumps(PAYLOAD)[:-1] + ', "output": "s3://elsewhere/x"}',
    ],
)
def test_a_payload_that_repeats_a_name_is_refused(text):
    # Python keeps the last value; another reader of the same file may keep the first.
    with pytest.raises(PayloadError) as exc:
        parse_payload(text)
    assert exc.value.code == "payload.malformed" and "repeated" in str(exc.value)


@pytest.mark.parametrize("version", [1.0, "1", True, 1.5])
def test_the_version_must_be_the_integer_1(version):
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps({**PAYLOAD, "version": version}))
    assert exc.value.code == "payload.version"
    assert parse_payload(json.dumps(PAYLOAD)).job_id == "j1"


# ------------------------------------- 11: process_many from stdin or without a main guard

SCRIPT = """\
import sys, rythmiq
from rythmiq import BatchError, ProcessOptions
try:
    for r in rythmiq.process_many([sys.argv[1]], options=ProcessOptions(ocr=False), workers=1):
        print("status", r.ok)
except BatchError as exc:
    print("error", exc.code)
    print(exc.message)
"""


def _run_script(args, *, stdin=None, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture
def png(tmp_path):
    from _helpers import render_page
    from PIL import Image

    path = tmp_path / "page.png"
    Image.fromarray(render_page(width=300, height=400, font_size=16, margin=20)).save(path)
    return str(path)


def test_process_many_from_a_script_on_stdin_says_why_it_cannot_start(tmp_path, png):
    out = _run_script(["-", png], stdin=SCRIPT, cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert lines[0] == "error batch.main_not_importable", out.stdout + out.stderr
    assert "'<stdin>'" in lines[1] and "save it as a file" in lines[1]
    assert "Traceback" not in out.stderr  # no worker was started to die


def test_process_many_outside_the_main_guard_says_where_the_call_is(tmp_path, png):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT)
    out = _run_script([str(script), png], cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert lines[0] == "error batch.main_not_importable", out.stdout + out.stderr
    assert f"{script} (line 4)" in lines[1] and '__name__ == "__main__"' in lines[1]


def test_process_many_under_the_main_guard_runs(tmp_path, png):
    script = tmp_path / "guarded.py"
    body = "".join("    " + line + "\n" for line in SCRIPT.splitlines()[2:])
    script.write_text(
        "import sys, rythmiq\nfrom rythmiq import BatchError, ProcessOptions\n"
        f'if __name__ == "__main__":\n{body}'
    )
    out = _run_script([str(script), png], cwd=tmp_path)
    assert out.stdout.splitlines() == ["status True"], out.stdout + out.stderr


# ------------------------------------------- 7: Ctrl-C during process_many rolls back


INTERRUPTED = """\
import sys
sys.path.insert(0, sys.argv[1])
from batch_engines import SlowStore, command_engine, page_png
from rythmiq import Ids, ProcessOptions, Store, process_many
from rythmiq.keyring import Keyring

if __name__ == "__main__":
    base = Store.open(sys.argv[2])
    store = SlowStore(base.fs, base.root, base.url)
    try:
        for r in process_many(
            [page_png(i) for i in range(2)],
            options=ProcessOptions(rotate=False),
            workers=2,
            store=store,
            ids=[Ids("u1", "j1", f"d{i}") for i in range(2)],
            keyring=Keyring.generate("k1"),
            engine_factory=command_engine,
        ):
            print("done", r.ok, flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


def test_ctrl_c_during_process_many_leaves_no_partial_document(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    store, flag = tmp_path / "store", tmp_path / "flag"
    env = {**os.environ, "RYTHMIQ_TEST_FLAG": str(flag)}
    tests = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), tests, str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 90
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists(), proc.communicate(timeout=30)
    assert list(store.rglob("master.png.enc")), "the master was written before the interrupt"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends (the workers ignore their copy)
    out, err = proc.communicate(timeout=60)
    assert "interrupted" in out, out + err
    left = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert left == [], left  # masters, images and .tmp files all rolled back
    assert "Traceback" not in err, err


# ------------------------------------------ 13: a re-run with fewer outputs or pages


def test_a_rerun_with_fewer_outputs_removes_the_earlier_ones(tmp_path):
    from _helpers import ScriptedEngine, render_page

    from rythmiq import Ids, ProcessOptions, Store, process
    from rythmiq.keyring import Keyring

    store, ids, keyring = Store.open(str(tmp_path)), Ids("u1", "j1", "d1"), Keyring.generate("k")
    page = render_page(width=400, height=500, font_size=20, margin=20)

    def run(pages, outputs):
        return process(
            pages[0],
            options=ProcessOptions(outputs=outputs, rotate=False),
            engine=ScriptedEngine(),
            store=store,
            ids=ids,
            keyring=keyring,
        )

    import io

    from PIL import Image

    tiff = io.BytesIO()
    frames = [Image.fromarray(page)] * 2
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    run([tiff.getvalue()], ("txt", "hocr", "pdf"))
    before = set(store.list("output/"))
    assert {"output/u1/j1/text.hocr", "output/u1/j1/pages/0002/preview.jpg"} <= before
    result = run([page], ("txt",))
    after = set(store.list("output/"))
    listed = {a.key for a in result.artifacts if a.key.startswith("output/")}
    assert after == listed  # exactly what result.json lists: no stale hOCR, PDF or pages
    stored = json.loads(store.read("output/u1/j1/result.json"))
    assert {a["key"] for a in stored["artifacts"]} | {"output/u1/j1/result.json"} >= after


# ----------------------------------------- 4: options that amplify work and memory

AMPLIFY = """\
import io, resource, sys
import cv2, numpy
from PIL import Image
import rythmiq
from rythmiq import ProcessOptions, RythmiqError, process

buf = io.BytesIO()
Image.new("RGB", (1000, 1000), "white").save(buf, "PNG", dpi=(72, 72))
options = ProcessOptions(ocr=False, box=None, target_dpi=2400)  # 33333 x 33333 x 3: 3.3 GB
# What the process holds now plus 1.5 GiB: the 3.3 GB a resize would allocate cannot fit.
vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = vm * 1024 + 1536 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    process(buf.getvalue(), options=options)
    print("processed")
except RythmiqError as exc:
    print("error", exc.code)
except BaseException as exc:
    print("untyped", type(exc).__name__)
"""


def test_an_output_over_max_output_pixels_is_refused_before_it_is_allocated(tmp_path):
    # A 5 KB PNG at 72 dpi and target_dpi=2400: 1111 times the pixels. The size is planned
    # and refused before a resize could allocate it (here the address space is too small).
    out = _run_script(["-"], stdin=AMPLIFY, cwd=tmp_path)
    assert out.stdout.strip() == "error input.output_too_large", out.stdout + out.stderr


@pytest.mark.parametrize("box", [(20000, 20000), (10001, 10000)])
def test_a_box_over_max_output_pixels_is_refused_when_options_are_built(box):
    from rythmiq import OptionsError, ProcessOptions

    with pytest.raises(OptionsError, match="max_output_pixels"):
        ProcessOptions(box=box, upscale=True)
    with pytest.raises(PayloadError) as exc:
        parse_payload(json.dumps({**PAYLOAD, "options": {"box": list(box), "upscale": True}}))
    assert exc.value.code == "payload.invalid" and "max_output_pixels" in exc.value.message
    # A larger bound is a choice, made in the options or the payload.
    big = box[0] * box[1]
    assert ProcessOptions(box=box, max_output_pixels=big).max_output_pixels == big
    options = {"box": list(box), "max_output_pixels": big}
    assert parse_payload(json.dumps({**PAYLOAD, "options": options})).options.box == box


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", True, None])
def test_max_output_pixels_is_a_positive_integer(bad):
    from rythmiq import OptionsError, ProcessOptions

    with pytest.raises(OptionsError, match="max_output_pixels must be an integer >= 1"):
        ProcessOptions(max_output_pixels=bad)
    assert ProcessOptions(max_output_pixels=1e8).max_output_pixels == 100_000_000
    assert ProcessOptions().max_output_pixels == ProcessOptions().max_pixels == 100_000_000


# ------------------------------ 10: control characters printed raw to the terminal
# (the CLI's own runs are in cli/test_cli_process.py)


@pytest.mark.parametrize(
    ("text", "one_line", "lines"),
    [
        ("plain text, a\\backslash", "plain text, a\\backslash", "plain text, a\\backslash"),
        ("osc \x1b]0;title\x07 end", "osc \\x1b]0;title\\x07 end", "osc \\x1b]0;title\\x07 end"),
        (
            "nul\x00 del\x7f c1\x85\x9b",
            "nul\\x00 del\\x7f c1\\x85\\x9b",
            "nul\\x00 del\\x7f c1\\x85\\x9b",
        ),
        ("a\tb\nc\rd", "a\\x09b\\x0ac\\x0dd", "a\tb\nc\\x0dd"),
        ("rtl \u202e\u2066 \u2028", "rtl \\u202e\\u2066 \\u2028", "rtl \\u202e\\u2066 \\u2028"),
        ("byte \udcff lone \ud800", "byte \\xff lone \\ud800", "byte \\xff lone \\ud800"),
        ("é ü 東京 😀 \u200d", "é ü 東京 😀 \u200d", "é ü 東京 😀 \u200d"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text, one_line, lines):
    from rythmiq._util import printable

    assert printable(text) == one_line
    assert printable(text, lines=True) == lines
    printable(text).encode("utf-8")  # always writable


def test_log_lines_escape_control_characters():
    import logging

    from rythmiq._logging import RedactingFormatter

    record = logging.LogRecord(
        "rythmiq.cli", logging.ERROR, "x", 1, "%s: failed", ("a\x1b[2Jb",), None
    )
    assert RedactingFormatter("%(message)s\n\tnext").format(record) == "a\\x1b[2Jb: failed\n\tnext"
