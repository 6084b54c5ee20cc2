"""`flowleaks query "SELECT …"`: read-only SQL over the findings database.

The database is opened with `read_only=True`, so an INSERT/UPDATE/DELETE/CREATE is refused by DuckDB
itself. CSV and JSON are written by DuckDB (`COPY (query) TO … (FORMAT csv|json)`) into a private temp
file and streamed to stdout; statements that cannot be wrapped in COPY (SHOW, DESCRIBE, PRAGMA, several
statements) fall back to the relation's own CSV writer or Python's json module. The table format uses rich.

Nothing here can print a secret: the database holds previews and keyed fingerprints only.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import click
import duckdb

from .views import ensure_views

DEFAULT_DB = "flowleaks.duckdb"  # same default as config.DEFAULT_DB (kept local: no HTTP imports)
FORMATS = ("table", "csv", "json")


class CommandError(click.ClickException):
    """A usage-level failure: message on stderr, exit 2 (or the code given)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def db_option(f):
    return click.option("--db", default=DEFAULT_DB, show_default=True, envvar="FLOWLEAKS_DB", show_envvar=True,
                        type=click.Path(dir_okay=False), help="DuckDB database file written by a scan.")(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="table (rich), csv (with header) or json (an array of objects).")(f)


def _one_line(text: str, limit: int = 600) -> str:
    return " ".join(str(text).split())[:limit]


def connect_read_only(db: str) -> duckdb.DuckDBPyConnection:
    """Open an existing database read-only, or fail with exit 2 (missing) / 4 (held by a scan)."""
    if db != ":memory:" and not Path(db).is_file():
        raise CommandError(f"no database at {db}: run `flowleaks sweep` first, or pass --db / set FLOWLEAKS_DB")
    try:
        con = duckdb.connect(db, read_only=True)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise CommandError(f"database {db} is in use by a running flowleaks scan; retry when it ends",
                               exit_code=4) from None
        raise CommandError(f"cannot open {db}: {_one_line(exc)}") from None
    try:
        ensure_views(con)
    except duckdb.Error:
        pass
    return con


def sql_error(exc: Exception) -> CommandError:
    text = _one_line(exc)
    if "read-only mode" in text or "read only" in text.lower():
        return CommandError(f"flowleaks query is read-only; statements that change the database are refused ({text})")
    return CommandError(f"SQL error: {text}")


def _strip(sql: str) -> str:
    s = sql.strip()
    while s.endswith(";"):
        s = s[:-1].rstrip()
    return s


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stream_file(path: str) -> None:
    sys.stdout.flush()
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # a text-only stdout (some embedders)
        with open(path, encoding="utf-8", errors="replace") as f:
            shutil.copyfileobj(f, sys.stdout)
        sys.stdout.flush()
        return
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out)
    out.flush()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{_cell(k)}: {_cell(x)}" for k, x in v.items())
    return str(v)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(str(c), overflow="fold")
    for r in rows:
        t.add_row(*(Text(_cell(v)) for v in r))  # cells are data, never markup (`$[line 3]`, `[bold]`)
    console.print(t)
    click.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", err=True)


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def render(con: duckdb.DuckDBPyConnection, sql: str, fmt: str, params: Sequence[Any] | None = None,
           title: str | None = None) -> int:
    """Run one query and write it to stdout in `fmt`; returns the row count when known (-1 otherwise).

    Errors (syntax, unknown table, a write on the read-only connection) become CommandError (exit 2).
    """
    try:
        rel = con.sql(sql, params=params) if params else con.sql(sql)
    except duckdb.Error as exc:
        raise sql_error(exc) from None
    if rel is None:  # a statement without a result (SET, a refused write would have raised)
        return 0
    if fmt == "table":
        try:
            columns, rows = rel.columns, rel.fetchall()
        except duckdb.Error as exc:
            raise sql_error(exc) from None
        print_table(columns, rows, title)
        return len(rows)
    tmpdir = tempfile.mkdtemp(prefix="flowleaks-query-")  # 0700
    try:
        tmp = os.path.join(tmpdir, "out")
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json, ARRAY true"
        copied = False
        body = _strip(sql)
        if not params and ";" not in body:
            try:
                con.execute(f"COPY ({body}) TO {_sql_literal(tmp)} ({options})")
                copied = True
            except duckdb.ParserException:
                copied = False  # SHOW / DESCRIBE / PRAGMA … cannot be wrapped: fall back below
            except duckdb.Error as exc:
                raise sql_error(exc) from None
        if not copied:
            try:
                if fmt == "csv":
                    rel.write_csv(tmp, header=True)
                else:
                    cols, rows = rel.columns, rel.fetchall()
                    with open(tmp, "w", encoding="utf-8") as f:
                        json.dump([dict(zip(cols, r)) for r in rows], f, default=_json_default,
                                  ensure_ascii=False, indent=1)
                        f.write("\n")
            except duckdb.Error as exc:
                raise sql_error(exc) from None
        _stream_file(tmp)
        return -1
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


@click.command("query")
@click.argument("sql")
@db_option
@format_option
def query_command(sql: str, db: str, fmt: str) -> None:
    """Run read-only SQL over the findings database.

    Tables: scans, environments, flows, runs, actions, findings, skipped, filtered, watermarks,
    suppressions. Views: open_findings, findings_by_flow, exposure, coverage, skipped_by_reason,
    filtered_by_rule, connectors_involved. Ready queries: docs/queries.md.

    \b
    Examples:
      flowleaks query "SELECT * FROM findings_by_flow LIMIT 10"
      flowleaks query "SELECT * FROM exposure" --format json > exposure.json
    """
    con = connect_read_only(db)
    try:
        render(con, sql, fmt)
    finally:
        con.close()
