"""`flowleaks export`: findings to a file as JSON Lines, CSV, Parquet or SARIF 2.1.0
(scanner/report/export.py writes them)."""
from __future__ import annotations

import click

from scanner.cli.errors import CommandError
from scanner.cli.query import db_option, open_read_only
from scanner.private import check_output_path
from scanner.report.export import EXPORT_FORMATS, export_findings
from scanner.store.export import STATUS_FILTERS


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="jsonl (one finding per line), csv, parquet, or sarif (2.1.0, for code-scanning dashboards).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write (created mode 0600, missing folders too; replaced if it exists).")
@click.option("--status", type=click.Choice(tuple(STATUS_FILTERS)), default="unresolved", show_default=True,
              help="unresolved = open + suppressed (with a status column), open, or all (resolved too).")
@db_option
def export_command(fmt: str, out: str, status: str, db: str) -> None:
    """Export findings: previews, keyed fingerprints and locations only (never a secret value).

    \b
    Examples:
      flowleaks export --format sarif --out flowleaks.sarif
      flowleaks export --format parquet --status all --out findings.parquet
    """
    check_output_path(out, "--out")  # missing folders are created, as for every output path
    con = open_read_only(db)
    try:
        try:
            n = export_findings(con, fmt, out, status)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        con.close()
    click.echo(f"exported {n} finding{'s' if n != 1 else ''} ({status}) to {out} as {fmt}", err=True)
