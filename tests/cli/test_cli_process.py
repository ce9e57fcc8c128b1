"""`rythmiq process`, run as a real subprocess: inputs, outputs, stores and exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
from _helpers import PAGE_LINES, on_terminal, render_page
from _helpers import run_cli as run
from PIL import Image

from rythmiq.metrics import word_f1

ROOT = Path(__file__).resolve().parents[2]


def test_no_ocr_json(page_file, tmp_path, cli_env):
    store = tmp_path / "store"
    out = run(
        "process",
        "--no-ocr",
        "--json",
        "--out",
        str(store),
        "--job-id",
        "j1",
        str(page_file),
        env=cli_env,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    d = json.loads(line)
    assert d["source"] == str(page_file) and d["page_count"] == 1 and d["passed"] is True
    (page,) = d["pages"]
    assert page["quality"]["passed"] is True
    assert page["ocr"] is None and page["ocr_skipped_reason"] == "disabled"
    assert d["text"] is None
    assert d["ids"] == {"user_id": "local", "job_id": "j1", "document_id": "page"}
    keys = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert keys == [
        "master/local/page/master.png.enc",
        "output/local/j1/normalized.jpg",
        "output/local/j1/preview.jpg",
        "output/local/j1/result.json",
    ]
    stored = json.loads((store / "output/local/j1/result.json").read_text())
    assert stored["page_count"] == 1 and stored["pages"][0]["image"]["dpi"] == 200
    # First use created the local keyring, said so, and made it private.
    keyring = Path(cli_env["XDG_CONFIG_HOME"]) / "rythmiq" / "keyring.json"
    assert "created a new keyring" in out.stderr and str(keyring) in out.stderr
    assert keyring.stat().st_mode & 0o777 == 0o600


def test_missing_file_exits_with_input_code(tmp_path):
    out = run("process", str(tmp_path / "nope.jpg"))
    assert out.returncode == 5
    assert "input.not_found" in out.stderr and out.stdout == ""


def test_not_an_image_names_the_type(tmp_path):
    bad = tmp_path / "doc.pdf"
    bad.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    out = run("process", str(bad))
    assert out.returncode == 5 and "PDF" in out.stderr


def test_partial_batch(page_file, tmp_path):
    out = run("process", "--no-ocr", "--json", str(page_file), str(tmp_path / "missing.png"))
    assert out.returncode == 3, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[0]["page_count"] == 1 and rows[0]["pages"][0]["quality"]["passed"]
    assert rows[1]["error"]["code"] == "input.not_found"


def _images(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_page(width=300, height=400, font_size=12, margin=20)).save(path)


def _sources(out):
    return [json.loads(line)["source"] for line in out.stdout.splitlines()]


def test_directory_input_recurses_sorted_images_only(tmp_path):
    _images(tmp_path, ["d/b.png", "d/a/z.JPG", "d/a/y.webp", "d/c.tiff", "d/.hidden/h.png"])
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    (tmp_path / "d" / "empty").mkdir()
    out = run("process", "--no-ocr", "--json", "d", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _sources(out) == ["d/a/y.webp", "d/a/z.JPG", "d/b.png", "d/c.tiff"]


def test_glob_input_is_expanded_when_the_shell_did_not(tmp_path):
    _images(tmp_path, ["s/one.png", "s/deep/two.png", "s/three.jpg"])
    # subprocess runs no shell, so the patterns arrive unexpanded.
    out = run("process", "--no-ocr", "--json", "s/**/*.png", "s/*.jpg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _sources(out) == ["s/deep/two.png", "s/one.png", "s/three.jpg"]
    # A pattern and a folder that overlap process each file once.
    out = run("process", "--no-ocr", "--json", "s/*.jpg", "s", cwd=tmp_path)
    assert _sources(out) == ["s/three.jpg", "s/deep/two.png", "s/one.png"]


def test_no_matching_input_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for arg in ["nothing/*.png", "empty"]:
        out = run("process", "--no-ocr", arg, cwd=tmp_path)
        assert out.returncode == 2 and "no input matched" in out.stderr, out.stderr


def test_piped_batch_stdout_is_pure_json_lines(tmp_path):
    _images(tmp_path, ["p/1.png", "p/2.png", "p/3.png"])
    out = run("process", "--no-ocr", "--json", "p", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["source"] for line in lines)
    # Neither a bar nor click's non-terminal stand-in for one (its label) is printed.
    assert out.stderr == "" and "\r" not in out.stdout


def test_progress_bar_goes_to_a_terminal_stderr_only(tmp_path):
    _images(tmp_path, ["p/1.png", "p/2.png", "p/3.png"])
    proc, terminal = on_terminal(
        [sys.executable, "-m", "rythmiq", "process", "--no-ocr", "--json", "p"], cwd=tmp_path
    )
    assert proc.returncode == 0
    # tqdm's bar: count, rate and time left, drawn in place on the terminal only.
    assert re.search(r"rythmiq: 100%\|.*\| 3/3 \[\d\d:\d\d<00:00, +[\d.]+doc/s\]", terminal)
    assert "1/3" in terminal and "\r" in terminal
    lines = proc.stdout_text.splitlines()
    assert [json.loads(line)["source"] for line in lines] == ["p/1.png", "p/2.png", "p/3.png"]


def test_results_print_above_the_bar_on_a_shared_terminal(tmp_path):
    _images(tmp_path, ["p/1.png", "p/2.png", "p/3.png"])
    proc, text = on_terminal(
        [sys.executable, "-m", "rythmiq", "process", "--no-ocr", "p"], stdout_too=True, cwd=tmp_path
    )
    assert proc.returncode == 0
    # Each summary starts on a line of its own (the bar is wiped first), and the last
    # thing left on the screen is the finished bar.
    for i in (1, 2, 3):  # the bar's line blanked, then the summary from its first column
        assert re.search(rf"\r {{40,}}\rp/{i}\.png\r\n", text), (i, text)
    assert text.rstrip().rsplit("\r", 1)[-1].startswith("rythmiq: 100%")


def test_url_inputs_take_the_document_id_from_the_name(s3_env, tmp_path):
    import s3fs

    from rythmiq.storage import s3_storage_options

    fs = s3fs.S3FileSystem(**s3_storage_options())
    _images(tmp_path, ["scan-7.png", "odd name.png"])
    for name in ["scan-7.png", "odd name.png"]:
        fs.put_file(str(tmp_path / name), f"{s3_env['bucket']}/input/{name}")
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    urls = [
        f"s3://{s3_env['bucket']}/input/scan-7.png",
        f"s3://{s3_env['bucket']}/input/odd name.png",
    ]
    store = tmp_path / "store"
    out = run("process", "--no-ocr", "--json", "--out", str(store), *urls, env=env)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["source"] for r in rows] == urls
    digest = hashlib.sha256((tmp_path / "odd name.png").read_bytes()).hexdigest()[:16]
    assert [r["ids"]["document_id"] for r in rows] == ["scan-7", f"doc-{digest}"]
    assert (store / "master/local/scan-7/master.png.enc").is_file()


@pytest.mark.integration
def test_process_with_ocr_prints_text(page_file):
    out = run("process", "--threads", "2", str(page_file))
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout
    text = out.stdout.split("  text:\n", 1)[1]
    assert word_f1(text, "\n".join(PAGE_LINES)) >= 0.95
    # Library logs and model chatter stay off stdout's first line.
    assert out.stdout.splitlines()[0] == str(page_file)


@pytest.mark.integration
def test_bundled_sample_runs():
    sample = ROOT / "examples" / "data" / "sample.jpg"
    out = run("process", "--json", str(sample))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["page_count"] == 1 and d["pages"][0]["quality"]["passed"]
    assert "127.80" in d["pages"][0]["ocr"]["text"] and d["text"] == d["pages"][0]["ocr"]["text"]


# ---------------------- control characters never reach the terminal raw (issue 18, 10)

# ESC starts an OSC window-title sequence that BEL ends; U+009B is a one-byte CSI; U+202E
# turns the rest of the line around.
HOSTILE_NAME = "scan\x1b]0;pwned\x07\x9b\u202e.png"
SHOWN_NAME = "scan\\x1b]0;pwned\\x07\\x9b\\u202e.png"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x00")


def _blank_png(path: Path) -> Path:
    Image.new("L", (40, 40), 255).save(path, format="PNG")
    return path


def test_a_file_name_with_control_characters_is_printed_escaped(tmp_path, cli_env):
    path = _blank_png(tmp_path / HOSTILE_NAME)
    missing = tmp_path / "gone\x1b]0;x\x07.png"
    out = run("process", "--no-ocr", str(path), str(missing), env=cli_env)
    assert out.returncode == 3, out.stderr  # one input failed: its log line names it
    assert not any(c in out.stdout + out.stderr for c in RAW), (out.stdout, out.stderr)
    assert out.stdout.splitlines()[0] == str(tmp_path / SHOWN_NAME)
    assert f"{tmp_path}/gone\\x1b]0;x\\x07.png: [input.not_found]" in out.stderr
    # --json output is JSON with every non-ASCII character escaped, C1 controls included.
    out = run("process", "--no-ocr", "--json", str(path), env=cli_env)
    assert out.returncode == 0 and out.stdout.isascii(), out.stderr
    assert json.loads(out.stdout)["source"] == str(path)


def test_an_undecodable_file_name_is_printed_as_its_bytes(tmp_path, cli_env):
    path = _blank_png(tmp_path / os.fsdecode(b"bad\xff.png"))
    # A strict UTF-8 stdout (as under a UTF-8 locale other than C.UTF-8) cannot write the
    # surrogate Python holds for the byte 0xff.
    env = {**cli_env, "PYTHONIOENCODING": "utf-8:strict"}
    out = run("process", "--no-ocr", str(path), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{tmp_path}/bad\\xff.png"


def test_error_lines_escape_control_characters(tmp_path, cli_env):
    # The usage error quotes the pattern as given.
    out = run("process", "--no-ocr", str(tmp_path / "none\x1b]0;x\x07*.png"), env=cli_env)
    assert out.returncode == 2 and "\x1b" not in out.stderr, out.stderr
    assert "[options.invalid] no input matched" in out.stderr
    assert "none\\x1b]0;x\\x07*.png" in out.stderr


def test_the_summary_escapes_ocr_text(tmp_path):
    from _helpers import HostileEngine, quad

    from rythmiq import ProcessOptions, process
    from rythmiq._cli.summary import summary

    text = "bell\x07 osc\x1b]0;title\x07 csi\x9b31m nul\x00 tab\there \u202eevil"
    engine = HostileEngine(lines=[(text, 0.9, quad(2, 2, 38, 20))])
    result = process(
        _blank_png(tmp_path / "p.png"), options=ProcessOptions(rotate=False), engine=engine
    )
    shown = summary(tmp_path / HOSTILE_NAME, result)
    assert not any(c in shown for c in RAW), shown
    lines = shown.splitlines()
    assert lines[0] == str(tmp_path / SHOWN_NAME)
    assert lines[-1] == (
        "    bell\\x07 osc\\x1b]0;title\\x07 csi\\x9b31m nul\ufffd tab\there \\u202eevil"
    )


# ------------------------------ --max-output-pixels bounds the normalized image (issue 18, 4)


def test_max_output_pixels_bounds_the_normalized_image(tmp_path, cli_env):
    # With a box (the CLI always has one) the bound is checked once, when the options are
    # built: nothing fitted into the box can be larger than it.
    png = tmp_path / "small.png"
    Image.new("L", (40, 40), 255).save(png, dpi=(72, 72))
    out = run("process", "--no-ocr", "--box", "20000x20000", str(png), env=cli_env)
    assert out.returncode == 2, out.stderr
    assert "[options.invalid] box 20000x20000" in out.stderr and "max_output_pixels" in out.stderr
    out = run("process", "--no-ocr", "--max-output-pixels", "1000000", str(png), env=cli_env)
    assert out.returncode == 2 and "box 2480x3508 is 8699840 pixels" in out.stderr, out.stderr
    # A larger bound is a choice. 40 px at 72 dpi resampled to 2400 dpi: 1333 px.
    out = run(
        "process", "--no-ocr", "--json", "--target-dpi", "2400", "--box", "20000x20000",
        "--max-output-pixels", "400000000", str(png), env=cli_env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pages"][0]["image"]["width"] == 1333


# ------------------------------ issue 18: --out and input paths that are not what they seem


@pytest.mark.parametrize("out_url", ["ftp://127.0.0.1:1/x", "zip://x.zip"])
def test_an_out_url_that_cannot_be_opened_is_a_storage_error(out_url, page_file, tmp_path, cli_env):
    # They were internal errors (exit 1): ConnectionRefusedError, IsADirectoryError.
    out = run("process", "--no-ocr", "--out", out_url, str(page_file), env=cli_env, cwd=tmp_path)
    assert out.returncode == 7, out.stderr
    (line,) = out.stderr.splitlines()  # one clear line, no traceback
    assert line.startswith("rythmiq: error [storage.open_failed] cannot open ")
    assert out.stdout == ""
    assert not (Path(cli_env["XDG_CONFIG_HOME"]) / "rythmiq").exists()  # no keyring made


def test_out_does_not_write_through_a_linked_folder(page_file, tmp_path, cli_env):
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    (store / "output").mkdir(parents=True)
    elsewhere.mkdir()
    (store / "output" / "u2").symlink_to(elsewhere)
    args = ("process", "--no-ocr", "--out", str(store), "--user-id", "u2", str(page_file))
    out = run(*args, env=cli_env)
    assert out.returncode == 7, out.stderr
    assert "[storage.outside_root]" in out.stderr.splitlines()[-1]
    assert list(elsewhere.iterdir()) == []
    assert [p for p in store.rglob("*") if p.is_file()] == []  # the master rolled back


@pytest.mark.parametrize("with_out", [False, True])
def test_a_fifo_input_is_refused_without_blocking(with_out, tmp_path, cli_env):
    # Its name is no valid document id, so --out hashes its content to make one: that read
    # blocked as well as the processing's.
    fifo = tmp_path / "my scan.png"
    os.mkfifo(fifo)
    store = ("--out", str(tmp_path / "store")) if with_out else ()
    out = run("process", "--no-ocr", *store, str(fifo), env=cli_env, timeout=60)
    assert out.returncode == 5, out.stderr
    assert "[input.not_regular]" in out.stderr and "FIFO" in out.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_input_linked_to_a_device_is_not_read(tmp_path, cli_env):
    (tmp_path / "a zero.png").symlink_to("/dev/zero")
    out = run(
        "process",
        "--no-ocr",
        "--out",
        str(tmp_path / "store"),
        str(tmp_path / "a zero.png"),
        env=cli_env,
        timeout=60,
    )
    assert out.returncode == 5, out.stderr
    assert "[input.not_regular]" in out.stderr and "character device" in out.stderr
