"""The paths given to `scan-files` → the files to scan, each named the way the user named it.

A file's name (the `file` column, and part of its findings' ids) is the path as given, or the given
directory joined with the path below it, normalised (`./exports//a.json` → `exports/a.json`), so a
rerun from the same place gives the same ids. Directories are walked in sorted order; a file reached
twice (given twice, or inside a directory also given) is scanned once, under its first name.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterable

# Reasons recorded for what the walk itself could not take (the worker adds its own).
UNREADABLE = "unreadable"
NOT_REGULAR = "not a regular file"
NOT_FOLLOWED = "not followed"


@dataclass(frozen=True, slots=True)
class Source:
    path: str   # what to open
    name: str   # what findings and skips say (see module docstring)
    size: int   # bytes on disk: progress and MB/s


@dataclass(frozen=True, slots=True)
class Unlisted:
    """Something under the given paths that is not scanned, and why (a `skipped` row)."""

    name: str
    reason: str
    detail: str


def expand(paths: Iterable[str]) -> tuple[list[Source], list[Unlisted]]:
    walk = _Walk()
    for given in paths:
        if os.path.isdir(given):
            walk.directory(given)
        else:
            walk.file(given)
    return walk.sources, walk.unlisted


class _Walk:
    def __init__(self) -> None:
        self.sources: list[Source] = []
        self.unlisted: list[Unlisted] = []
        self.seen: set[tuple[int, int]] = set()

    def directory(self, top: str) -> None:
        # os.walk does not follow links to directories (a loop would never end); each one is on record.
        for root, dirs, files in os.walk(top, onerror=self._unreadable_dir):
            dirs.sort()
            for d in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                self.unlisted.append(Unlisted(os.path.normpath(os.path.join(root, d)), NOT_FOLLOWED,
                                              "symbolic link to a directory"))
            for f in sorted(files):
                self.file(os.path.join(root, f))

    def _unreadable_dir(self, exc: OSError) -> None:
        self.unlisted.append(Unlisted(os.path.normpath(exc.filename or "?"), UNREADABLE,
                                      f"directory: {exc.strerror or type(exc).__name__}"))

    def file(self, path: str) -> None:
        name = os.path.normpath(path)
        try:
            st = os.stat(path)
        except OSError as exc:  # a dangling link, a file removed meanwhile
            self.unlisted.append(Unlisted(name, UNREADABLE, exc.strerror or type(exc).__name__))
            return
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO or a device would block or never end
            self.unlisted.append(Unlisted(name, NOT_REGULAR, _kind(st.st_mode)))
            return
        if (st.st_dev, st.st_ino) in self.seen:
            return
        self.seen.add((st.st_dev, st.st_ino))
        self.sources.append(Source(path, name, st.st_size))


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"
