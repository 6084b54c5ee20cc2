"""What a person sees: live progress on stderr and the end-of-scan summary.

Both show counts, previews and redacted locations only; nothing here can print a secret because
nothing here is given one.
"""
from __future__ import annotations

import shlex
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scanner.store.summaries import scan_counts

err_console = Console(stderr=True, highlight=False)
# Piped or logged output gets room for environment names instead of rich's 80-column default.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


class Progress:
    """One status line on stderr (a live line on a terminal, a line every few seconds otherwise)."""

    def __init__(self, enabled: bool = True, every_s: float = 5.0):
        self.enabled = enabled
        self.every_s = every_s if not err_console.is_terminal else 0.5
        self.last = 0.0
        self.status = None
        if enabled and err_console.is_terminal:
            self.status = err_console.status("starting…")
            self.status.start()

    def __call__(self, stats: Any, http: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        line = (f"envs {stats.environments_scanned}/{stats.environments_planned}  "
                f"flows {stats.flows_scanned}/{stats.flows_planned}  "
                f"runs {stats.runs_scanned}/{stats.runs_planned}  "
                f"content {stats.content_fetched} ({http.stats.bytes_downloaded / 1e6:.1f} MB)  "
                f"429s {http.stats.throttled} (waited {http.stats.throttle_wait_s:.1f}s)  "
                f"findings {stats.findings}  skipped {sum(stats.skipped.values())}")
        if self.status is not None:
            self.status.update(line)
        else:
            err_console.print(line)

    def retrying(self, line: str) -> None:
        """A retry shown at once (host, why, attempt): a wait on a dead host must not look like a hang.
        The line comes from http.py: a host and a fixed reason, never a URL query."""
        if not self.enabled:
            return
        if self.status is not None:
            self.status.update(escape(line))
        else:
            err_console.print(escape(line), soft_wrap=True)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


def print_summary(db: str, outcome: Any) -> None:
    counts = scan_counts(db, outcome.scan_id)
    kind, by_rule, skipped = counts.kind, counts.new_by_rule, counts.skipped
    s, h = outcome.stats, outcome.http
    out_console.print(f"[bold]flowleaks[/bold] {escape(kind or 'scan')} {outcome.scan_id}: "
                      f"{s.environments_scanned} environments, {s.flows_scanned}/{s.flows_planned} flows, "
                      f"{s.runs_scanned}/{s.runs_planned} runs, {s.content_fetched} content bodies "
                      f"({h['bytes_downloaded'] / 1e6:.1f} MB), {h['requests']} requests, "
                      f"{h['throttled']} throttled, {outcome.duration_s:.1f}s")
    for note in outcome.notes:
        # a vault or file name is data, not markup; one note stays one line (grep, logs)
        out_console.print(escape(note), soft_wrap=True)
    new, old = outcome.new_findings, outcome.old_open_findings
    if by_rule:
        t = Table(title=f"{new} new open finding{'s' if new != 1 else ''} (first seen in this scan), "
                        "by rule and environment")
        for col in ("rule", "environment", "findings", "distinct secrets"):
            t.add_column(col)
        for rule, env, n, secrets in by_rule:
            t.add_row(rule, env or "-", str(n), str(secrets))
        out_console.print(t)
    elif old:
        out_console.print("No new findings.")
    if old:
        out_console.print(f"{old} older finding{'s' if old != 1 else ''} still open (first seen in an earlier "
                          f"scan): flowleaks query \"SELECT * FROM open_findings WHERE first_scan_id <> "
                          f"'{outcome.scan_id}'\" --db {escape(db)}", soft_wrap=True)
    elif not by_rule:
        out_console.print("No open findings.")
    if skipped:
        t = Table(title="Not scanned, by reason")
        t.add_column("reason")
        t.add_column("count")
        for reason, n in skipped:
            t.add_row(reason, str(n))
        out_console.print(t)
    for hint in counts.hints:
        out_console.print(f"[red]![/red] {escape(hint)}")
    scope_error = outcome.scope_error()
    if scope_error:
        verdict = f"[red]NOT AS ASKED[/red]: {escape(scope_error)}"
    elif outcome.complete:
        verdict = "[green]complete[/green]"
    else:
        verdict = "[red]INCOMPLETE[/red]: something planned was not scanned (see skipped); not a clean result"
    out_console.print(f"Scan {verdict}. Details:")
    # the command alone on its line, never wrapped by rich (a wrap inside `--db` breaks the paste),
    # the database path shell-quoted, no markup: it is pasted into a shell as printed
    # an incomplete scan's question is what was not scanned and why: point at `skipped`, not `findings`
    table, columns = ("findings", "*") if outcome.complete or scope_error else (
        "skipped", "reason, detail, environment, flow_id, run_id, action")
    out_console.print(f"  flowleaks query \"SELECT {columns} FROM {table} "
                      f"WHERE scan_id = '{outcome.scan_id}'\" --db {shlex.quote(db)}",
                      markup=False, highlight=False, soft_wrap=True)
