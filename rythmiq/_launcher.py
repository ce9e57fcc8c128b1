#!/usr/bin/env python3
"""rythmiq bundle launcher: run rythmiq from a runtime bundle with nothing but ``python3``.

Copied beside a bundle by ``rythmiq bundle`` as ``rythmiq-launch.py``. A job runs::

    python3 -s rythmiq-launch.py rythmiq-bundle-<...>.tar.zst worker --payload payload.json

It reads the bundle's ``manifest.json`` (the archive's first member), checks that this
Python and this machine are the ones the bundle was built for, unpacks the bundle once into
``$TMPDIR/rythmiq-bundles/<manifest digest>/`` (never next to the bundle: on Camber that is
the stash folder), checks every member against the manifest (path, type and size; with
``--verify`` each file's SHA-256 too) and the archive's own checksum, and then
replaces itself with ``python3 -s -S -m rythmiq <args>`` on the unpacked ``site-packages``
(``-s``: not the user's site-packages; ``-S``: not the system's either).
A later job on the same node whose bundle has the same manifest reuses that folder.

Standard library only, and no syntax newer than Python 3.6, so that it can report a
wrong Python instead of failing to parse. A ``.tar.zst`` bundle needs either the ``zstd``
program or the ``libzstd`` shared library (present on Ubuntu and Debian, which use it for
their packages); a ``.tar.gz`` bundle needs neither.

Exit codes: the command's own, or 9 when the bundle cannot be used (with one JSON line on
stdout, ``{"status": "error", "error": {"code": "bundle.*", ...}}``, like the worker's
errors, and the message on stderr): ``bundle.not_found``, ``bundle.corrupt``,
``bundle.wrong_python``, ``bundle.wrong_platform``, ``bundle.unsupported_compression``,
``bundle.unpack_failed``.
"""

import contextlib
import ctypes
import ctypes.util
import gzip
import hashlib
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names for the type comments, which Python 3.6 can parse
    from typing import Any, List, Optional, Set  # noqa: F401

EXIT_BUNDLE = 9
MANIFEST = "manifest.json"
FORMAT = "rythmiq-bundle"
FORMAT_VERSIONS = (1,)
SITE = "site-packages"
# Where a bundle keeps DejaVu Sans, relative to its root (rythmiq.bundle copies it there).
FONT = "fonts/DejaVuSans.ttf"
COMPLETE = ".complete"
_CHUNK = 1 << 20


class BundleProblem(Exception):
    """A bundle that cannot be used: ``code`` is one of the ``bundle.*`` codes."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------- reading


class _LibZstdReader(object):
    """A file-like reader that decompresses a zstd stream through libzstd (ctypes)."""

    class _InBuffer(ctypes.Structure):
        _fields_ = [("src", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]

    class _OutBuffer(ctypes.Structure):
        _fields_ = [("dst", ctypes.c_void_p), ("size", ctypes.c_size_t), ("pos", ctypes.c_size_t)]

    def __init__(self, raw, lib):
        self._raw = raw
        self._lib = lib
        lib.ZSTD_createDStream.restype = ctypes.c_void_p
        lib.ZSTD_initDStream.argtypes = [ctypes.c_void_p]
        lib.ZSTD_initDStream.restype = ctypes.c_size_t
        lib.ZSTD_freeDStream.argtypes = [ctypes.c_void_p]
        lib.ZSTD_decompressStream.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(self._OutBuffer),
            ctypes.POINTER(self._InBuffer),
        ]
        lib.ZSTD_decompressStream.restype = ctypes.c_size_t
        lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        lib.ZSTD_isError.restype = ctypes.c_uint
        lib.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
        lib.ZSTD_getErrorName.restype = ctypes.c_char_p
        self._ds = lib.ZSTD_createDStream()
        if not self._ds:
            raise BundleProblem("bundle.unpack_failed", "libzstd could not allocate a stream")
        self._check(lib.ZSTD_initDStream(self._ds))
        self._in_data = b""
        self._in = self._InBuffer(None, 0, 0)
        self._out_size = _CHUNK
        self._out_mem = ctypes.create_string_buffer(self._out_size)
        self._pending = b""
        self._frame_done = True
        self._eof = False

    def _check(self, ret):
        if self._lib.ZSTD_isError(ret):
            name = self._lib.ZSTD_getErrorName(ret).decode("ascii", "replace")
            raise BundleProblem("bundle.corrupt", "the bundle does not decompress: " + name)
        return ret

    def _fill(self):
        while not self._pending and not self._eof:
            if self._in.pos >= self._in.size:
                self._in_data = self._raw.read(_CHUNK)
                if not self._in_data:
                    self._eof = True
                    if not self._frame_done:
                        raise BundleProblem(
                            "bundle.corrupt", "the bundle is truncated (the zstd stream ends early)"
                        )
                    return
                self._in_mem = ctypes.create_string_buffer(self._in_data, len(self._in_data))
                self._in = self._InBuffer(
                    ctypes.cast(self._in_mem, ctypes.c_void_p), len(self._in_data), 0
                )
            out = self._OutBuffer(ctypes.cast(self._out_mem, ctypes.c_void_p), self._out_size, 0)
            ret = self._check(
                self._lib.ZSTD_decompressStream(self._ds, ctypes.byref(out), ctypes.byref(self._in))
            )
            self._frame_done = ret == 0
            if out.pos:
                self._pending = self._out_mem.raw[: out.pos]

    def read(self, size=-1):
        parts = []
        want = size if size is not None and size >= 0 else None
        got = 0
        while want is None or got < want:
            self._fill()
            if not self._pending:
                break
            take = self._pending if want is None else self._pending[: want - got]
            self._pending = self._pending[len(take) :]
            parts.append(take)
            got += len(take)
        return b"".join(parts)

    def close(self):
        if self._ds:
            self._lib.ZSTD_freeDStream(self._ds)
            self._ds = None


class _Source(object):
    """The decompressed byte stream of a bundle, from the first decompressor that exists."""

    def __init__(self, path, decompressor="auto"):
        self.path = path
        self._proc = None  # type: Any
        self._raw = None  # type: Any
        self.stream = None  # type: Any
        self.how = None  # type: Optional[str]
        if path.endswith(".tar.gz") or path.endswith(".tgz"):
            self._raw = open(path, "rb")
            self.stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
            self.how = "gzip"
        elif path.endswith(".tar.zst"):
            program = shutil.which("zstd") if decompressor in ("auto", "zstd") else None
            lib = None
            if program is None and decompressor in ("auto", "libzstd"):
                name = ctypes.util.find_library("zstd")
                for candidate in ([name] if name else []) + ["libzstd.so.1"]:
                    try:
                        lib = ctypes.CDLL(candidate)
                        break
                    except OSError:
                        continue
            if program is not None:
                self._proc = subprocess.Popen(
                    [program, "-dcq", "--", path],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    bufsize=_CHUNK,
                )
                self.stream = self._proc.stdout
                self.how = "zstd"
            elif lib is not None:
                self._raw = open(path, "rb")
                self.stream = _LibZstdReader(self._raw, lib)
                self.how = "libzstd"
            else:
                raise BundleProblem(
                    "bundle.unsupported_compression",
                    "a .tar.zst bundle needs the zstd program or libzstd, and this machine has"
                    " neither; install zstd, or build the bundle with --compression gzip",
                )
        else:
            raise BundleProblem(
                "bundle.not_found", "not a bundle (expected .tar.zst or .tar.gz): " + path
            )

    def finish(self, drained):
        """Close the stream; with ``drained``, require the decompressor to have succeeded."""
        err = b""
        try:
            if self._proc is not None:
                if not drained:
                    self._proc.kill()
                self._proc.stdout.close()
                err = self._proc.stderr.read()
                self._proc.stderr.close()
                code = self._proc.wait()
                if drained and code != 0:
                    detail = err.decode("utf-8", "replace").strip().splitlines()
                    raise BundleProblem(
                        "bundle.corrupt",
                        "the bundle does not decompress"
                        + (": " + detail[-1][:200] if detail else " (zstd exit %d)" % code),
                    )
            else:
                self.stream.close()
        finally:
            if self._raw is not None:
                self._raw.close()


# What a damaged archive raises while it is read (gzip.BadGzipFile is an OSError).
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, getattr(gzip, "BadGzipFile", OSError))


def _open_tar(source):
    try:
        return tarfile.open(fileobj=source.stream, mode="r|")
    except _DAMAGED as exc:
        raise BundleProblem("bundle.corrupt", "the bundle is not a tar archive: %s" % (exc,))


def read_manifest(path, decompressor="auto"):
    """The manifest (parsed) and its raw bytes, read from the archive's first member."""
    if not os.path.isfile(path):
        raise BundleProblem("bundle.not_found", "no bundle file at " + path)
    source = _Source(path, decompressor)
    drained = False
    try:
        tar = _open_tar(source)
        try:
            member = tar.next()
        except _DAMAGED as exc:
            raise BundleProblem("bundle.corrupt", "the bundle's archive is damaged: %s" % (exc,))
        if member is None or member.name != MANIFEST or not member.isfile():
            raise BundleProblem("bundle.corrupt", "the bundle does not start with manifest.json")
        if member.size > 64 << 20:
            raise BundleProblem("bundle.corrupt", "the bundle's manifest is implausibly large")
        raw = tar.extractfile(member).read()
    finally:
        source.finish(drained)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise BundleProblem("bundle.corrupt", "the bundle's manifest is not JSON: %s" % (exc,))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleProblem("bundle.corrupt", "the manifest is not a rythmiq bundle manifest")
    if manifest.get("format_version") not in FORMAT_VERSIONS:
        raise BundleProblem(
            "bundle.corrupt",
            "bundle format version %r is not one this launcher reads %r"
            % (manifest.get("format_version"), FORMAT_VERSIONS),
        )
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("target"), dict):
        raise BundleProblem("bundle.corrupt", "the manifest has no file list or target")
    return manifest, raw


# ---------------------------------------------------------------------------- checking


def _glibc():
    try:
        name, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return None


def check_target(manifest):
    """Refuse a bundle built for another Python or another kind of machine."""
    target = manifest["target"]
    want = str(target.get("python", ""))
    have = "%d.%d" % sys.version_info[:2]
    if want != have or sys.implementation.name != "cpython":
        raise BundleProblem(
            "bundle.wrong_python",
            "this bundle was built for CPython %s, but the job runs %s %s (%s); build one with"
            " `rythmiq bundle --python %s`"
            % (want, sys.implementation.name, platform.python_version(), sys.executable, have),
        )
    machine = target.get("machine")
    if machine and platform.machine() != machine:
        raise BundleProblem(
            "bundle.wrong_platform",
            "this bundle was built for %s machines, not %s" % (machine, platform.machine()),
        )
    glibc = target.get("glibc")
    if glibc:
        need = tuple(int(p) for p in str(glibc).split("."))
        have_glibc = _glibc()
        if have_glibc is None or have_glibc < need:
            raise BundleProblem(
                "bundle.wrong_platform",
                "this bundle needs glibc %s or newer (%s), and this machine has %s; build one"
                " with `rythmiq bundle --platform manylinux_X_Y_%s` for an older glibc"
                % (
                    glibc,
                    target.get("platform"),
                    "glibc %d.%d" % have_glibc if have_glibc else "no glibc",
                    platform.machine(),
                ),
            )


def _safe_name(name):
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") for p in parts)


# ---------------------------------------------------------------------------- unpacking


def _hasher(jobs, bad, files):
    while True:
        item = jobs.get()
        if item is None:
            return
        name, digest = item
        want = files.get(name)
        if want is None or digest.hexdigest() != want[1]:
            bad.append(name)


def _member_target(member, files, seen, dest):
    """``(where the member goes, whether it is a folder)``, after checking it against the
    manifest."""
    name = member.name
    if not _safe_name(name):
        raise BundleProblem("bundle.corrupt", "unsafe path in the bundle: %r" % name)
    target = os.path.join(dest, *name.split("/"))
    if member.isdir():
        return target, True
    if not member.isfile():
        raise BundleProblem("bundle.corrupt", "the bundle holds a link or device: %r" % name)
    want = files.get(name)
    if want is None or want[0] != member.size or name in seen:
        raise BundleProblem(
            "bundle.corrupt", "%r is not in the manifest as it is in the archive" % name
        )
    seen.add(name)
    return target, False


def _write_member(tar, member, target, hashes):
    """Stream one file out of the archive; its SHA-256 object when ``hashes``, else None."""
    digest = hashlib.sha256() if hashes else None
    src = tar.extractfile(member)
    with open(target, "wb") as out:
        while True:
            block = src.read(_CHUNK)
            if not block:
                break
            if digest is not None:
                digest.update(block)
            out.write(block)
    if member.mode & 0o111:
        os.chmod(target, 0o755)
    return digest


def _drain(stream):
    """Read to the very end, so that the decompressor checks the archive's checksum (it sits
    after the last member); what follows the tar's end must be padding."""
    while True:
        block = stream.read(_CHUNK)
        if not block:
            return
        if block.count(0) != len(block):
            raise BundleProblem("bundle.corrupt", "the bundle has data after its end")


def _extract(source, files, dest, seen, hashes, on_file):
    """Every member of the archive into ``dest``; ``on_file(name, digest)`` after each file
    (``digest``: its SHA-256 object with ``hashes``, else None)."""
    made = {dest}
    tar = _open_tar(source)
    first = True
    for member in tar:
        if first:
            first = False
            if member.name != MANIFEST:
                raise BundleProblem("bundle.corrupt", "manifest.json is not first")
            tar.extractfile(member).read()
            continue
        target, is_dir = _member_target(member, files, seen, dest)
        folder = target if is_dir else os.path.dirname(target)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        if not is_dir:
            on_file(member.name, _write_member(tar, member, target, hashes))
    _drain(source.stream)


def unpack(path, manifest, dest, decompressor="auto", hashes=False):
    """Unpack the bundle into ``dest`` (which must not exist), checking every file.

    Every member must be a regular file or folder at a safe relative path, listed in the
    manifest with the same size, and every listed file must come; the archive's own
    checksum (zstd's XXH64, or gzip's CRC-32) catches a damaged download. With ``hashes``,
    each file's SHA-256 is checked against the manifest too (on other threads, while the
    archive streams): about 0.6 s more for the default bundle on 2 cores.
    """
    files = manifest["files"]
    seen = set()  # type: Set[str]
    bad = []  # type: List[str]
    jobs = queue.Queue(maxsize=256)  # type: queue.Queue[Any]
    # SHA-256 runs on other threads (hashlib releases the GIL), beside the decompression.
    threads = [
        threading.Thread(target=_hasher, args=(jobs, bad, files), daemon=True)
        for _ in range(max(1, min(4, (os.cpu_count() or 1))) if hashes else 0)
    ]
    for t in threads:
        t.start()

    def on_file(name, digest):
        if digest is not None:
            jobs.put((name, digest))

    os.makedirs(dest)
    source = _Source(path, decompressor)
    drained = False
    try:
        try:
            _extract(source, files, dest, seen, hashes, on_file)
        except _DAMAGED as exc:
            raise BundleProblem("bundle.corrupt", "the bundle's archive is damaged: %s" % (exc,))
        drained = True
    finally:
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        source.finish(drained)
    if bad:
        raise BundleProblem(
            "bundle.corrupt",
            "%d file(s) do not match the manifest's SHA-256, e.g. %s" % (len(bad), sorted(bad)[0]),
        )
    missing = len(files) - len(seen)
    if missing:
        example = sorted(set(files) - seen)[0]
        raise BundleProblem(
            "bundle.corrupt",
            "%d file(s) of the manifest are missing from the archive, e.g. %s" % (missing, example),
        )


def cache_root():
    base = os.environ.get("RYTHMIQ_BUNDLE_CACHE") or os.path.join(
        os.environ.get("TMPDIR") or "/tmp", "rythmiq-bundles"
    )
    return os.path.abspath(base)


def _intact(folder, manifest):
    """Whether every file of the manifest is still there with its size (a /tmp cleaner may
    have removed some since the earlier unpack)."""
    for name, (size, _sha) in manifest["files"].items():
        try:
            if os.stat(os.path.join(folder, *name.split("/"))).st_size != size:
                return False
        except OSError:
            return False
    return True


def prepare(path, decompressor="auto", hashes=False):
    """Unpack ``path`` (or reuse an earlier unpack); returns ``(folder, manifest, reused)``."""
    manifest, raw = read_manifest(path, decompressor)
    check_target(manifest)
    digest = hashlib.sha256(raw).hexdigest()
    root = cache_root()
    final = os.path.join(root, digest[:24])
    marker = os.path.join(final, COMPLETE)
    try:
        with open(marker) as fh:
            if fh.read().strip() == digest and _intact(final, manifest):
                return final, manifest, True
    except OSError:
        pass
    os.makedirs(root, exist_ok=True)
    if os.path.isdir(final):
        # Files went missing since (a /tmp cleaner): move it aside in one step, so that no
        # other job sees it half deleted, then unpack afresh.
        stale = "%s.stale-%d" % (final, os.getpid())
        with contextlib.suppress(OSError):
            os.rename(final, stale)
        shutil.rmtree(stale, ignore_errors=True)
    work = "%s.tmp-%d-%d" % (final, os.getpid(), int(time.time() * 1000))
    try:
        unpack(path, manifest, work, decompressor, hashes)
        with open(os.path.join(work, MANIFEST), "wb") as fh:
            fh.write(raw)
        with open(os.path.join(work, COMPLETE), "w") as fh:
            fh.write(digest + "\n")
        try:
            os.rename(work, final)
        except OSError:
            # Another job on this node finished the same unpack first: use that one.
            if not os.path.isfile(marker):
                raise
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final, manifest, False


# ---------------------------------------------------------------------------- running


def _fail(code, message):
    sys.stderr.write("rythmiq-launch: [%s] %s\n" % (code, message))
    sys.stderr.flush()
    error = {"code": code, "message": message, "exit_code": EXIT_BUNDLE}
    sys.stdout.write(json.dumps({"status": "error", "error": error}) + "\n")
    sys.stdout.flush()
    return EXIT_BUNDLE


_USAGE = """usage: python3 -s rythmiq-launch.py [--decompressor auto|zstd|libzstd]
           [--verify] [--unpack-only] BUNDLE [RYTHMIQ-ARGS...]

Runs `python3 -s -S -m rythmiq RYTHMIQ-ARGS` from the runtime bundle BUNDLE
(e.g. `worker --payload payload.json`), unpacking it once into
$TMPDIR/rythmiq-bundles (or $RYTHMIQ_BUNDLE_CACHE). A first unpack checks the
archive's checksum and every member's path, type and size against the manifest;
--verify (or RYTHMIQ_BUNDLE_VERIFY=1) checks every file's SHA-256 too."""


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    decompressor = "auto"
    unpack_only = False
    hashes = os.environ.get("RYTHMIQ_BUNDLE_VERIFY", "") not in ("", "0")
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--help", "-h"):
            sys.stdout.write(_USAGE + "\n")
            return 0
        if flag == "--unpack-only":
            unpack_only = True
        elif flag == "--verify":
            hashes = True
        elif flag == "--decompressor" and args and args[0] in ("auto", "zstd", "libzstd"):
            decompressor = args.pop(0)
        elif flag == "--":
            break
        else:
            sys.stderr.write(_USAGE + "\n")
            return 2
    if not args:
        sys.stderr.write(_USAGE + "\n")
        return 2
    bundle = os.path.abspath(args.pop(0))
    t0 = time.time()
    try:
        folder, manifest, reused = prepare(bundle, decompressor, hashes)
    except BundleProblem as exc:
        return _fail(exc.code, exc.message)
    except OSError as exc:
        return _fail(
            "bundle.unpack_failed",
            "cannot unpack into %s: %s" % (cache_root(), exc.strerror or exc),
        )
    sys.stderr.write(
        "rythmiq-launch: bundle %s %s in %.2f s at %s\n"
        % (
            manifest.get("rythmiq", "?"),
            "reused" if reused else "unpacked",
            time.time() - t0,
            folder,
        )
    )
    sys.stderr.flush()
    if unpack_only:
        sys.stdout.write(folder + "\n")
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(folder, SITE)
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the bundle's bytecode is compiled already
    env["RYTHMIQ_BUNDLE"] = folder
    font = os.path.join(folder, *FONT.split("/"))
    if os.path.isfile(font):
        env.setdefault("RYTHMIQ_PDF_FONT", font)
    models = os.path.join(folder, "models")
    if os.path.isdir(models):
        env.setdefault("RYTHMIQ_MODEL_DIR", models)
    # -s: no user site (Camber's ~/.local holds its own numpy); -S: no site-packages of the
    # system either, and none of their .pth hooks: the bundle and the standard library only.
    command = [sys.executable, "-s", "-S", "-m", "rythmiq"] + args
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
