"""What the summaries of a finished scan show, read from its database: findings by rule, skips by
reason (scanner/report/summary.py prints a sweep's or scan's, scanner/report/files_summary.py a scan-files
run's). Counts, rule ids, file names and skip details only: never a value."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from scanner.store.database import Store


@contextmanager
def _reading(db: str) -> Iterator[Callable[..., list[tuple]]]:
    """The finished scan's database, read-only, for the length of one summary."""
    store = Store(db, read_only=True)
    try:
        yield store.query
    finally:
        store.close()


@dataclass
class ScanCounts:
    kind: str | None                             # sweep | scan | record …: what ran
    new_by_rule: list[tuple[str, str, int, int]]  # (rule_id, environment, findings, distinct secrets)
    skipped: list[tuple[str, int]]               # (reason, count)
    hints: list[str]                             # scan-wide causes (nothing listed, a failed listing)


def scan_counts(db: str, scan_id: str) -> ScanCounts:
    with _reading(db) as query:
        return _scan_counts(query, scan_id)


def _scan_counts(query: Callable[..., list[tuple]], scan_id: str) -> ScanCounts:
    # new = first seen by this scan; what earlier scans reported already is a count, not a reprint
    by_rule = query(
        "SELECT rule_id, environment, count(*) AS n, count(DISTINCT fingerprint) AS secrets "
        "FROM findings WHERE first_scan_id = ? AND status = 'open' GROUP BY ALL ORDER BY n DESC, rule_id, environment",
        [scan_id])
    skipped = query("SELECT reason, count(*) FROM skipped WHERE scan_id = ? GROUP BY reason ORDER BY 2 DESC",
                    [scan_id])
    # scan-wide causes (nothing listed, a failed listing of environments) carry the fix in detail
    hints = query("SELECT DISTINCT detail FROM skipped WHERE scan_id = ? AND environment IS NULL "
                  "AND flow_id IS NULL AND detail <> '' ORDER BY 1 LIMIT 5", [scan_id])
    # the header names what ran (sweep, scan, record): the scans row is the one record of it
    kind = query("SELECT kind FROM scans WHERE scan_id = ?", [scan_id])
    return ScanCounts(kind[0][0] if kind else None, by_rule, skipped, [h[0] for h in hints])


@dataclass
class FilesCounts:
    by_rule: list[tuple[str, int, int, int]]  # (rule_id, findings, distinct secrets, files)
    by_file: list[tuple[str, int, int]]       # (file, findings, distinct secrets): the ten with most
    skipped: list[tuple[str, int, int]]       # (reason, count, files)


def files_counts(db: str, scan_id: str) -> FilesCounts:
    with _reading(db) as query:
        return _files_counts(query, scan_id)


def _files_counts(query: Callable[..., list[tuple]], scan_id: str) -> FilesCounts:
    by_rule = query("SELECT rule_id, count(*), count(DISTINCT fingerprint), count(DISTINCT file) "
                    "FROM findings WHERE scan_id = ? AND status = 'open' GROUP BY ALL "
                    "ORDER BY 2 DESC, 1", [scan_id])
    by_file = query("SELECT file, count(*), count(DISTINCT fingerprint) FROM findings "
                    "WHERE scan_id = ? AND status = 'open' GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 10",
                    [scan_id])
    skipped = query("SELECT reason, count(*), count(DISTINCT file) FROM skipped WHERE scan_id = ? "
                    "GROUP BY ALL ORDER BY 2 DESC, 1", [scan_id])
    return FilesCounts(by_rule, by_file, skipped)
