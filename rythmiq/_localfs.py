"""Local files: only regular files read, and a folder's files reached without a link out of it.

Two services, for the local store (:class:`rythmiq.storage.Store`) and for the paths given
to :func:`rythmiq.process` and the CLI:

- :func:`read_regular` reads a file only when it is a regular file. It is checked with
  ``stat`` before it is opened, so a device, a FIFO or a socket is never opened; it is
  opened with ``O_NONBLOCK``, so a FIFO swapped in meanwhile cannot block; and the open
  descriptor is checked again with ``fstat``. At most ``max_bytes + 1`` bytes are read.
- :class:`Root` addresses the files below a folder by keys (``a/b/c.png``). Each folder on
  a key's way is opened relative to the one above it, with ``O_NOFOLLOW`` (``openat``), so
  a folder cannot be swapped for a link between its check and its use. A symbolic link on
  the way is resolved here, one name at a time, and followed only while it stays below the
  root: a link that leads out (``/elsewhere``, ``../..``, ``/dev/zero``) raises
  :class:`OutsideRoot` before anything is read or written there. Where ``dir_fd`` is not
  supported (Windows) the same walk is done on path strings, without the protection
  against swaps.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "NotRegular",
    "OutsideRoot",
    "Root",
    "TooLarge",
    "is_temp_name",
    "kind_of",
    "read_regular",
]

# A folder on the way: a descriptor, or a path where dir_fd is not supported.
_Folder = int | str

_DIR_FD = {
    os.open,
    os.stat,
    os.mkdir,
    os.rename,
    os.unlink,
    os.readlink,
} <= os.supports_dir_fd and (os.scandir in os.supports_fd)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_ROOT_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC | _BINARY
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | _BINARY
# The kernel's own limit on the links one path may pass through (Linux: 40).
_MAX_LINKS = 40
# The temporary name a write uses until its rename (see Root.write).
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp", re.DOTALL)


class OutsideRoot(Exception):
    """A key leads out of its root through a symbolic link; nothing was read or written."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} leads out of the root through a symbolic link")
        self.key = key


class NotRegular(Exception):
    """The file is not a regular file (``kind`` says what it is, e.g. ``"a FIFO"``)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"{kind}, not a regular file")
        self.kind = kind


class TooLarge(Exception):
    """The file is over ``max_bytes``; ``size`` is its size where it is known."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"{size} bytes" if size is not None else "too large")
        self.size = size


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, as a phrase: ``"a FIFO"``, ``"a directory"``..."""
    kinds = (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is the temporary name of a :meth:`Root.write` that never finished."""
    return _TEMP_NAME.fullmatch(name) is not None


def _at(folder: _Folder | None, name: str) -> tuple[str, dict[str, int]]:
    """The path argument and the ``dir_fd`` keyword that name ``name`` in ``folder``."""
    if folder is None:
        return name, {}
    if isinstance(folder, int):
        return name, {"dir_fd": folder}
    return os.path.join(folder, name), {}


def read_regular(path: str, *, max_bytes: int | None, folder: _Folder | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (a name in ``folder``, when given).

    Without ``folder`` a link at ``path`` is followed (the caller chose the path); with one,
    ``path`` must not be a link (:class:`Root` resolved them on the way).

    Raises:
        NotRegular: ``path`` is a directory, a FIFO, a device or a socket; it was not opened
            (or, swapped in after the check, opened without blocking and not read).
        TooLarge: over ``max_bytes``, from its size before the read, or once
            ``max_bytes + 1`` bytes were read.
        OSError: as ``os.stat`` and ``os.open`` raise it (``FileNotFoundError``...).
    """
    name, at = _at(folder, path)
    info = os.stat(name, follow_symlinks=folder is None, **at)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegular(kind_of(info.st_mode))
    if max_bytes is not None and info.st_size > max_bytes:
        raise TooLarge(info.st_size)
    fd = os.open(name, _READ_FLAGS | (_NOFOLLOW if folder is not None else 0), **at)
    with os.fdopen(fd, "rb") as fh:
        opened = os.fstat(fh.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegular(kind_of(opened.st_mode))
        if max_bytes is None:
            return fh.read()
        if opened.st_size > max_bytes:
            raise TooLarge(opened.st_size)
        data = fh.read(max_bytes + 1)  # a file that grows is cut off here
    if len(data) > max_bytes:
        raise TooLarge(None)
    return data


def _open_root(path: str) -> _Folder:
    # The root itself may be a link: it is where the caller said the store is.
    return os.open(path, _ROOT_FLAGS) if _DIR_FD else path


def _open_folder(folder: _Folder, name: str) -> _Folder:
    if isinstance(folder, int):
        return os.open(name, _ROOT_FLAGS | _NOFOLLOW, dir_fd=folder)
    return os.path.join(folder, name)


def _close(folder: _Folder) -> None:
    if isinstance(folder, int):
        os.close(folder)


def _lstat(folder: _Folder, name: str) -> os.stat_result | None:
    path, at = _at(folder, name)
    try:
        return os.stat(path, follow_symlinks=False, **at)
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Root:
    """The files below the folder ``path``, addressed by ``/``-separated keys.

    No method follows a link out of ``path`` (:class:`OutsideRoot`), and :meth:`read` reads
    regular files only (:class:`NotRegular`). Keys are checked by the caller: this class
    refuses a ``..`` only when it would climb above the root.
    """

    path: str

    def read(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of the regular file at ``key`` (see :func:`read_regular`)."""
        with self._entry(key, create=False, follow=True) as (folder, name):
            return read_regular(name, max_bytes=max_bytes, folder=folder)

    def write(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically: into a new hidden temporary file in the same
        folder, fsynced, then renamed over ``key`` (a link at ``key`` is replaced, not
        followed). Missing folders are created; a failed write leaves no temporary file."""
        with self._entry(key, create=True, follow=False) as (folder, name):
            temp, at = _at(folder, f".{name}.{uuid.uuid4().hex}.tmp")
            fd = os.open(temp, _WRITE_FLAGS, 0o666, **at)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                if isinstance(folder, int):
                    os.replace(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
                else:
                    os.replace(temp, _at(folder, name)[0])
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, **at)
                raise

    def is_file(self, key: str) -> bool:
        """Whether a regular file is at ``key`` (a folder, a FIFO or a device is not one)."""
        try:
            with self._entry(key, create=False, follow=True) as (folder, name):
                info = _lstat(folder, name)
        except FileNotFoundError:
            return False
        return info is not None and stat.S_ISREG(info.st_mode)

    def delete(self, key: str) -> None:
        """Remove the file at ``key`` (a link there is removed, not its target); a missing
        key is not an error."""
        try:
            with self._entry(key, create=False, follow=False) as (folder, name):
                path, at = _at(folder, name)
                os.unlink(path, **at)
        except FileNotFoundError:
            pass

    def files(self, prefix: str = "") -> list[str]:
        """The keys of the regular files below the folder ``prefix``, in no order.

        A link to a regular file inside the root is listed; a link that leads out, or to
        anything else, is not, and a linked folder is not entered.
        """
        base = prefix.strip("/")
        found: list[str] = []
        links: list[str] = []
        try:
            with self._entry(base or ".", create=False, follow=True) as (folder, name):
                info = _lstat(folder, name)
                if info is None or not stat.S_ISDIR(info.st_mode):
                    return []
                _walk_files(_open_folder(folder, name), found, links)
        except FileNotFoundError:
            return []
        head = base + "/" if base else ""
        keys = [head + rel for rel in found]
        for link in links:
            with contextlib.suppress(OutsideRoot, OSError):
                if self.is_file(head + link):
                    keys.append(head + link)
        return keys

    @contextlib.contextmanager
    def _entry(self, key: str, *, create: bool, follow: bool) -> Iterator[tuple[_Folder, str]]:
        """The folder that holds ``key``'s last name, open, and that name.

        A missing folder on the way is created when ``create`` is set (else:
        ``FileNotFoundError``). A link on the way is followed inside the root; at the last
        name too when ``follow`` is set.
        """
        if create:
            os.makedirs(self.path, exist_ok=True)
        stack = [_open_root(self.path)]
        try:
            name = self._walk(stack, key, create=create, follow=follow)
            yield stack[-1], name
        finally:
            for folder in stack:
                _close(folder)

    def _walk(self, stack: list[_Folder], key: str, *, create: bool, follow: bool) -> str:
        """Open the folders of ``key`` onto ``stack`` (the root at the bottom); its last name."""
        todo = list(reversed(key.split("/")))
        links = 0
        while True:
            part = todo.pop()
            last = not todo
            if part == ".." and len(stack) == 1:
                raise OutsideRoot(key)
            if part == "..":
                _close(stack.pop())
            if part in ("", ".", ".."):
                if last:
                    return "."
                continue
            info = _lstat(stack[-1], part)
            if info is not None and stat.S_ISLNK(info.st_mode) and (follow or not last):
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", key)
                todo.extend(reversed(self._link_target(stack, key, part)))
                continue
            if last:
                return part
            if info is None and create:
                with contextlib.suppress(FileExistsError):
                    path, at = _at(stack[-1], part)
                    os.mkdir(path, 0o777, **at)
                todo.append(part)  # look again: another process may have made a link there
                continue
            if info is None or not stat.S_ISDIR(info.st_mode):
                if create:
                    raise NotADirectoryError(errno.ENOTDIR, f"{part} is not a folder", key)
                raise FileNotFoundError(errno.ENOENT, "no such file or folder", key)
            stack.append(_open_folder(stack[-1], part))

    def _link_target(self, stack: list[_Folder], key: str, name: str) -> list[str]:
        """The names the link ``name`` in ``stack[-1]`` stands for, from that folder; an
        absolute target inside the root restarts the walk from the root."""
        path, at = _at(stack[-1], name)
        target = os.readlink(path, **at).replace(os.sep, "/")
        if not os.path.isabs(target):
            return target.split("/")
        for base in {os.path.abspath(self.path), os.path.realpath(self.path)}:
            base = base.replace(os.sep, "/").rstrip("/")
            if target == base or target.startswith(base + "/"):
                while len(stack) > 1:
                    _close(stack.pop())
                return target[len(base) :].split("/")
        raise OutsideRoot(key)


def _walk_files(top: _Folder, found: list[str], links: list[str]) -> None:
    """Fill ``found`` with the regular files below ``top`` and ``links`` with the links, as
    paths relative to it; ``top`` is closed. Linked folders are not entered, and at most one
    descriptor per level is open."""
    stack: list[tuple[_Folder, str, Iterator[os.DirEntry[str]]]] = []

    def enter(folder: _Folder, rel: str) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except BaseException:
            _close(folder)
            raise
        stack.append((folder, rel, iter(entries)))

    enter(top, "")
    try:
        while stack:
            folder, rel, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                _close(stack.pop()[0])
            elif entry.is_dir(follow_symlinks=False):
                enter(_open_folder(folder, entry.name), rel + entry.name + "/")
            elif entry.is_file(follow_symlinks=False):
                found.append(rel + entry.name)
            elif entry.is_symlink():
                links.append(rel + entry.name)
    finally:
        for folder, _, _ in stack:
            _close(folder)
