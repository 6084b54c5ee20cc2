"""The one writer of private files: owner-only from creation, never briefly world-readable.

The database, its WAL and spill files, the key file, exports, summaries and cassettes describe a
tenant (DESIGN invariant 5). Files we open ourselves are created 0600 (`open_private`); folders we
keep are 0700 (`private_dir`); files a library creates on its own schedule (DuckDB's WAL at the first
write, spill files, COPY output) are born under umask 077, held as long as the library may create
them (`private_umask`). The umask is per process, so holders are counted: the last one out restores it.
"""
from __future__ import annotations

import errno
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from scanner.errors import InputError

FILE_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_UMASK = 0o077

# A symlink planted where we write would redirect our bytes (or our chmod) elsewhere.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)

StrPath = str | os.PathLike


# -- files ------------------------------------------------------------------------------------------

def open_private(path: StrPath, mode: str = "w", *, exclusive: bool = False,
                 encoding: str = "utf-8") -> IO:
    """Open `path` for writing ("w" text or "wb"), created 0600; an existing file is tightened to
    0600 before a byte is written and truncated (or, with `exclusive`, refused: O_EXCL)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_private writes only ('w' or 'wb'), not {mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = _open_nofollow(path, flags)
    try:
        _tighten(fd)
        return os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private_bytes(path: StrPath, data: bytes, *, exclusive: bool = False) -> None:
    with open_private(path, "wb", exclusive=exclusive) as f:
        f.write(data)


def write_private_text(path: StrPath, text: str, *, exclusive: bool = False) -> None:
    with open_private(path, "w", exclusive=exclusive) as f:
        f.write(text)


@contextmanager
def private_output(path: StrPath) -> Iterator[None]:
    """For a file a library writes itself (DuckDB COPY): it exists 0600 before the library opens it
    (so an old 0644 file is never rewritten readable), umask 077 while the library writes (a temp file
    it renames into place is born private too), and it is 0600 afterwards whatever the library did."""
    open_private(path, "wb").close()
    with private_umask():
        yield
    tighten_file(path)


def tighten_file(path: StrPath) -> None:
    """chmod 0600 an existing regular file, never through a symlink; a missing file is fine.

    By path, not by opening it: closing any descriptor of a file drops every POSIX record lock this
    process holds on it, and DuckDB's single-writer lock on the database is one of those."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "refusing to chmod through a symbolic link", str(path))
    if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != FILE_MODE:
        os.chmod(path, FILE_MODE)


def _open_nofollow(path: StrPath, flags: int) -> int:
    try:
        return os.open(path, flags, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and flags & _NOFOLLOW:
            raise OSError(errno.ELOOP, "refusing to write through a symbolic link", str(path)) from None
        raise


def _tighten(fd: int) -> None:
    """0600 for a regular file; a pipe or device (e.g. /dev/null) is not ours to chmod."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)


# -- folders ----------------------------------------------------------------------------------------

def private_dir(path: StrPath) -> Path:
    """A folder only we can enter: created 0700, or an existing one of ours tightened to 0700.

    A symlink or someone else's folder is refused: a spill directory another user controls would
    let them read (or swap) what DuckDB writes there."""
    p = Path(path)
    try:
        os.mkdir(p, DIR_MODE)
    except FileExistsError:
        pass
    try:
        fd = os.open(p, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise NotADirectoryError(errno.ENOTDIR, "not a private folder (a file or a symbolic link)",
                                     str(p)) from None
        raise
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise PermissionError(errno.EPERM, "folder belongs to another user", str(p))
        if stat.S_IMODE(st.st_mode) != DIR_MODE:  # mkdir's mode is cut by the umask; tighten either way
            os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)
    return p


# -- the umask, for files libraries create ----------------------------------------------------------

_lock = threading.Lock()
_holders = 0
_saved: int | None = None


@contextmanager
def private_umask() -> Iterator[None]:
    """umask |= 077 while the body runs (re-entrant and shared across threads and open Stores)."""
    _hold()
    try:
        yield
    finally:
        _release()


def _hold() -> None:
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = os.umask(PRIVATE_UMASK)
            os.umask(_saved | PRIVATE_UMASK)  # never loosen a stricter umask
        _holders += 1


def _release() -> None:
    global _holders, _saved
    with _lock:
        _holders -= 1
        if _holders == 0 and _saved is not None:
            os.umask(_saved)
            _saved = None


def restrict_umask() -> None:
    """umask |= 077 for the rest of the process (the CLI: everything it creates is owner-only)."""
    global _saved
    with _lock:
        os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
        if _saved is not None:  # a holder's restore must not loosen it again
            _saved |= PRIVATE_UMASK


# -- output paths, checked before the work ------------------------------------------------------

def check_output_path(path: str, option: str) -> None:
    """A file a command writes after the scan, checked before it: missing folders are created (as
    for --db and `record --out`), and a path that cannot be written is a usage error naming why
    (an InputError: one line, exit 2 via scanner/cli/main.py `_invoke`, no usage block)."""
    def refuse(why: str) -> InputError:
        return InputError(f"cannot write {option} {path}: {why}")

    p = Path(path)
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise refuse(f"{ancestor} is a file, not a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise refuse(exc.strerror or type(exc).__name__) from None
    if p.is_dir():
        raise refuse("it is a folder; a file path is needed")
    if not os.access(p if p.exists() else p.parent, os.W_OK):
        raise refuse("permission denied")
