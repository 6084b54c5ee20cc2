"""Where the CLI keeps compiled Hyperscan databases between runs (detectors/prefilter.py).

Compiling the rule catalogue for the native pass takes ~0.3 s; every flowleaks process (and every
`scan-files` worker) would pay it. The serialised database (rule patterns only: no tenant data, no
secret) is kept in `$XDG_CACHE_HOME/flowleaks/` (default `~/.cache/flowleaks/`), a 0700 folder, one
0600 file per pattern set, written to a temporary name and renamed so that concurrent processes
never read half a file. A cache that cannot be read or written costs the compile time, nothing else.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from scanner.private import private_dir, write_private_bytes

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flowleaks"


def _load(name: str) -> bytes | None:
    try:
        return (cache_dir() / f"{name}.db").read_bytes()
    except OSError:
        return None


def _save(name: str, data: bytes) -> None:
    try:
        cache_dir().parent.mkdir(parents=True, exist_ok=True)  # ~/.cache itself: a shared, standard folder
        folder = private_dir(cache_dir())
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            write_private_bytes(tmp, data)
            os.replace(tmp, folder / f"{name}.db")
        finally:
            tmp.unlink(missing_ok=True)  # gone after the rename; after a failure, not left behind
    except OSError as exc:
        log.debug("matcher cache not written (%s): the next run compiles again", type(exc).__name__)


def install() -> None:
    from detectors.prefilter import set_database_cache

    set_database_cache(_load, _save)
