"""Why a database cannot be opened: one line naming the file and the cause, and the exit status.

Raised wherever flowleaks opens a database (a scan's Store, the read-only commands, `merge`'s
shards); scanner/errors.py counts them as expected failures, shown by their own message.
"""
from __future__ import annotations

from scanner.errors import ExpectedError


class StoreOpenError(ExpectedError, RuntimeError):
    """The database file cannot be opened. The message names the file and the cause in one line;
    `exit_code` is 2 when the path given is wrong (not a database, a folder), 4 otherwise."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class StoreBusy(StoreOpenError):
    """Another flowleaks process holds the database (DuckDB allows one writer process)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=4)


def open_error(path: str, exc: BaseException) -> StoreOpenError:
    """Why DuckDB could not open `path`, for every command that opens one (scans and `query`)."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "lock" in low:
        return StoreBusy(f"database {path} is in use by another flowleaks process; "
                         "wait for it to finish (one scan per database at a time)")
    if "not a valid duckdb database" in low:
        return StoreOpenError(f"{path} is not a DuckDB database (not a file flowleaks wrote, or damaged): "
                              "pass --db with a flowleaks database, or a new path to create one")
    if "version" in low and ("newer" in low or "older" in low or "storage" in low):
        return StoreOpenError(f"cannot open {path}: written by another DuckDB version ({text[:300]})")
    if isinstance(exc, IsADirectoryError) or "is a directory" in low:
        return StoreOpenError(f"cannot open {path}: it is a folder; --db takes a file")
    if isinstance(exc, OSError) and exc.strerror:
        return StoreOpenError(f"cannot open {path}: {exc.strerror}")
    return StoreOpenError(f"cannot open {path}: {text[:300]}", exit_code=4)
