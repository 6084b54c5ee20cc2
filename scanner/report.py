"""What a person sees: live progress on stderr and the end-of-scan summary.

Both show counts, previews and redacted locations only; nothing here can print a secret because
nothing here is given one.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .store import Store

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

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()


def print_summary(db: str, outcome: Any) -> None:
    store = Store(db, read_only=True)
    try:
        by_rule = store.query(
            "SELECT rule_id, environment, count(*) AS n, count(DISTINCT fingerprint) AS secrets "
            "FROM findings WHERE scan_id = ? AND status = 'open' GROUP BY ALL ORDER BY n DESC, rule_id",
            [outcome.scan_id])
        skipped = store.query(
            "SELECT reason, count(*) FROM skipped WHERE scan_id = ? GROUP BY reason ORDER BY 2 DESC",
            [outcome.scan_id])
        # scan-wide causes (nothing listed, a failed listing of environments) carry the fix in detail
        hints = store.query("SELECT DISTINCT detail FROM skipped WHERE scan_id = ? AND environment IS NULL "
                            "AND flow_id IS NULL AND detail <> '' ORDER BY 1 LIMIT 5", [outcome.scan_id])
    finally:
        store.close()
    s, h = outcome.stats, outcome.http
    out_console.print(f"[bold]flowleaks[/bold] scan {outcome.scan_id}: "
                      f"{s.environments_scanned} environments, {s.flows_scanned}/{s.flows_planned} flows, "
                      f"{s.runs_scanned}/{s.runs_planned} runs, {s.content_fetched} content bodies "
                      f"({h['bytes_downloaded'] / 1e6:.1f} MB), {h['requests']} requests, "
                      f"{h['throttled']} throttled, {outcome.duration_s:.1f}s")
    for note in outcome.notes:
        out_console.print(note)
    if by_rule:
        t = Table(title="Open findings by rule and environment")
        for col in ("rule", "environment", "findings", "distinct secrets"):
            t.add_column(col)
        for rule, env, n, secrets in by_rule:
            t.add_row(rule, env or "-", str(n), str(secrets))
        out_console.print(t)
    else:
        out_console.print("No open findings.")
    if skipped:
        t = Table(title="Not scanned, by reason")
        t.add_column("reason")
        t.add_column("count")
        for reason, n in skipped:
            t.add_row(reason, str(n))
        out_console.print(t)
    for (hint,) in hints:
        out_console.print(f"[red]![/red] {escape(hint)}")
    scope_error = outcome.scope_error()
    if scope_error:
        verdict = f"[red]NOT AS ASKED[/red]: {escape(scope_error)}"
    elif outcome.complete:
        verdict = "[green]complete[/green]"
    else:
        verdict = "[red]INCOMPLETE[/red]: something planned was not scanned (see skipped); not a clean result"
    out_console.print(f"Scan {verdict}. Details: flowleaks query \"SELECT * FROM findings "
                      f"WHERE scan_id = '{outcome.scan_id}'\" --db {db}")
