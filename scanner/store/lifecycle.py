"""When a run finding stops being open: the service no longer serves its run. Never the clock alone.

Run history retention varies by plan (and has changed before), so a finding is resolved only on
evidence from the API:
- a complete listing of the flow's runs over a window no longer lists the run (`resolve_unlisted`), or
- reading the run answers 404 / WorkflowRunNotFound (`resolve_runs`, after `runs_to_probe` picks the
  runs worth asking about).
The leaked value may still need rotating: `exposure` keeps the history. Posture findings (detector
'posture', from flow definitions) are left to the posture code.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import duckdb

RETENTION_DAYS = 30  # the documented default: only runs older than this are worth a 404 probe
# A finding from an exported file (scan-files: `file` set) stays in that file whatever the API serves.
_OPEN_RUN_FINDING = ("f.status IN ('open', 'suppressed') AND f.run_id IS NOT NULL "
                     "AND coalesce(f.detector, '') <> 'posture' AND f.file IS NULL")
_RUN_START = ("coalesce(f.run_start, (SELECT r.start_time FROM runs r WHERE r.environment = f.environment "
              "AND r.flow_id = f.flow_id AND r.run_id = f.run_id))")


def _naive_utc(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def resolve_unlisted(con: duckdb.DuckDBPyConnection, environment: str, flow_id: str,
                     low: datetime | None, high: datetime | None, listed: Sequence[str],
                     low_exclusive: bool = False) -> int:
    """Resolve the flow's open run findings whose run started inside the listed window [low, high)
    (or (low, high) with `low_exclusive`) but was not among the runs that complete listing returned."""
    low, high = _naive_utc(low), _naive_utc(high)
    sql = (f"UPDATE findings f SET status = 'resolved' WHERE {_OPEN_RUN_FINDING} "
           "AND f.environment = $env AND f.flow_id = $flow AND NOT list_contains($listed, f.run_id)")
    params: dict = {"env": environment, "flow": flow_id, "listed": list(listed)}
    if low is not None:
        sql += f" AND {_RUN_START} {'>' if low_exclusive else '>='} $low"
        params["low"] = low
    else:
        sql += f" AND {_RUN_START} IS NOT NULL"
    if high is not None:
        sql += f" AND {_RUN_START} < $high"
        params["high"] = high
    return _count(con.execute(sql, params).fetchall())


def runs_to_probe(con: duckdb.DuckDBPyConnection, environment: str, flow_id: str, before: datetime,
                  limit: int = 500) -> list[str]:
    """Runs with open findings that started before `before` (outside the window just listed, and old
    enough that the service may have dropped them): reading each tells whether it is still served."""
    rows = con.execute(
        f"SELECT DISTINCT f.run_id FROM findings f WHERE {_OPEN_RUN_FINDING} AND f.environment = ? "
        f"AND f.flow_id = ? AND {_RUN_START} < ? ORDER BY 1 LIMIT ?",
        [environment, flow_id, _naive_utc(before), limit]).fetchall()
    return [r[0] for r in rows]


def resolve_runs(con: duckdb.DuckDBPyConnection, environment: str, flow_id: str, run_ids: Sequence[str]) -> int:
    """Resolve the open findings of runs the API answered 404 for."""
    if not run_ids:
        return 0
    return _count(con.execute(
        f"UPDATE findings f SET status = 'resolved' WHERE {_OPEN_RUN_FINDING} AND f.environment = ? "
        "AND f.flow_id = ? AND list_contains(?, f.run_id)", [environment, flow_id, list(run_ids)]).fetchall())


def _count(rows: list[tuple]) -> int:
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0
