"""`flowleaks query "SELECT …"`: read-only SQL over the findings database.

The database is opened with `read_only=True`, so an INSERT/UPDATE/DELETE/CREATE is refused by DuckDB
itself. CSV and JSON are written by DuckDB (`COPY (query) TO … (FORMAT csv|json)`) into a private temp
file and streamed to stdout; statements that cannot be wrapped in COPY (SHOW, DESCRIBE, PRAGMA, several
statements) fall back to the relation's own CSV writer or Python's json module. The table format uses rich;
`line` is one `column = value` per line, a blank line between rows (like `duckdb -line`), and is what a
table wider than the terminal is shown as unless `--format table` is asked for.

DuckDB lets one process write a database and no other process open it meanwhile, not even read-only
(https://duckdb.org/docs/current/connect/concurrency): there is no snapshot to read while a scan runs,
so `query` says so in one line and exits 4.

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

from scanner.store.views import ensure_views

DEFAULT_DB = "flowleaks.duckdb"  # same default as config.DEFAULT_DB (kept local: no HTTP imports)
FORMATS = ("table", "line", "csv", "json")
NARROW_FALLBACK = 250  # width of a table written to a pipe or file (no terminal to measure)


class CommandError(click.ClickException):
    """A usage-level failure: message on stderr, exit 2 (or the code given)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def db_option(f):
    return click.option("--db", default=DEFAULT_DB, show_default=True, envvar="FLOWLEAKS_DB", show_envvar=True,
                        type=click.Path(dir_okay=False), help="DuckDB database file written by a scan.")(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                        help="table (rich), line (one column = value per line, a blank line between rows), "
                             "csv (with header) or json (an array of objects). Default: table, or line when "
                             "the table is wider than the terminal ($COLUMNS).")(f)


def _one_line(text: str, limit: int = 600) -> str:
    return " ".join(str(text).split())[:limit]


def connect_read_only(db: str) -> duckdb.DuckDBPyConnection:
    """Open an existing database read-only, or fail with exit 2 (missing) / 4 (held by a scan)."""
    if db != ":memory:" and not Path(db).is_file():
        raise CommandError(f"no database at {db}: run `flowleaks sweep` first, or pass --db / set FLOWLEAKS_DB")
    try:
        con = duckdb.connect(db, read_only=True)
    except (duckdb.Error, OSError) as exc:
        if "conflicting lock" in str(exc).lower():
            raise CommandError(busy_message(db, exc), exit_code=4) from None
        from scanner.store.database import open_error  # the same one line a scan prints for the same file

        err = open_error(db, exc)
        raise CommandError(str(err), exit_code=err.exit_code) from None
    try:
        ensure_views(con)
    except duckdb.Error:
        pass
    return con


def busy_message(db: str, exc: Exception) -> str:
    """One line for a database another process holds for writing. DuckDB offers no snapshot to read
    then (one writer process, and no reader beside it), so the honest answer is when to retry."""
    import re

    pid = re.search(r"\(PID (\d+)\)", str(exc))
    who = f" (PID {pid.group(1)})" if pid else ""
    return (f"database {db} is being written by another process{who}, most likely a running flowleaks scan; "
            "DuckDB allows no reader beside a writer, so rerun the query when the scan has finished")


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

    console = Console(highlight=False, width=terminal_width())  # the width the table/line choice used
    t = Table(title=title, show_lines=False)
    for c in columns:
        t.add_column(str(c), overflow="fold")
    for r in rows:
        t.add_row(*(Text(_cell(v)) for v in r))  # cells are data, never markup (`$[line 3]`, `[bold]`)
    console.print(t)
    click.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", err=True)


def print_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Each row as `column = value` lines, names right-aligned, a blank line between rows (the layout of
    `duckdb -line`): a 30-column row stays readable where a table would fold every cell."""
    names = [str(c) for c in columns]
    w = max((len(n) for n in names), default=0)
    out: list[str] = []
    for i, r in enumerate(rows):
        if i:
            out.append("")
        for name, v in zip(names, r):
            text = _cell(v).replace("\r\n", "\n").split("\n")
            out.append(f"{name:>{w}} = {text[0]}")
            out.extend(" " * (w + 3) + more for more in text[1:])  # continuation lines stay in the column
    if out:
        click.echo("\n".join(out))
    click.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", err=True)


def terminal_width() -> int:
    """$COLUMNS when set (as rich and less honour it), else the terminal's width, else a wide default."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return NARROW_FALLBACK


def table_width(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Width rich needs to show every cell unfolded: widest line per column, plus padding and borders."""
    from rich.cells import cell_len

    widths = [cell_len(str(c)) for c in columns]
    for r in rows:
        for i, v in enumerate(r):
            line = max((cell_len(x) for x in _cell(v).splitlines()), default=0)
            if line > widths[i]:
                widths[i] = line
    return sum(widths) + 3 * len(widths) + 1


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
    if fmt in (None, "table", "line"):
        try:
            columns, rows = rel.columns, rel.fetchall()
        except duckdb.Error as exc:
            raise sql_error(exc) from None
        if fmt is None:  # not asked for: a table if it fits, else one value per line
            fmt = "line" if table_width(columns, rows) > terminal_width() else "table"
        if fmt == "line":
            print_lines(columns, rows)
        else:
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

    A result wider than the terminal is shown one `column = value` per line (--format line) unless
    --format table is given.

    \b
    Examples:
      flowleaks query "SELECT * FROM findings_by_flow LIMIT 10"
      flowleaks query "SELECT * FROM open_findings" --format line
      flowleaks query "SELECT * FROM exposure" --format json > exposure.json

    Exit status: 0 done, 2 bad SQL or no database, 4 the database is being written by a running scan
    (DuckDB lets no other process read it meanwhile: rerun when the scan ends).
    """
    con = connect_read_only(db)
    try:
        render(con, sql, fmt)
    finally:
        con.close()
