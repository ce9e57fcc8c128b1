"""The runtime bundle's archive: its manifest and its deterministic tar.

:func:`manifest` describes an unpacked tree (the target, every distribution and model, and
each file's size and SHA-256); :func:`pack` writes the tree as a tar (zstd or gzip) with the
manifest as its first member, sorted, with fixed times and owners, so that the same tree gives
the same bytes. :mod:`rythmiq.bundle` builds the tree; :mod:`rythmiq._launcher` reads the
archive on a job machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rythmiq._errors import BundleError
from rythmiq._launcher import FONT, FORMAT, FORMAT_VERSIONS, MANIFEST, SITE
from rythmiq._registry import ENGINES

__all__ = [
    "EPOCH",
    "FORMAT_VERSION",
    "PRUNED",
    "distributions_in",
    "manifest",
    "pack",
    "sha256_of",
    "tarinfo",
    "walk",
    "write_atomic",
]

FORMAT_VERSION = FORMAT_VERSIONS[-1]

#: Paths (under ``site-packages/``) left out of a bundle because a CPU batch job never loads
#: them: console scripts written for the build machine's Python, and OpenVINO's GPU and NPU
#: plugins, its GPU kernel cache, its C++ headers and its frontends for model formats other
#: than ONNX and its own IR (about 80 MB unpacked). The bundle tests run OCR without them.
PRUNED: tuple[str, ...] = (
    "bin/",
    ".lock",
    "openvino/include/",
    "openvino/cmake/",
    "openvino/libs/libopenvino_intel_gpu_plugin.so",
    "openvino/libs/libopenvino_intel_npu_plugin.so",
    "openvino/libs/cache.json",
    "openvino/libs/libopenvino_tensorflow_frontend.so.",
    "openvino/libs/libopenvino_tensorflow_lite_frontend.so.",
    "openvino/libs/libopenvino_pytorch_frontend.so.",
    "openvino/libs/libopenvino_paddle_frontend.so.",
    "openvino/libs/libopenvino_jax_frontend.so.",
    "openvino/libs/libopenvino_gguf_frontend.so.",
)
# A fixed time for every member (1980-01-01, the earliest a zip can hold, as in wheels).
EPOCH = 315532800


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``root`` as ``(posix path relative to root, path)``, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            yield path.relative_to(root).as_posix(), path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def distributions_in(site: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        name = version = None
        for line in meta.read_text("utf-8", errors="replace").splitlines():
            if line.startswith("Name: "):
                name = line[6:].strip()
            elif line.startswith("Version: "):
                version = line[9:].strip()
            elif not line:
                break
        if name and version:
            found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


def manifest(
    root: Path,
    *,
    engines: Sequence[str],
    extras: Sequence[str],
    python: str,
    platform: str,
    machine: str,
    glibc: str,
    installer: str,
    bytecode: bool,
    prune: bool,
) -> dict[str, Any]:
    files: dict[str, list[Any]] = {}
    font = FONT if (root / FONT).is_file() else None
    for rel, path in walk(root):
        files[rel] = [path.stat().st_size, sha256_of(path)]
    site = root / SITE
    distributions = distributions_in(site)
    models = sorted(
        rel
        for rel in files
        if rel.endswith(".onnx")
        or (rel.endswith(("inference.pdiparams", "inference.json")) and "/models/" in rel)
    )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rythmiq": distributions.get("rythmiq", "?"),
        "engines": list(engines),
        "extras": list(extras),
        "default_models": {
            e: {"det": ENGINES[e].det_model, "rec": ENGINES[e].rec_model} for e in engines
        },
        "target": {
            "python": python,
            "implementation": "cpython",
            "platform": platform,
            "machine": machine,
            "glibc": glibc,
        },
        "installer": installer,
        "bytecode": "unchecked-hash" if bytecode else None,
        "pruned": list(PRUNED) if prune else [],
        "distributions": distributions,
        "models": models,
        "font": font,
        "files": files,
    }


def tarinfo(
    name: str, *, size: int = 0, directory: bool = False, exe: bool = False
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o755 if exe else 0o644
    return info


def pack(root: Path, manifest_bytes: bytes, out: Path, compression: str) -> None:
    """Write the archive: manifest.json first, then every directory and file, sorted."""
    proc: subprocess.Popen[bytes] | None = None
    raw: Any
    if compression == "zstd":
        zstd = shutil.which("zstd")
        assert zstd is not None
        sink = out.open("wb")
        proc = subprocess.Popen([zstd, "-3", "-T0", "-q", "-c"], stdin=subprocess.PIPE, stdout=sink)
        assert proc.stdin is not None
        raw = proc.stdin
    else:
        sink = out.open("wb")
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=6, mtime=0)
    try:
        with tarfile.open(fileobj=raw, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(tarinfo(MANIFEST, size=len(manifest_bytes)), io.BytesIO(manifest_bytes))
            dirs: set[str] = set()
            for rel, path in walk(root):
                parts = rel.split("/")
                for i in range(1, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in dirs:
                        dirs.add(d)
                        tar.addfile(tarinfo(d, directory=True))
                st = path.stat()
                with path.open("rb") as fh:
                    tar.addfile(tarinfo(rel, size=st.st_size, exe=bool(st.st_mode & 0o111)), fh)
    finally:
        raw.close()
        if proc is not None:
            code = proc.wait()
            sink.close()
            if code != 0:
                raise BundleError(f"zstd failed (exit {code})", code="bundle.build_failed")
        else:
            sink.close()


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
