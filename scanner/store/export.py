"""The findings an export carries, read by SQL: JSON Lines, CSV and Parquet written by DuckDB's COPY,
and the rows scanner/report/export.py shapes into SARIF.

Exported columns are an explicit list of redacted fields (preview, keyed fingerprint, location,
rule, lifecycle); no column that could hold a value is ever selected. COPY's file is 0600 from
creation, through scanner.private (also when the file existed, and while DuckDB writes it).
"""
from __future__ import annotations

from typing import Any

import duckdb

from scanner.errors import InputError
# The one private-file writer of the project: COPY output is 0600 from creation.
from scanner.private import private_output
from scanner.store.database import utcnow
from scanner.store.sql import literal, one_line
from scanner.store.suppressions import active, matches

STATUS_FILTERS = {
    "unresolved": "f.status IN ('open', 'suppressed')",
    "open": "f.status = 'open'",
    "all": "TRUE",
}
COPY_OPTIONS = {"jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER true",
                "parquet": "FORMAT parquet, COMPRESSION zstd"}

# The only columns an export ever carries (all redacted by construction). suppression_reason: the
# reason of the suppression that names the finding, one in force first.
EXPORT_SELECT = """
SELECT f.finding_id, f.status, f.environment, e.display_name AS environment_name,
       f.flow_id, fl.display_name AS flow_name, fl.creator,
       f.run_id, coalesce(r.start_time, f.run_start) AS run_start,
       f.action, f.repetition, f.side, f.json_path, f.decoding, f.file,
       f.rule_id, f.detector, f.confidence, f.severity,
       f.preview, f.secret_length, f.fingerprint, f.visible, f.known_secret,
       f.message, f.cause, f.remediation,
       f.first_seen, f.last_seen, f.first_scan_id, f.scan_id AS last_scan_id,
       (SELECT s.reason FROM suppressions s
         WHERE {match}
         ORDER BY {active} DESC, s.created_at DESC
         LIMIT 1) AS suppression_reason
FROM findings f
LEFT JOIN flows fl ON fl.environment = f.environment AND fl.flow_id = f.flow_id
LEFT JOIN environments e ON e.environment = f.environment
LEFT JOIN runs r ON r.environment = f.environment AND r.flow_id = f.flow_id AND r.run_id = f.run_id
WHERE {where}
ORDER BY f.environment, f.flow_id, f.run_id NULLS FIRST, f.action, f.side, f.json_path, f.rule_id, f.finding_id
"""


def export_sql(status: str) -> str:
    # a literal, not a parameter: COPY takes no parameters; naive UTC like every stored timestamp
    now = "TIMESTAMP '" + utcnow().isoformat(sep=" ") + "'"
    return EXPORT_SELECT.format(where=STATUS_FILTERS[status], match=matches(), active=active(now))


def copy_findings(con: duckdb.DuckDBPyConnection, fmt: str, out: str, status: str = "unresolved") -> int:
    """jsonl / csv / parquet through DuckDB's COPY; returns the number of rows written."""
    sql = export_sql(status)
    try:
        with private_output(out):
            res = con.execute(f"COPY ({sql}) TO {literal(out)} ({COPY_OPTIONS[fmt]})").fetchall()
    except duckdb.Error as exc:
        raise InputError(f"export failed: {one_line(exc)}") from None
    return int(res[0][0]) if res and res[0][0] is not None else 0


def export_rows(con: duckdb.DuckDBPyConnection, status: str = "unresolved") -> list[dict[str, Any]]:
    """The exported findings as dicts of the export's columns (for SARIF)."""
    try:
        rel = con.sql(export_sql(status))
        cols = rel.columns
        return [dict(zip(cols, r)) for r in rel.fetchall()]
    except duckdb.Error as exc:
        raise InputError(f"export failed: {one_line(exc)}") from None
