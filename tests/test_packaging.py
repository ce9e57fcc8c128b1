"""The distributions: pyproject.toml's metadata, and what the sdist and the wheel hold.

The sdist must hold everything its tests need, so that pytest runs from the unpacked sdist
(`nox -s dist` and .ci/run check that too); the wheel must hold the package and its licence
and nothing else. The build tests make both from a copy of the source tree with
``python -m build --no-isolation`` (the sdist, then the wheel from the unpacked sdist), so
the tree itself gets no build output. They skip without ``build`` or with a setuptools
older than 77; the dev extra has both.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import rythmiq

ROOT = Path(__file__).resolve().parents[1]
# SHA-256 of the Apache License 2.0 as apache.org serves it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
# Folders the sdist carries whole (MANIFEST.in grafts them), less what running writes there.
GRAFTED = ("rythmiq", "tests", "examples", "docs")
NOT_SHIPPED = ("examples/store/output/", "examples/store/master/")
# Files the sdist has at its top, beside the grafted folders.
TOP_FILES = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in", "PKG-INFO"}
# Never copied into the build: a checkout's own caches, environments and outputs.
UNCOPIED = {".git", ".venv", ".nox", "__pycache__", ".mypy_cache", ".ruff_cache"}
UNCOPIED |= {".pytest_cache", ".hypothesis", "build", "dist", "site"}


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def test_the_licence_is_an_spdx_expression_with_the_apache_text():
    project = _project()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    # PEP 639: a licence expression and a licence classifier may not stand together.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256


def test_python_classifiers_are_the_versions_requires_python_admits():
    specifiers = pytest.importorskip("packaging.specifiers")
    config = _project()
    project = config["project"]
    admits = specifiers.SpecifierSet(project["requires-python"])
    minors = sorted(
        int(c.rsplit(".", 1)[1])
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert minors and minors == list(range(minors[0], minors[-1] + 1))  # no gap
    # The oldest is the lowest requires-python admits; a cap sits just past the newest.
    assert f"3.{minors[0]}" in admits and f"3.{minors[0] - 1}" not in admits
    assert all(f"3.{m}" in admits for m in minors)
    if any(s.operator in ("<", "<=") for s in admits):
        assert f"3.{minors[-1] + 1}" not in admits
    # The linters check the code against the oldest of them.
    assert config["tool"]["ruff"]["target-version"] == f"py3{minors[0]}"
    assert config["tool"]["mypy"]["python_version"] == f"3.{minors[0]}"


def test_classifiers_are_on_pypis_list():
    trove = pytest.importorskip("trove_classifiers")
    classifiers = set(_project()["project"]["classifiers"])
    assert classifiers - trove.classifiers == set()  # PyPI refuses an upload with these
    assert classifiers & set(trove.deprecated_classifiers) == set()


# --------------------------------------------------------------------- the built files


def _uncopied(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == ROOT
    return {
        n
        for n in names
        if (n in UNCOPIED and (top or n not in {"build", "dist", "site"}))
        or n.endswith((".egg-info", ".pyc"))
    }


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> tuple[Path, Path]:
    """(sdist, wheel) built from a copy of the source tree, without build isolation."""
    pytest.importorskip("build")
    setuptools = importlib.metadata.version("setuptools")
    if int(setuptools.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools} cannot build PEP 639 metadata (needs >= 77)")
    work = tmp_path_factory.mktemp("dists")
    shutil.copytree(ROOT, work / "src", ignore=_uncopied)
    cmd = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "out")]
    built = subprocess.run(
        [*cmd, str(work / "src")], capture_output=True, text=True, timeout=600, check=False
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,) = (work / "out").glob("rythmiq-*.tar.gz")
    (wheel,) = (work / "out").glob("rythmiq-*.whl")
    return sdist, wheel


def _source_files(folder: str) -> set[str]:
    """The files under ROOT/folder a release ships, as paths relative to ROOT."""
    found = set()
    for path in (ROOT / folder).rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if "__pycache__" in path.parts or path.suffix == ".pyc" or not path.is_file():
            continue
        if not rel.startswith(NOT_SHIPPED):
            found.add(rel)
    return found


def _sdist_files(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tf:
        top = {m.name.split("/", 1)[0] for m in tf.getmembers()}
        assert top == {sdist.name.removesuffix(".tar.gz")}, top
        return {m.name.split("/", 1)[1] for m in tf.getmembers() if m.isfile()}


def test_the_sdist_holds_the_tests_their_support_files_and_the_licence(dists):
    sdist, _ = dists
    names = _sdist_files(sdist)
    assert names >= TOP_FILES
    # Without these the test modules do not even collect (issue 19: 22 of 33 did not).
    support = {"tests/conftest.py", "tests/_helpers.py", "tests/batch_engines.py"}
    support |= {"tests/faults.py", "tests/io/conftest.py", "tests/ocr/conftest.py"}
    support |= {"tests/cli/conftest.py", "examples/data/sample.jpg"}
    assert support <= names
    for folder in GRAFTED:
        missing = _source_files(folder) - names
        assert not missing, f"{folder}/ files missing from the sdist: {sorted(missing)[:10]}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(NOT_SHIPPED)]
    with tarfile.open(sdist) as tf:
        member = tf.extractfile(f"{sdist.name.removesuffix('.tar.gz')}/LICENSE")
        assert member is not None
        assert hashlib.sha256(member.read()).hexdigest() == APACHE_2_SHA256


def test_the_wheel_holds_the_package_and_its_licence_only(dists):
    sdist, wheel = dists
    info = f"rythmiq-{rythmiq.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        licence = zf.read(f"{info}/licenses/LICENSE")
        meta = email.parser.HeaderParser().parsestr(zf.read(f"{info}/METADATA").decode())
    assert hashlib.sha256(licence).hexdigest() == APACHE_2_SHA256
    assert {n.split("/", 1)[0] for n in names} == {"rythmiq", info}  # no tests/, examples/
    # Every file of the package the sdist has (code, stubs, py.typed, schemas) is installed.
    package = {n for n in _sdist_files(sdist) if n.startswith("rythmiq/")}
    assert {n for n in names if n.startswith("rythmiq/")} == package
    assert meta["Metadata-Version"] == "2.4" and meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"] and meta["License"] is None
    assert meta["Requires-Python"] is not None
