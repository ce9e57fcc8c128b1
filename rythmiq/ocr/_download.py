"""The file side of :func:`rythmiq.ocr.prefetch_models`: copying a model file or folder into
place without ever leaving half of it, and fetching PaddleOCR models from the hub in a child
process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from rythmiq._errors import ModelError, StorageError
from rythmiq.ocr.config import MODEL_DIR_ENV

__all__ = ["hub_download", "install_file", "install_folder", "write_failed"]

# A hub download of a server model is a few hundred MB; a stalled one must not hang a build.
_DOWNLOAD_TIMEOUT_S = 1800

# What the child process runs: rythmiq.ocr.paddle._download_child builds a PaddleEngine, which
# makes PaddleOCR download what it lacks into $PADDLE_PDX_CACHE_HOME.
_CHILD = (
    "import sys; from rythmiq.ocr.paddle import _download_child as d; sys.exit(d(sys.argv[1:]))"
)


def write_failed(path: Path, exc: OSError) -> StorageError:
    """The error for a model that cannot be written to ``path`` (``storage.write_failed``)."""
    return StorageError(
        f"cannot write models to {str(path)!r}: {exc.strerror or exc}",
        code="storage.write_failed",
    )


def install_file(source: Path, root: Path, name: str) -> Path:
    """Copy the file ``source`` to ``root/<name>.onnx`` via a temporary file and a rename."""
    target = root / f"{name}.onnx"
    if target.exists() and source.resolve() == target.resolve():
        return target  # prefetching into the folder it resolved from
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes it 0600; a model baked by root must stay readable by the runtime user.
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise write_failed(target, exc) from exc
    return target


def install_folder(source: Path, root: Path, name: str) -> Path:
    """Copy the folder ``source`` to ``root/name`` via a temporary folder and a rename."""
    target = root / name
    if target.exists() and source.resolve() == target.resolve():
        return target  # prefetching into the folder it resolved from
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
        # mkdtemp makes it 0700; a model baked by root must stay readable by the runtime user.
        tmp.chmod(0o755)
        if target.is_dir() and not target.is_symlink():
            old = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if target.exists() or target.is_symlink():
                target.unlink()
            tmp.rename(target)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise write_failed(target, exc) from exc
    return target


def hub_download(det: tuple[str, str | None], rec: tuple[str, str | None], cache: Path) -> None:
    """Build a PaddleEngine for ``det`` and ``rec`` (each ``(name, folder or None)``) in a
    child process, so that PaddleOCR downloads the models without a folder into ``cache``.

    Raises:
        ModelError: The download timed out or failed (``model.load_failed``).
    """
    report = cache / "report.json"
    env = {**os.environ, "PADDLE_PDX_CACHE_HOME": str(cache)}
    argv = [str(report), det[0], det[1] or "", rec[0], rec[1] or ""]
    names = " + ".join(name for name, folder in (det, rec) if folder is None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=_DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"downloading {names} took over {_DOWNLOAD_TIMEOUT_S} s; check the network, or "
            f"copy the model into ${MODEL_DIR_ENV}/<name>/ by hand",
            code="model.load_failed",
        ) from None
    if proc.returncode == 0:
        return
    try:
        error = json.loads(report.read_text())["error"]
        message = str(error["message"])
    except (OSError, ValueError, KeyError, TypeError):
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        message = f"the download process exited with {proc.returncode}: {tail[0]}"
    raise ModelError(f"could not download {names}: {message}", code="model.load_failed")
