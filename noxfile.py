"""nox sessions: tests, fuzz, lint, typecheck, bench, docs, pictures, dist, image (`nox -l`)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, real PaddleOCR included (pass `-- -m "not integration"` to skip)."""
    session.install("-e", ".[dev,paddle]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """The fuzz tests, long: 5000 cases per property or seed (`-- N` for another count).

    Covers image bytes and payloads (hypothesis) and mutated PDFs and multi-page TIFFs
    (load_document, in a memory-limited child process).

    Prints the outcome table (cases by result or error code) and writes it as JSON to
    .nox/fuzz*/tmp/fuzz-report.json.
    """
    session.install("-e", ".[dev]")
    examples = session.posargs[0] if session.posargs else "5000"
    report = f"{session.create_tmp()}/fuzz-report.json"
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_fuzz.py",
        "tests/test_fuzz_documents.py",
        "-q",
        "-s",
        "-p",
        "no:cacheprovider",
        env={"RYTHMIQ_FUZZ_EXAMPLES": examples, "RYTHMIQ_FUZZ_REPORT": report},
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check, and the import layers ([tool.importlinter])."""
    session.install("ruff>=0.5", "import-linter>=2.1")
    paths = ("rythmiq", "tests", "benchmarks", "examples", "docs", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    # lint-imports reads the source tree, not an installed copy: it finds rythmiq/ here.
    session.run("lint-imports", env={"PYTHONPATH": "."})


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The core benchmark at one thread (uses ../shared/data/dev when present)."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/bench_core.py", "--threads", "1", *session.posargs)


@nox.session(name="bench-batch")
def bench_batch(session: nox.Session) -> None:
    """Batch throughput at 1 and 2 workers, Dask overhead and a 300-document RSS soak."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/bench_batch.py", "--soak", "300", *session.posargs)


@nox.session(name="bench-engines", python=PYTHON)
def bench_engines(session: nox.Session) -> None:
    """Both OCR engines on the dev pages, one thread: word-F1, CER, s/page, init, peak RSS.

    Writes benchmarks/engines/results.json and accuracy_vs_time.png (`-- --out DIR` elsewhere).
    """
    session.install("-e", ".[dev,paddle]", "matplotlib>=3.8")
    session.run("python", "benchmarks/bench_engines.py", "--threads", "1", *session.posargs)


@nox.session(name="bench-default-engine", python=PYTHON)
def bench_default_engine(session: nox.Session) -> None:
    """The default engine against raw RapidOCR, page by page in turn, and its start-up.

    `-- --variants raw-ort default ort paddle paddle-v6 v-det736` picks the variants.
    """
    session.install("-e", ".[dev,paddle]")
    session.run("python", "benchmarks/bench_default_engine.py", *session.posargs)


@nox.session(name="bench-coldstart", python=PYTHON)
def bench_coldstart(session: nox.Session) -> None:
    """A Camber base-engine job four ways: pip install (index, wheelhouse), bundle cold, warm.

    `-- --sizes 1 10 --paths c d --cold-runs 3` for a shorter run.
    """
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/bench_coldstart.py", *session.posargs)


@nox.session(name="bench-engine-settings", python=PYTHON)
def bench_engine_settings(session: nox.Session) -> None:
    """The engine-settings study (variants side by side; `-- onnx-first onnx` by default)."""
    session.install("-e", ".[dev,paddle]")
    args = session.posargs or ["onnx-first", "onnx"]
    session.run("python", "benchmarks/bench_engine_settings.py", "--threads", "1", *args)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the mkdocs site into site/ (strict: any warning fails the build)."""
    session.install("-e", ".[docs]")
    # NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner, which is not a build
    # warning; real warnings still fail the strict build.
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(python=PYTHON)
def pictures(session: nox.Session) -> None:
    """Draw the docs' pictures into docs/img, from rendered pages (docs/make_pictures.py).

    The pages are drawn with Pillow and read by the real default engine; `-- --out DIR`
    writes elsewhere.
    """
    session.install("-e", ".")
    session.run("python", "docs/make_pictures.py", *session.posargs)


# --------------------------------------------------------------------------- dist
# `nox -s dist` builds the sdist and wheel as a release would and checks them (docs/releasing.md).

# Files the tests cannot do without: without them most test modules do not even collect.
SDIST_NEEDS = (
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "pyproject.toml",
    "tests/conftest.py",
    "tests/_helpers.py",
    "tests/batch_engines.py",
    "tests/faults.py",
    "tests/cli/conftest.py",
    "tests/io/conftest.py",
    "tests/ocr/conftest.py",
    "tests/regressions/expected.json",
    "examples/data/sample.jpg",
)
# The tests run from the unpacked sdist after collecting all of them: the ones that read what
# the sdist itself must carry (pyproject.toml, LICENSE, the regression files, examples/, the
# support modules), in about half a minute; the whole suite from the sdist would double CI.
DIST_TESTS = (
    "tests/test_packaging.py",
    "tests/test_import.py",
    "tests/test_architecture.py",
    "tests/io/test_io_tiff.py",
    "tests/cli/test_cli_app.py",
)


@nox.session(python=False)
def dist(session: nox.Session) -> None:
    """Build the sdist and the wheel (isolated, as a release does) and check both.

    `twine check --strict` on both and `check-wheel-contents` on the wheel; the sdist must
    hold SDIST_NEEDS; from the unpacked sdist (its own rythmiq first on PYTHONPATH) pytest
    collects every test with no error and runs DIST_TESTS. `-- PYTEST_ARGS` runs those tests
    instead (`-- -m "not integration"` for the whole fast suite). Uses the Python running nox,
    which needs the dev extra (build, twine, check-wheel-contents, pytest).
    """
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="rythmiq-dist-"))
    # The sdist build writes rythmiq.egg-info into the tree; a stale one could shadow the
    # installed metadata, so one this build made goes again.
    egg_info = Path("rythmiq.egg-info")
    had_egg_info = egg_info.exists()
    try:
        session.run(python, "-m", "build", "--outdir", str(work / "dist"), ".")
        sdists = sorted((work / "dist").glob("rythmiq-*.tar.gz"))
        wheels = sorted((work / "dist").glob("rythmiq-*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            session.error(f"dist: want one sdist and one wheel, got {sdists + wheels}")
        session.run(python, "-m", "twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
        # Its settings ([tool.check-wheel-contents] in pyproject.toml) are read from the cwd.
        session.run(python, "-m", "check_wheel_contents", str(wheels[0]))
        with tarfile.open(sdists[0]) as tf:
            tf.extractall(work / "sdist", filter="data")
        (unpacked,) = (work / "sdist").iterdir()
        missing = [name for name in SDIST_NEEDS if not (unpacked / name).is_file()]
        if missing:
            session.error(f"dist: the sdist lacks {', '.join(missing)}")
        env = {"PYTHONPATH": str(unpacked)}
        pytest = [python, "-m", "pytest", "-p", "no:cacheprovider"]
        with session.chdir(unpacked):
            where = "import rythmiq; print(rythmiq.__file__)"
            found = str(session.run(python, "-c", where, env=env, silent=True)).strip()
            if not found.startswith(str(unpacked)):
                session.error(f"dist: the sdist's tests would import {found}, not the sdist's")
            collected = session.run(*pytest, "--collect-only", "-q", env=env, silent=True)
            session.log(f"dist: from the sdist, {str(collected).strip().splitlines()[-1]}")
            session.run(*pytest, "-q", *(session.posargs or DIST_TESTS), env=env)
        session.log(f"dist: {sdists[0].name} and {wheels[0].name} pass")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not had_egg_info:
            shutil.rmtree(egg_info, ignore_errors=True)


# --------------------------------------------------------------------------- image
# `nox -s image` builds the Dockerfile and smoke-tests the image offline: with podman
# (Debian's, as in CI) or docker where a daemon answers, and skips where there is neither.

IMAGE_TAG = "rythmiq-worker:test"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
# Where no registry answers, BASE_IMAGE is stood in for by Debian bookworm's own Python 3.11:
# a root file system made with mmdebstrap from Debian's archive, imported as STAND_IN_ROOT,
# plus `python` on PATH and pip allowed to install into the system Python.
STAND_IN_ROOT = "localhost/rythmiq-bookworm-root:latest"
STAND_IN_CONTAINERFILE = """\
FROM {root}
# A stand-in for python:3.11-slim-bookworm, made by rythmiq's `nox -s image` where no
# registry answers: Debian's Python 3.11 with `python` on PATH and pip allowed to install.
LABEL org.rythmiq.stand-in="python:3.11-slim-bookworm"
RUN ln -sf /usr/bin/python3 /usr/local/bin/python
ENV PIP_BREAK_SYSTEM_PACKAGES=1
"""
MMDEBSTRAP = ["--variant=minbase", "--include=python3,python3-pip,python3-venv,ca-certificates"]
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# Run in the image by the "pdf" check: DejaVu Sans is found, Greek and Cyrillic survive a PDF
# made by rythmiq.export, and (given its paths) the job's PDF holds the words of its text.txt.
PDF_CHECK = """\
import io, json, sys
import pypdfium2 as pdfium
from PIL import Image
from rythmiq._system import font_path
from rythmiq.export import to_searchable_pdf
from rythmiq.ocr import OcrLine, OcrResult

def text_of(data):
    doc = pdfium.PdfDocument(data)
    try:
        return " ".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()

font = font_path()
assert font, "no DejaVu Sans in the image: PDF text outside Latin-1 is written as '?'"
buf = io.BytesIO()
Image.new("RGB", (800, 200), "white").save(buf, "JPEG")
words = "Überweisung Ωμέγα Привет"
box = ((20.0, 40.0), (780.0, 40.0), (780.0, 120.0), (20.0, 120.0))
pdf = to_searchable_pdf([(buf.getvalue(), OcrResult((OcrLine(words, 0.9, box),), 800, 200), 200.0)])
got = " ".join(text_of(pdf).split())
assert got == words, f"PDF text {got!r}, wanted {words!r}"
out = {"font": font, "text": got}
if len(sys.argv) == 3:
    with open(sys.argv[1], "rb") as fh:
        pdf_words = set(text_of(fh.read()).split())
    with open(sys.argv[2], encoding="utf-8") as fh:
        txt_words = fh.read().split()
    assert txt_words, "the job's text.txt is empty"
    missing = [w for w in txt_words if w not in pdf_words]
    assert len(missing) <= len(txt_words) // 10, f"words of text.txt not in the PDF: {missing}"
    out["job_words"] = f"{len(txt_words) - len(missing)}/{len(txt_words)}"
print(json.dumps(out, ensure_ascii=False))
"""


@nox.session(python=False)
def image(session: nox.Session) -> None:
    """Build the worker image (rythmiq-worker:test) and smoke-test it with --network=none.

    Uses docker where a daemon answers `docker info`, else podman (with a containers.conf for
    runc unless CONTAINERS_CONF is set); skips without either. The python:3.11-slim-bookworm
    base is used if present or pullable, else stood in for by Debian's Python 3.11 (mmdebstrap,
    cached in .nox/.cache/image). `-- --build-arg EXTRAS=paddle --build-arg ENGINE=paddle`
    passes build arguments on. Checks: `models list` (both models baked), one OCR job into a
    mounted local store (txt and pdf), a bad payload (exit 4) and the PDF's Unicode font.
    """
    work = Path(tempfile.mkdtemp(prefix="rythmiq-image-"))
    try:
        _image(session, work)
    finally:
        # What the container's user wrote may not be removable by a rootless host user.
        shutil.rmtree(work, ignore_errors=True)
        if work.exists():
            session.warn(f"image: could not remove all of {work}")


def _image(session: nox.Session, work: Path) -> None:
    tool, env = _container_tool(session, work)
    podman = Path(tool).name.startswith("podman")
    summary = [f"engine  {tool}", "base    " + _base_image(session, tool, env, work, podman)]

    log_path = Path(session.create_tmp()).parent / "build.log"
    cmd = [tool, "build", "-t", IMAGE_TAG, "-f", "Dockerfile"]
    if podman:
        cmd += ["--pull=never", "--network=host"]
        if os.path.isfile(HOST_CA_BUNDLE):  # pip in the build trusts what the host trusts
            cmd += ["-v", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
    cmd += [*session.posargs, "."]
    session.log(f"image: {' '.join(cmd)} (log: {log_path})")
    old_id = _image_field(tool, "{{.Id}}", IMAGE_TAG, env)
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    build_s = time.perf_counter() - t0
    if rc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        session.error(f"image: build failed (exit {rc.returncode}, {build_s:.0f} s):\n{tail}")
    # The previous build of IMAGE_TAG, now untagged, would pile up run after run.
    if old_id and old_id != _image_field(tool, "{{.Id}}", IMAGE_TAG, env):
        _run(tool, "rmi", old_id, env=env)
    size = _image_field(tool, "{{.Size}}", IMAGE_TAG, env)
    size_mb = f"{int(size) / 1e6:.0f} MB" if size.isdigit() else "size ?"
    summary.append(f"build   {build_s:.1f} s, {IMAGE_TAG} {size_mb}")

    results = _smoke_checks(session, tool, env, work, _build_args(session.posargs))
    summary += [f"{name:<7} {'ok' if ok else 'FAILED'}: {detail}" for name, ok, detail in results]
    session.log("image: summary\n  " + "\n  ".join(summary))
    failed = [name for name, ok, _ in results if not ok]
    if failed:
        session.error(f"image: failed checks: {', '.join(failed)}")


def _container_tool(session: nox.Session, work: Path) -> tuple[str, dict[str, str]]:
    """docker if its daemon answers, else podman with a working containers.conf; or skip."""
    env = dict(os.environ)
    docker = shutil.which("docker")
    if docker:
        version = _run(docker, "--version", env=env, timeout=30).stdout.lower()
        if "podman" not in version and _run(docker, "info", env=env, timeout=60).returncode == 0:
            return docker, env
    podman = shutil.which("podman")
    if podman is None:
        session.skip("image: skipped, no podman and no docker daemon answering `docker info`")
    if "CONTAINERS_CONF" not in env:
        # crun fails on this kind of machine (setrlimit, cgroups); runc with these limits works.
        conf = ["[containers]", 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]']
        if shutil.which("runc", path=os.pathsep.join([env.get("PATH", ""), "/usr/sbin", "/sbin"])):
            conf += ["[engine]", 'runtime = "runc"']
        (work / "containers.conf").write_text("\n".join(conf) + "\n")
        env["CONTAINERS_CONF"] = str(work / "containers.conf")
        session.log(f"image: CONTAINERS_CONF={work / 'containers.conf'} ({'; '.join(conf[1:])})")
    return podman, env


def _base_image(
    session: nox.Session, tool: str, env: dict[str, str], work: Path, podman: bool
) -> str:
    """Make BASE_IMAGE available locally (present, pulled or a stand-in); says how."""
    if _run(tool, "image", "inspect", BASE_IMAGE, env=env).returncode == 0:
        label = '{{index .Config.Labels "org.rythmiq.stand-in"}}'
        stand_in = _image_field(tool, label, BASE_IMAGE, env)
        return BASE_IMAGE + (" (stand-in) present" if stand_in else " present")
    t0 = time.perf_counter()
    pull = _run(tool, "pull", BASE_IMAGE, env=env)
    if pull.returncode == 0:
        return f"{BASE_IMAGE} pulled in {time.perf_counter() - t0:.1f} s"
    why = (pull.stderr.strip().splitlines() or ["?"])[-1]
    session.log(f"image: cannot pull {BASE_IMAGE} ({why}); making a stand-in from Debian's archive")
    steps = []
    if _run(tool, "image", "inspect", STAND_IN_ROOT, env=env).returncode == 0:
        steps.append(f"{STAND_IN_ROOT} present")
    else:
        tar = session.cache_dir / "image" / "bookworm-python3.tar"
        if tar.is_file():
            steps.append(f"cached {tar}")
        else:
            mmdebstrap = shutil.which("mmdebstrap")
            if mmdebstrap is None:
                session.error(f"image: cannot pull {BASE_IMAGE} and no mmdebstrap for a stand-in")
            tar.parent.mkdir(parents=True, exist_ok=True)
            part = tar.with_name("partial-" + tar.name)
            cmd = [mmdebstrap, *MMDEBSTRAP, "--format=tar", "bookworm", str(part)]
            session.log(f"image: {' '.join(cmd)}")
            t0 = time.perf_counter()
            made = _run(*cmd, env=env, timeout=1200)
            if made.returncode != 0:
                part.unlink(missing_ok=True)
                session.error(f"image: mmdebstrap failed (exit {made.returncode}):\n{made.stderr}")
            part.replace(tar)
            steps.append(f"mmdebstrap {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        imported = _run(tool, "import", str(tar), STAND_IN_ROOT, env=env)
        if imported.returncode != 0:
            session.error(f"image: {tool} import {tar} failed:\n{imported.stderr}")
        steps.append(f"import {time.perf_counter() - t0:.1f} s")
    context = work / "stand-in"
    context.mkdir()
    (context / "Containerfile").write_text(STAND_IN_CONTAINERFILE.format(root=STAND_IN_ROOT))
    cmd = [tool, "build", "-t", BASE_IMAGE, *(["--pull=never"] if podman else []), str(context)]
    t0 = time.perf_counter()
    built = _run(*cmd, env=env)
    if built.returncode != 0:
        session.error(f"image: the stand-in base did not build:\n{built.stdout}{built.stderr}")
    steps.append(f"Containerfile {time.perf_counter() - t0:.1f} s")
    return f"{BASE_IMAGE} stand-in made ({', '.join(steps)})"


def _smoke_checks(
    session: nox.Session, tool: str, env: dict[str, str], work: Path, args: dict[str, str]
) -> list[tuple[str, bool, str]]:
    """(name, passed, detail) per check, each in a fresh container with no network."""
    run = [tool, "run", "--rm", "--network=none"]
    engine = args.get("ENGINE") or "onnx"
    model_flags = ["--engine", engine]
    options: dict[str, object] = {"outputs": ["txt", "pdf"]}
    if engine != "onnx":
        options["engine"] = engine
    for arg, flag in (("DET_MODEL", "--det-model"), ("REC_MODEL", "--rec-model")):
        if args.get(arg):
            model_flags += [flag, args[arg]]
            options[arg.lower()] = args[arg]
    results: list[tuple[str, bool, str]] = []

    def check(
        name: str,
        cmd: list[str],
        want: int,
        verify: Callable[[str], str],
        stdin: bytes = b"",
        extra_env: dict[str, str] | None = None,
    ) -> str:
        shown = shlex.join("<script>" if "\n" in arg else arg for arg in cmd)
        session.log(f"image: check {name}: {shown}")
        t0 = time.perf_counter()
        proc = _run(*cmd, env={**env, **(extra_env or {})}, stdin=stdin)
        detail = f"exit {proc.returncode} (want {want}), {time.perf_counter() - t0:.1f} s"
        try:
            assert proc.returncode == want, f"exit {proc.returncode}"
            detail += f", {verify(proc.stdout)}"
            results.append((name, True, detail))
            return proc.stdout
        except Exception as exc:  # a failed expectation fails this check, not the session
            results.append((name, False, f"{detail}, {type(exc).__name__}: {exc}"))
            session.warn(f"image: {name} failed; stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
            return ""

    def models(out: str) -> str:
        listed = json.loads(out)
        sources = {role: listed[role]["source"] for role in ("det", "rec")}
        assert sources == {"det": "env", "rec": "env"}, sources
        return f"{listed['det']['name']} + {listed['rec']['name']}, both from env"

    cmd = [*run, "--entrypoint", "rythmiq", IMAGE_TAG, "models", "list", "--json", *model_flags]
    check("models", cmd, 0, models)

    # One OCR job into a local store mounted at /store, with a keyring made in the image.
    store = work / "store"
    (store / "input").mkdir(parents=True)
    shutil.copyfile("examples/data/sample.jpg", store / "input" / "sample.jpg")
    for path in (store, store / "input"):
        path.chmod(0o777)  # the image's user (uid 10001) writes the outputs
    keygen = "rythmiq keygen --file /tmp/k.json >/dev/null && base64 -w0 /tmp/k.json"
    keyring = check("keygen", [*run, "--entrypoint", "sh", IMAGE_TAG, "-c", keygen], 0, _nonempty)
    document = {"document_id": "sample", "input": "input/sample.jpg"}
    payload = {"version": 1, "job_id": "smoke", "user_id": "ci", "documents": [document]}
    payload |= {"options": options, "output": "/store"}
    marker = store / "output" / "ci" / "smoke" / "result.json"
    artifacts: dict[str, str] = {}

    def job(out: str) -> str:
        result = json.loads(out)
        assert result["status"] == "ok", result.get("error") or result
        assert json.loads(marker.read_text())["status"] == "ok", f"{marker} is not ok"
        (doc,) = result["documents"]
        artifacts.update((a["kind"], a["key"]) for a in doc["artifacts"])
        assert all((store / artifacts[k]).is_file() for k in ("text", "pdf")), artifacts
        lines = sum(page["ocr"]["lines"] for page in doc["pages"])
        where = marker.relative_to(store)
        return f"status ok, {lines} lines, {len(artifacts)} artifacts and {where} stored"

    cmd = [*run, "-i", "-v", f"{store}:/store:z", "-e", "RYTHMIQ_KEYRING", IMAGE_TAG]
    check("job", cmd, 0, job, json.dumps(payload).encode(), {"RYTHMIQ_KEYRING": keyring.strip()})

    def bad(out: str) -> str:
        error = json.loads(out)["error"]
        assert error["code"].startswith("payload.") and error["exit_code"] == 4, error
        return f"error {error['code']}"

    check("bad", [*run, "-i", IMAGE_TAG], 4, bad, b'{"version": 99}')

    # The font, Greek and Cyrillic through rythmiq.export, and the job's own PDF's text layer.
    cmd = [*run, "-v", f"{store}:/store:ro,z", "--entrypoint", "python", IMAGE_TAG]
    cmd += ["-c", PDF_CHECK]
    if {"text", "pdf"} <= artifacts.keys():
        cmd += [f"/store/{artifacts['pdf']}", f"/store/{artifacts['text']}"]
    check("pdf", cmd, 0, lambda out: out.strip())
    return results


def _nonempty(out: str) -> str:
    assert out.strip(), "no output"
    return f"{len(out.strip())} characters"


def _image_field(tool: str, template: str, name: str, env: dict[str, str]) -> str:
    """`image inspect --format template` of name, stripped; empty where there is no such image."""
    found = _run(tool, "image", "inspect", "--format", template, name, env=env)
    return found.stdout.strip() if found.returncode == 0 else ""


def _build_args(posargs: list[str]) -> dict[str, str]:
    """The NAME=VALUE of each `--build-arg` in posargs."""
    values = []
    for i, arg in enumerate(posargs):
        if arg == "--build-arg" and i + 1 < len(posargs):
            values.append(posargs[i + 1])
        elif arg.startswith("--build-arg="):
            values.append(arg.split("=", 1)[1])
    return dict(value.split("=", 1) for value in values if "=" in value)


def _run(
    *cmd: str, env: dict[str, str], timeout: float = 600, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """Run cmd, output captured as text; a timeout or missing program is exit 124 or 127."""
    try:
        proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode(errors="replace") + f"\ntimed out after {timeout:.0f} s"
        return subprocess.CompletedProcess(cmd, 124, "", err)
    except OSError as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))
    out, err = (proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
