"""Finding lifecycle helpers called at the end of a scan.

Run history is kept 30 days by the service; once a run has aged out, the leaked value can no longer be
read from it, so its findings become `resolved` (the secret may still need rotating: `exposure` keeps
the history). Posture findings (detector 'posture', from flow definitions) are left to the posture code.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb

RETENTION_DAYS = 30


def resolve_aged_out(con: duckdb.DuckDBPyConnection, now: datetime,
                     retention_days: int = RETENTION_DAYS) -> int:
    """Mark run findings `resolved` when their run started more than `retention_days` before `now`.

    The run start is the finding's `run_start`, else the `runs` row's `start_time`; a finding with
    neither is left alone. Open and suppressed findings are resolved; returns how many changed.
    """
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    cutoff = now - timedelta(days=retention_days)
    rows = con.execute(
        """
        UPDATE findings f SET status = 'resolved'
        WHERE f.status IN ('open', 'suppressed')
          AND f.run_id IS NOT NULL
          AND coalesce(f.detector, '') <> 'posture'
          AND coalesce(f.run_start,
                       (SELECT r.start_time FROM runs r WHERE r.environment = f.environment
                          AND r.flow_id = f.flow_id AND r.run_id = f.run_id)) < $cutoff
        """, {"cutoff": cutoff}).fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0
