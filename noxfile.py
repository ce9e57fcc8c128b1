"""nox sessions: tests, fuzz, lint, typecheck, bench, docs.  Run `nox -l` to list them."""

from __future__ import annotations

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
    """ruff lint and format check."""
    session.install("ruff>=0.5")
    paths = ("rythmiq", "tests", "benchmarks", "examples", "docs", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


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
