"""Read-only SQL over the findings database: what `flowleaks query`, `export` and `suppressions` read
through (scanner/cli/query.py shows the results).

The database is opened with `read_only=True`, so an INSERT/UPDATE/DELETE/CREATE is refused by DuckDB
itself. CSV and JSON are written by DuckDB (`COPY (query) TO … (FORMAT csv|json)`) into a file the
caller names; statements that cannot be wrapped in COPY (SHOW, DESCRIBE, PRAGMA, several statements)
fall back to the relation's own CSV writer or Python's json module.

DuckDB lets one process write a database and no other process open it meanwhile, not even read-only
(https://duckdb.org/docs/current/connect/concurrency): there is no snapshot to read while a scan runs,
so opening one says so in one line (StoreBusy, exit 4).

Nothing here can return a secret: the database holds previews and keyed fingerprints only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb

from scanner.errors import InputError
from scanner.private import open_private
from scanner.store.errors import StoreBusy, open_error
from scanner.store.schema import check_readable
from scanner.store.sql import literal, one_line
from scanner.store.views import ensure_views

# What connect_read_only hands out, for code outside the store that passes it back (it never runs SQL).
Connection = duckdb.DuckDBPyConnection


def require_database(db: str) -> None:
    """A command that reads or changes an existing database: a missing one is bad input (exit 2)."""
    if db != ":memory:" and not Path(db).is_file():
        raise InputError(f"no database at {db}: run `flowleaks sweep` first, or pass --db / set FLOWLEAKS_DB")


def connect_read_only(db: str) -> duckdb.DuckDBPyConnection:
    """Open an existing database read-only: InputError when missing (exit 2), StoreBusy while a scan
    holds it (exit 4), StoreOpenError when it is not one this flowleaks can read (a newer schema too)."""
    require_database(db)
    try:
        con = duckdb.connect(db, read_only=True)
    except (duckdb.Error, OSError) as exc:
        if "conflicting lock" in str(exc).lower():
            raise StoreBusy(busy_message(db, exc)) from None
        raise open_error(db, exc) from None  # the same one line a scan prints for the same file
    try:
        check_readable(con, db)
    except BaseException:
        con.close()
        raise
    try:
        ensure_views(con)
    except duckdb.Error:
        pass
    return con


def busy_message(db: str, exc: Exception) -> str:
    """One line for a database another process holds for writing. DuckDB offers no snapshot to read
    then (one writer process, and no reader beside it), so the honest answer is when to retry."""
    pid = re.search(r"\(PID (\d+)\)", str(exc))
    who = f" (PID {pid.group(1)})" if pid else ""
    return (f"database {db} is being written by another process{who}, most likely a running flowleaks scan; "
            "DuckDB allows no reader beside a writer, so rerun the query when the scan has finished")


def sql_error(exc: Exception) -> InputError:
    text = one_line(exc)
    if "read-only mode" in text or "read only" in text.lower():
        return InputError(f"flowleaks query is read-only; statements that change the database are refused ({text})")
    return InputError(f"SQL error: {text}")


def _strip(sql: str) -> str:
    s = sql.strip()
    while s.endswith(";"):
        s = s[:-1].rstrip()
    return s


def _relation(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> duckdb.DuckDBPyRelation | None:
    """The statement's result, None for one without (SET; a refused write would have raised).
    Errors (syntax, unknown table, a write on the read-only connection) become InputError (exit 2)."""
    try:
        return con.sql(sql, params=params) if params else con.sql(sql)
    except duckdb.Error as exc:
        raise sql_error(exc) from None


def fetch(con: duckdb.DuckDBPyConnection, sql: str,
          params: Any = None) -> tuple[list[str], list[tuple]] | None:
    """(columns, rows) of one statement, or None when it has no result."""
    rel = _relation(con, sql, params)
    if rel is None:
        return None
    try:
        return rel.columns, rel.fetchall()
    except duckdb.Error as exc:
        raise sql_error(exc) from None


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def write_result(con: duckdb.DuckDBPyConnection, sql: str, fmt: str, path: str, params: Any = None) -> bool:
    """One statement's result into `path` as csv (with header) or json (an array of objects); False
    (nothing written) when it has no result."""
    rel = _relation(con, sql, params)
    if rel is None:
        return False
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json, ARRAY true"
    copied = False
    body = _strip(sql)
    if not params and ";" not in body:
        try:
            con.execute(f"COPY ({body}) TO {literal(path)} ({options})")
            copied = True
        except duckdb.ParserException:
            copied = False  # SHOW / DESCRIBE / PRAGMA … cannot be wrapped: fall back below
        except duckdb.Error as exc:
            raise sql_error(exc) from None
    if not copied:
        try:
            if fmt == "csv":
                rel.write_csv(path, header=True)
            else:
                cols, rows = rel.columns, rel.fetchall()
                with open_private(path, "w") as f:
                    json.dump([dict(zip(cols, r)) for r in rows], f, default=_json_default,
                              ensure_ascii=False, indent=1)
                    f.write("\n")
        except duckdb.Error as exc:
            raise sql_error(exc) from None
    return True
