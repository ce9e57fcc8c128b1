"""Runtime bundles and their launcher (rythmiq/bundle.py, rythmiq/_launcher.py).

The fast tests pack small hand-made bundles with the builder's own packer and run the real
launcher on them in subprocesses. The integration tests build the default engine's real
bundle from the package index and run an OCR job from it in a fresh folder, with a Python
that has no rythmiq installed, a clean HOME and a clean TMPDIR.
"""

from __future__ import annotations

import ast
import base64
import ctypes.util
import email.parser
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from _helpers import render_page
from PIL import Image

from rythmiq import BundleError, OptionsError
from rythmiq._bundle_archive import manifest as manifest_of
from rythmiq._bundle_archive import pack
from rythmiq._system import font_path
from rythmiq.bundle import (
    LAUNCHER_NAME,
    PRUNED,
    _rythmiq_wheel,
    build_bundle,
    launcher_source,
)
from rythmiq.keyring import Keyring

# A stand-in for rythmiq inside a small bundle: reports how it was started.
FAKE_MAIN = b"""import json, os, sys
print(json.dumps({
    "file": __file__,
    "argv": sys.argv[1:],
    "no_user_site": sys.flags.no_user_site,
    "no_site": sys.flags.no_site,
    "site_packages": [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))],
    "pythonpath": os.environ.get("PYTHONPATH"),
    "pdf_font": os.environ.get("RYTHMIQ_PDF_FONT"),
    "cwd": os.getcwd(),
}))
"""
HAS_ZSTD = shutil.which("zstd") is not None
needs_zstd = pytest.mark.skipif(not HAS_ZSTD, reason="the zstd program is not installed")


def _target(**over):
    t = {
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "machine": os.uname().machine,
        "glibc": "2.17",
        "platform": "manylinux_2_17_x86_64",
    }
    t.update(over)
    return t


def make_tree(root: Path) -> Path:
    pkg = root / "site-packages" / "rythmiq"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_bytes(b"")
    (pkg / "__main__.py").write_bytes(FAKE_MAIN)
    (pkg / "data.bin").write_bytes(bytes(range(256)) * 64)
    (root / "fonts").mkdir()
    (root / "fonts" / "DejaVuSans.ttf").write_bytes(b"not really a font")
    return root


def make_bundle(
    tmp: Path,
    *,
    compression: str = "zstd" if HAS_ZSTD else "gzip",
    target: dict | None = None,
    after_manifest=None,
    name: str = "b",
) -> Path:
    """A small bundle: manifest from the tree, then ``after_manifest(root)`` may change the
    tree before packing (so that the archive and its manifest disagree)."""
    root = make_tree(tmp / f"{name}-root")
    manifest = manifest_of(
        root,
        engines=["onnx"],
        extras=[],
        python="3.11",
        platform="manylinux_2_17_x86_64",
        machine="x86_64",
        glibc="2.17",
        installer="test",
        bytecode=False,
        prune=False,
    )
    manifest["rythmiq"] = "0.0.test"
    manifest["target"].update(target or _target())
    if after_manifest is not None:
        after_manifest(root)
    suffix = ".tar.zst" if compression == "zstd" else ".tar.gz"
    out = tmp / f"{name}{suffix}"
    pack(root, (json.dumps(manifest) + "\n").encode(), out, compression)
    return out


def launch(bundle: Path, *args: str, cwd: Path, tmpdir: Path, python: str = sys.executable):
    launcher = cwd / LAUNCHER_NAME
    if not launcher.exists():
        launcher.write_text(launcher_source())
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmpdir / "home"),
        "TMPDIR": str(tmpdir),
    }
    tmpdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [python, "-s", LAUNCHER_NAME, str(bundle), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def launch_flags(bundle, flags, rest, *, cwd, tmpdir):
    launcher = cwd / LAUNCHER_NAME
    if not launcher.exists():
        launcher.write_text(launcher_source())
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmpdir), "TMPDIR": str(tmpdir)}
    tmpdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-s", LAUNCHER_NAME, *flags, str(bundle), *rest],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def bundle_error(proc) -> dict:
    assert proc.returncode == 9, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    doc = json.loads(lines[0])
    assert doc["status"] == "error" and doc["error"]["exit_code"] == 9
    assert doc["error"]["code"] in proc.stderr
    return doc["error"]


def no_partial_unpacks(tmpdir: Path) -> None:
    root = tmpdir / "rythmiq-bundles"
    left = [p.name for p in root.iterdir()] if root.exists() else []
    assert not [n for n in left if ".tmp-" in n], left


# ------------------------------------------------------------------- the launcher


def test_launcher_keeps_to_python_36_syntax():
    # It must run far enough on an old python3 to say that the bundle wants another one.
    ast.parse(launcher_source(), feature_version=(3, 6))


def test_small_bundle_runs_from_tmpdir_and_is_reused(tmp_path):
    bundle = make_bundle(tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    shutil.copy(bundle, job)
    tmpdir = tmp_path / "node-tmp"
    before = sorted(p.name for p in job.iterdir())
    first = launch(job / bundle.name, "worker", "--payload", "p.json", cwd=job, tmpdir=tmpdir)
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    unpacked = Path(info["file"]).resolve()
    assert unpacked.is_relative_to((tmpdir / "rythmiq-bundles").resolve())
    assert info["argv"] == ["worker", "--payload", "p.json"]
    assert info["no_user_site"] == 1 and info["no_site"] == 1
    # Only the bundle's own site-packages is on the path: not the user's, not the system's.
    assert info["site_packages"] == [str(unpacked.parents[1])]
    assert info["pythonpath"] == str(unpacked.parents[1])
    assert info["cwd"] == str(job)
    assert info["pdf_font"] == str(unpacked.parents[2] / "fonts" / "DejaVuSans.ttf")
    assert "unpacked" in first.stderr
    # Nothing was written next to the bundle (on Camber: the stash folder).
    assert sorted(p.name for p in job.iterdir()) == [*before, LAUNCHER_NAME]
    second = launch(job / bundle.name, "worker", cwd=job, tmpdir=tmpdir)
    assert second.returncode == 0 and "reused" in second.stderr
    assert json.loads(second.stdout)["file"] == info["file"]
    # A file removed since (a /tmp cleaner) makes the next job unpack again.
    (unpacked.parent / "data.bin").unlink()
    third = launch(job / bundle.name, "worker", cwd=job, tmpdir=tmpdir)
    assert third.returncode == 0 and "unpacked" in third.stderr
    assert (unpacked.parent / "data.bin").read_bytes() == bytes(range(256)) * 64
    no_partial_unpacks(tmpdir)


def test_gzip_bundle_runs(tmp_path):
    bundle = make_bundle(tmp_path, compression="gzip")
    proc = launch(bundle, "x", cwd=tmp_path, tmpdir=tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["argv"] == ["x"]


@needs_zstd
@pytest.mark.skipif(ctypes.util.find_library("zstd") is None, reason="no libzstd")
def test_zstd_bundle_through_libzstd_without_the_zstd_program(tmp_path):
    bundle = make_bundle(tmp_path)
    ok = launch_flags(
        bundle, ["--decompressor", "libzstd"], ["y"], cwd=tmp_path, tmpdir=tmp_path / "t"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["argv"] == ["y"]
    # libzstd checks the frame too: a truncated bundle is refused, not half-unpacked.
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size * 2 // 3])
    bad = launch_flags(cut, ["--decompressor", "libzstd"], [], cwd=tmp_path, tmpdir=tmp_path / "t2")
    assert bundle_error(bad)["code"] == "bundle.corrupt"
    no_partial_unpacks(tmp_path / "t2")


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) * 3 // 4] ^= 0xFF
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "flipped-byte"])
def test_damaged_bundle_is_refused(tmp_path, compression, damage):
    if compression == "zstd" and not HAS_ZSTD:
        pytest.skip("the zstd program is not installed")
    bundle = make_bundle(tmp_path, compression=compression)
    damage(bundle)
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=tmp_path / "t"))
    assert err["code"] == "bundle.corrupt"
    no_partial_unpacks(tmp_path / "t")


def _same_size_change(root: Path) -> None:
    p = root / "site-packages" / "rythmiq" / "data.bin"
    p.write_bytes(b"\xff" + p.read_bytes()[1:])


def _extra_file(root: Path) -> None:
    (root / "site-packages" / "extra.py").write_bytes(b"x = 1\n")


def _missing_file(root: Path) -> None:
    (root / "site-packages" / "rythmiq" / "data.bin").unlink()


@pytest.mark.parametrize("verify", [False, True], ids=["default", "verify"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_extra_file, "not in the manifest"),
        (_missing_file, "missing"),
    ],
)
def test_archive_that_disagrees_with_its_manifest_is_refused(tmp_path, change, message, verify):
    bundle = make_bundle(tmp_path, after_manifest=change)
    flags = ["--verify"] if verify else []
    err = bundle_error(launch_flags(bundle, flags, [], cwd=tmp_path, tmpdir=tmp_path / "t"))
    assert err["code"] == "bundle.corrupt" and message in err["message"]
    no_partial_unpacks(tmp_path / "t")


def test_verify_checks_every_files_sha256(tmp_path):
    # A file changed after the manifest was made, keeping its size: the archive's own
    # checksum is right (it was packed so), and only the SHA-256 check can see it.
    changed = make_bundle(tmp_path, after_manifest=_same_size_change, name="same-size")
    plain = launch_flags(changed, [], [], cwd=tmp_path, tmpdir=tmp_path / "t")
    assert plain.returncode == 0, plain.stderr
    for flags, env in ((["--verify"], {}), ([], {"RYTHMIQ_BUNDLE_VERIFY": "1"})):
        tmpdir = tmp_path / f"t-{len(env)}"
        launcher = tmp_path / LAUNCHER_NAME
        proc = subprocess.run(
            [sys.executable, "-s", str(launcher), *flags, str(changed)],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"], "HOME": str(tmpdir), "TMPDIR": str(tmpdir), **env},
            capture_output=True,
            text=True,
        )
        err = bundle_error(proc)
        assert err["code"] == "bundle.corrupt" and "SHA-256" in err["message"]
        no_partial_unpacks(tmpdir)


def _hand_made(tmp_path: Path, members) -> Path:
    """A .tar.gz whose members are ``(TarInfo, bytes)``, manifest first unless left out."""
    out = tmp_path / "hand.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def _manifest_member(files, target=None) -> tuple[tarfile.TarInfo, bytes]:
    doc = {
        "format": "rythmiq-bundle",
        "format_version": 1,
        "rythmiq": "0",
        "target": target or _target(),
        "files": files,
    }
    return tarfile.TarInfo("manifest.json"), json.dumps(doc).encode()


def test_unsafe_members_are_refused_and_nothing_lands_outside(tmp_path):
    evil = tarfile.TarInfo("../../evil.txt")
    bundle = _hand_made(
        tmp_path, [_manifest_member({"../../evil.txt": [1, "0" * 64]}), (evil, b"x")]
    )
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=tmp_path / "t" / "u"))
    assert err["code"] == "bundle.corrupt" and "unsafe path" in err["message"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "t" / "evil.txt").exists()

    link = tarfile.TarInfo("site-packages/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    bundle = _hand_made(tmp_path, [_manifest_member({}), (link, b"")])
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=tmp_path / "t2"))
    assert "link or device" in err["message"]


def test_bundle_must_start_with_its_manifest(tmp_path):
    other = tarfile.TarInfo("site-packages/a.py")
    bundle = _hand_made(tmp_path, [(other, b"a")])
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=tmp_path / "t"))
    assert err["code"] == "bundle.corrupt" and "manifest.json" in err["message"]


@pytest.mark.parametrize("suffix", [".tar.zst", ".tar.gz"])
def test_garbage_and_missing_bundles(tmp_path, suffix):
    if suffix == ".tar.zst" and not HAS_ZSTD:
        pytest.skip("the zstd program is not installed")
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(os.urandom(5000))
    assert bundle_error(launch(junk, cwd=tmp_path, tmpdir=tmp_path / "t"))["code"] == (
        "bundle.corrupt"
    )
    missing = launch(tmp_path / f"nope{suffix}", cwd=tmp_path, tmpdir=tmp_path / "t")
    assert bundle_error(missing)["code"] == "bundle.not_found"
    other = tmp_path / "bundle.zip"
    other.write_bytes(b"PK")
    assert bundle_error(launch(other, cwd=tmp_path, tmpdir=tmp_path / "t"))["code"] == (
        "bundle.not_found"
    )


@pytest.mark.parametrize(
    ("target", "code", "words"),
    [
        ({"python": "3.99"}, "bundle.wrong_python", "built for CPython 3.99"),
        ({"python": "2.7"}, "bundle.wrong_python", "--python"),
        ({"machine": "s390x"}, "bundle.wrong_platform", "s390x"),
        ({"glibc": "9.99"}, "bundle.wrong_platform", "glibc 9.99 or newer"),
    ],
)
def test_bundle_for_another_python_or_machine_is_refused_before_unpacking(
    tmp_path, target, code, words
):
    bundle = make_bundle(tmp_path, target=_target(**target))
    tmpdir = tmp_path / "t"
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=tmpdir))
    assert err["code"] == code and words in err["message"]
    assert not (tmpdir / "rythmiq-bundles").exists() or not any(
        (tmpdir / "rythmiq-bundles").iterdir()
    )


def test_unwritable_cache_is_a_bundle_error(tmp_path):
    bundle = make_bundle(tmp_path)
    blocker = tmp_path / "t"
    blocker.mkdir()
    (blocker / "rythmiq-bundles").write_text("a file where the cache folder goes")
    err = bundle_error(launch(bundle, cwd=tmp_path, tmpdir=blocker))
    assert err["code"] == "bundle.unpack_failed"


def test_launcher_usage(tmp_path):
    (tmp_path / LAUNCHER_NAME).write_text(launcher_source())
    proc = subprocess.run(
        [sys.executable, LAUNCHER_NAME], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "usage:" in proc.stderr
    proc = subprocess.run(
        [sys.executable, LAUNCHER_NAME, "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "BUNDLE" in proc.stdout


# ------------------------------------------------------------------- the builder


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"python": "3"}, BundleError, "bundle.invalid_target"),
        ({"python": "python3.11"}, BundleError, "bundle.invalid_target"),
        ({"platform": "win_amd64"}, BundleError, "bundle.invalid_target"),
        ({"platform": "manylinux2014_x86_64"}, BundleError, "bundle.invalid_target"),
        ({"engines": ("tesseract",)}, OptionsError, "options.invalid"),
        ({"engines": ()}, OptionsError, "options.invalid"),
        ({"compression": "lz4"}, OptionsError, "options.invalid"),
        ({"installer": "conda"}, OptionsError, "options.invalid"),
        ({"extras": ("paddle; rm -rf",)}, OptionsError, "options.invalid"),
        ({"python": "3.7"}, BundleError, "bundle.no_bytecode"),
    ],
)
def test_bad_build_arguments_fail_before_any_work(tmp_path, monkeypatch, kwargs, error, code):
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.7 to compile with
    with pytest.raises(error) as info:
        build_bundle(tmp_path / "out", **kwargs)
    assert info.value.code == code
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_rythmiq_wheel_holds_the_running_package_and_is_reproducible(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = _rythmiq_wheel(tmp_path / "a"), _rythmiq_wheel(tmp_path / "b")
    assert one.read_bytes() == two.read_bytes()
    package = Path(__import__("rythmiq").__file__).parent
    with zipfile.ZipFile(one) as zf:
        names = set(zf.namelist())
        want = {
            p.relative_to(package.parent).as_posix()
            for p in package.rglob("*.py")
            if "__pycache__" not in p.parts
        }
        assert want <= names
        # The stub is the root's list of public names: the package does not import without it.
        assert {"rythmiq/py.typed", "rythmiq/__init__.pyi", "rythmiq/schemas/payload-v1.json"} <= (
            names
        )
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(info).decode()
        assert "Name: rythmiq" in meta
        # Each licence file the metadata names is in the wheel's dist-info (PEP 639).
        licences = email.parser.HeaderParser().parsestr(meta).get_all("License-File") or []
        assert {info.replace("METADATA", f"licenses/{n}") for n in licences} <= names
        record = zf.read(info.replace("METADATA", "RECORD")).decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if digest:
                import hashlib

                data = zf.read(name)
                raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + raw.decode() and int(size) == len(data)


# ------------------------------------------------------------------- the real bundle


@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    built = build_bundle(out, python=f"{sys.version_info[0]}.{sys.version_info[1]}")
    return built


def _base_python() -> str:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base


@pytest.mark.integration
def test_default_bundle_contents(real_bundle, tmp_path):
    b = real_bundle
    assert b.path.name.endswith(("-onnx.tar.zst", "-onnx.tar.gz"))
    assert b.size <= 250 * 2**20, b.size
    m = b.manifest
    assert m["format"] == "rythmiq-bundle" and m["format_version"] == 1
    assert m["rythmiq"] == __import__("rythmiq").__version__
    assert m["target"]["platform"] == "manylinux_2_35_x86_64"
    for dist in ("rythmiq", "rapidocr", "openvino", "numpy", "opencv-python-headless"):
        assert dist in m["distributions"], dist
    assert "paddlepaddle" not in m["distributions"]
    if font_path() is not None and font_path().endswith("DejaVuSans.ttf"):
        assert m["font"] == "fonts/DejaVuSans.ttf" and m["font"] in m["files"]
    assert any(p.endswith("PP-OCRv6_det_small.onnx") for p in m["models"])
    assert any(p.endswith("PP-OCRv6_rec_small.onnx") for p in m["models"])
    files = m["files"]
    assert not [f for f in files if any(f[len("site-packages/") :].startswith(p) for p in PRUNED)]
    # Bytecode for every module, compiled without time stamps (unchecked hash).
    pyc = [f for f in files if f.endswith(".pyc")]
    py = [f for f in files if f.endswith(".py")]
    assert len(pyc) >= 0.95 * len(py)
    sample = next(f for f in pyc if "/rythmiq/__pycache__/" in f)
    with tarfile.open(b.path, "r:*") if b.path.suffix == ".gz" else _zstd_tar(b.path) as tar:
        names = tar.getnames()
        assert names[0] == "manifest.json"
        data = tar.extractfile("manifest.json").read()
        import hashlib

        assert hashlib.sha256(data).hexdigest() == b.manifest_sha256
        flags = int.from_bytes(tar.extractfile(sample).read()[4:8], "little")
        assert flags == 0b01  # hash-based, unchecked
    # The printed commands name the files as uploaded.
    assert f"python3 -s {LAUNCHER_NAME} {b.path.name} worker --payload payload.json" in (
        b.camber_commands()
    )


def _zstd_tar(path: Path):
    proc = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True)
    return tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r:")


@pytest.mark.integration
def test_same_inputs_give_the_same_manifest(real_bundle, tmp_path):
    again = build_bundle(tmp_path / "again", python=f"{sys.version_info[0]}.{sys.version_info[1]}")
    assert again.manifest_sha256 == real_bundle.manifest_sha256
    assert again.files == real_bundle.files


@pytest.mark.integration
def test_ocr_job_from_a_fresh_folder(real_bundle, tmp_path):
    python = _base_python()
    probe = subprocess.run(
        [python, "-s", "-c", "import rythmiq"], capture_output=True, cwd=tmp_path
    )
    assert probe.returncode != 0, f"{python} has rythmiq installed; the test needs one without"
    job = tmp_path / "stash"
    (job / "store" / "input").mkdir(parents=True)
    shutil.copy(real_bundle.path, job)
    shutil.copy(real_bundle.launcher, job)
    buf = io.BytesIO()
    Image.fromarray(render_page(width=850, height=1100, font_size=24, margin=60)).save(buf, "PNG")
    (job / "store" / "input" / "page.png").write_bytes(buf.getvalue())
    store = tmp_path / "store-root"
    shutil.move(job / "store", store)
    payload = {
        "version": 1,
        "job_id": "bundle-job",
        "user_id": "u1",
        "documents": [{"document_id": "d1", "input": "input/page.png"}],
        "options": {"threads": 1, "outputs": ["txt"]},
        "output": str(store),
    }
    (job / "payload.json").write_text(json.dumps(payload))
    keyring = Keyring.generate("k-bundle")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "RYTHMIQ_KEYRING": base64.b64encode(keyring.to_json().encode()).decode(),
    }
    (tmp_path / "tmp").mkdir()
    (tmp_path / "home").mkdir()
    before = sorted(p.name for p in job.iterdir())
    command = [
        python,
        "-s",
        LAUNCHER_NAME,
        real_bundle.path.name,
        "worker",
        "--payload",
        "payload.json",
    ]
    first = subprocess.run(command, cwd=job, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, (first.stdout[-2000:], first.stderr[-4000:])
    result = json.loads(first.stdout.splitlines()[-1])
    assert result["status"] == "ok"
    assert result["engine"].startswith("onnx:PP-OCRv6")
    text = (store / "output" / "u1" / "bundle-job" / "d1" / "text.txt").read_text()
    assert "harbour" in text.lower() and "invoice" in text.lower()
    assert "unpacked" in first.stderr
    assert sorted(p.name for p in job.iterdir()) == before  # the stash folder is untouched
    # HOME holds only OpenVINO's telemetry client id (~/intel/), which it writes on first use
    # even with telemetry declined: nothing of rythmiq's, and no unpacked files.
    assert {p.name for p in (tmp_path / "home").iterdir()} <= {"intel"}
    second = subprocess.run(command, cwd=job, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "reused" in second.stderr
    assert json.loads(second.stdout.splitlines()[-1])["status"] == "ok"


@pytest.mark.integration
def test_truncated_real_bundle_fails_cleanly(real_bundle, tmp_path):
    cut = tmp_path / real_bundle.path.name
    cut.write_bytes(real_bundle.path.read_bytes()[: real_bundle.size // 2])
    proc = launch(cut, "worker", cwd=tmp_path, tmpdir=tmp_path / "t", python=_base_python())
    assert bundle_error(proc)["code"] == "bundle.corrupt"
    no_partial_unpacks(tmp_path / "t")


@pytest.mark.integration
def test_pip_installer_builds_a_working_bundle(tmp_path):
    built = build_bundle(
        tmp_path / "pip", installer="pip", python=f"{sys.version_info[0]}.{sys.version_info[1]}"
    )
    assert built.manifest["installer"].startswith("pip ")
    assert "openvino" in built.manifest["distributions"]
    proc = launch(
        built.path,
        "models",
        "list",
        "--json",
        cwd=tmp_path,
        tmpdir=tmp_path / "t",
        python=_base_python(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = json.loads(proc.stdout)
    unpacked = (tmp_path / "t" / "rythmiq-bundles").resolve()
    for role in ("det", "rec"):
        assert models[role]["source"] == "bundled"
        assert Path(models[role]["path"]).resolve().is_relative_to(unpacked)


def test_cli_bundle_refuses_a_bad_target(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rythmiq", "bundle", "--out", str(tmp_path / "o"), "--python", "3"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 9, proc.stderr
    assert "[bundle.invalid_target]" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.integration
def test_cli_bundle_prints_the_upload_and_job_lines(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rythmiq",
            "bundle",
            "--out",
            str(tmp_path / "dist"),
            "--python",
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            "--stash",
            "stash://alice/ocr/",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    archive = next((tmp_path / "dist").glob("rythmiq-bundle-*-onnx.tar.*"))
    assert (tmp_path / "dist" / LAUNCHER_NAME).is_file()
    out = proc.stdout
    assert f"camber stash cp {archive.name} stash://alice/ocr/" in out
    assert f"camber stash cp {LAUNCHER_NAME} stash://alice/ocr/" in out
    assert (
        f'camber job create --engine base --cmd "python3 -s {LAUNCHER_NAME} {archive.name} '
        'worker --payload payload.json" --path stash://alice/ocr/ --size xxsmall'
    ) in out


def test_pdf_font_from_the_environment(tmp_path, monkeypatch):
    font = tmp_path / "DejaVuSans.ttf"
    font.write_bytes(b"x")
    font_path.cache_clear()
    try:
        monkeypatch.setenv("RYTHMIQ_PDF_FONT", str(font))
        assert font_path() == str(font)
        font_path.cache_clear()
        monkeypatch.setenv("RYTHMIQ_PDF_FONT", str(tmp_path / "missing.ttf"))
        assert font_path() != str(tmp_path / "missing.ttf")  # the usual folders instead
    finally:
        font_path.cache_clear()
