"""What a person and a scheduler see of a scan-files run (scanner/files/scan.py): the progress bar on
stderr, the summary on stdout, in the house style of scanner/report/summary.py, and the --summary-json
file.

The command (scanner/cli/scan_files.py) makes the bar and hands it to the run, which knows when the
files are listed and each is done; the run itself prints nothing.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from scanner.files.scan import KIND, FilesOutcome
from scanner.skip_reasons import NON_BLOCKING_SKIPS
from scanner.store.summaries import files_counts


class FilesProgress:
    """A rich progress bar on stderr (files, MB, MB/s) for scanner.files.scan.ScanProgress; nothing
    when disabled (--quiet). It is told counts and sizes only."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar: Any = None
        self.files = 0

    def start(self, files: int, size: int) -> None:
        if not self.enabled:
            return
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TransferSpeedColumn)

        from scanner.report.summary import err_console

        self.bar = Progress(TextColumn("scanning"), BarColumn(), TextColumn(f"{{task.fields[files]}}/{files} files"),
                            DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(), console=err_console)
        self.task = self.bar.add_task("scan", total=size or None, files=0)
        self.bar.start()

    def advance(self, size: int) -> None:
        if self.bar is not None:
            self.files += 1
            self.bar.update(self.task, advance=size, files=self.files)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_files_summary(db: str, outcome: FilesOutcome) -> None:
    """Counts, open findings by rule, the files with most of them, skipped by reason, the verdict
    (the house style of report.print_summary)."""
    from rich.markup import escape

    from scanner.report.summary import out_console

    counts = files_counts(db, outcome.scan_id)
    by_rule, by_file, skipped = counts.by_rule, counts.by_file, counts.skipped
    o = outcome
    out_console.print(f"[bold]flowleaks[/bold] scan-files {o.scan_id}: {o.files_scanned}/{o.files_planned} files, "
                      f"{o.bodies} bodies, {o.bytes_on_disk / 1e6:.1f} MB ({o.bytes_read / 1e6:.1f} MB read), "
                      f"{o.jobs} jobs, {o.duration_s:.1f}s ({o.mb_per_s:.2f} MB/s)")
    for note in o.notes:
        out_console.print(escape(note))
    if by_rule:
        out_console.print(_table("Open findings by rule", ("rule", "findings", "distinct secrets", "files"), by_rule))
        out_console.print(_table("Files with most open findings", ("file", "findings", "distinct secrets"),
                                 [(escape(str(f)), n, s) for f, n, s in by_file]))
    else:
        out_console.print("No open findings.")
    if skipped:
        out_console.print(_table("Not scanned (or scanned as text), by reason", ("reason", "count", "files"),
                                 [(r if r in NON_BLOCKING_SKIPS else f"{r} (blocking)", n, f) for r, n, f in skipped]))
    verdict = ("[green]complete[/green]" if o.complete else
               "[red]INCOMPLETE[/red]: something was not scanned (see skipped); not a clean result")
    out_console.print(f"Scan {verdict}. Details: flowleaks query \"SELECT file, json_path, rule_id, preview FROM "
                      f"findings WHERE scan_id = '{o.scan_id}'\" --db {escape(db)}")


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]):
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r))
    return t


def write_files_summary_json(path: str, outcome: FilesOutcome) -> None:
    """The scheduler's view (mode 0600): counts, completeness, duration, throughput."""
    import json

    from scanner.private import write_private_text

    o = outcome
    data = {"scan_id": o.scan_id, "kind": KIND, "complete": o.complete, "exit_code": o.exit_code,
            "duration_s": round(o.duration_s, 3), "open_findings": o.open_findings, "findings_seen": o.findings,
            "files": {"planned": o.files_planned, "scanned": o.files_scanned}, "bodies": o.bodies,
            "bytes_on_disk": o.bytes_on_disk, "bytes_read": o.bytes_read, "mb_per_s": round(o.mb_per_s, 3),
            "jobs": o.jobs, "skipped": dict(o.skipped), "skipped_blocking": o.blocking}
    write_private_text(path, json.dumps(data, indent=2))
