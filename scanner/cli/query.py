"""`flowleaks query "SELECT …"`: read-only SQL over the findings database, shown as a table, lines,
CSV or JSON; and what every command that reads a database shares (--db, --format, the rendering, the
one line for a database that cannot be read).

The SQL runs in scanner/store/query.py (read-only: a write is refused by DuckDB itself). The table
format uses rich; `line` is one `column = value` per line, a blank line between rows (like
`duckdb -line`), and is what a table wider than the terminal is shown as unless `--format table` is
asked for. CSV and JSON are written by the store into a private temp file and streamed to stdout.

Nothing here can print a secret: the database holds previews and keyed fingerprints only.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Sequence

import click

from scanner.cli.errors import CommandError
from scanner.settings import DEFAULT_DB
from scanner.store.errors import StoreOpenError
from scanner.store.query import Connection, connect_read_only, fetch, write_result

FORMATS = ("table", "line", "csv", "json")
NARROW_FALLBACK = 250  # width of a table written to a pipe or file (no terminal to measure)


def open_read_only(db: str) -> Connection:
    """The database read-only, or its one line: exit 2 (missing, not a database, a newer schema) or
    4 (being written by a running scan)."""
    try:
        return connect_read_only(db)
    except StoreOpenError as exc:
        raise CommandError(str(exc), exit_code=exc.exit_code) from None


def db_option(f):
    return click.option("--db", default=DEFAULT_DB, show_default=True, envvar="FLOWLEAKS_DB", show_envvar=True,
                        type=click.Path(dir_okay=False), help="DuckDB database file written by a scan.")(f)


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
                        help="table (rich), line (one column = value per line, a blank line between rows), "
                             "csv (with header) or json (an array of objects). Default: table, or line when "
                             "the table is wider than the terminal ($COLUMNS).")(f)


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


def render(con: Connection, sql: str, fmt: str | None, params: Any = None, title: str | None = None) -> int:
    """Run one query and write it to stdout in `fmt`; returns the row count when known (-1 otherwise).

    Errors (syntax, unknown table, a write on the read-only connection) are InputError (exit 2).
    """
    if fmt in (None, "table", "line"):
        result = fetch(con, sql, params)
        if result is None:  # a statement without a result (SET)
            return 0
        columns, rows = result
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
        if not write_result(con, sql, fmt, tmp, params):
            return 0
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
    con = open_read_only(db)
    try:
        render(con, sql, fmt)
    finally:
        con.close()
