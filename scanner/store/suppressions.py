"""Suppressions: accepted findings that stay quiet across rescans.

A suppression row holds a secret fingerprint (or, for rows written by hand, a finding_id) and
optionally a rule id; it applies to every finding with that fingerprint (or id) and rule until
`expires_at` (exclusive). `flowleaks suppress <finding_id>` resolves the finding to its fingerprint so
the suppression follows the secret wherever it shows up again.

That rule is written once, here: MATCH (which findings a suppression names) and ACTIVE (whether it is
in force), as SQL for the store, the export and the merge, and ActiveSuppressions, the same rule in
memory for a crawl that sets each new finding's status as it writes it.

    suppress            add or change one suppression (scanner/cli/suppress.py is the command)
    suppressions_sql    the `flowleaks suppressions [--stale]` listing
    apply_suppressions  after a scan: suppress / re-open findings, record last_matched_scan
"""
from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import duckdb

from scanner.errors import InputError
from scanner.store.database import Store, utcnow


def matches(s: str = "s", f: str = "f") -> str:
    """SQL: suppression row `s` names finding row `f` (its fingerprint or its finding_id), and its rule
    is unset or the finding's."""
    return (f"({s}.fingerprint = {f}.fingerprint OR {s}.fingerprint = {f}.finding_id) "
            f"AND ({s}.rule_id IS NULL OR {s}.rule_id = {f}.rule_id)")


def active(now: str = "$now", s: str = "s") -> str:
    """SQL: suppression row `s` is in force at `now` (a parameter, or a literal where none can be bound)."""
    return f"({s}.expires_at IS NULL OR {s}.expires_at > {now})"


MATCH = matches()
ACTIVE = active()


class ActiveSuppressions:
    """The suppressions in force, in memory: MATCH for the (fingerprint or finding_id, rule_id or None)
    pairs of each suppression ACTIVE now (the crawl's check of each new finding)."""

    def __init__(self, rows: Iterable[tuple[str, str | None]]):
        self._keys = {(key, rule) for key, rule in rows}

    @classmethod
    def load(cls, store: Store) -> ActiveSuppressions:
        return cls(store.con.execute(f"SELECT fingerprint, rule_id FROM suppressions s WHERE {ACTIVE}",
                                     {"now": utcnow()}).fetchall())

    def applies(self, fingerprint: str | None, finding_id: str, rule_id: str | None) -> bool:
        return any((key, None) in self._keys or (key, rule_id) in self._keys for key in (fingerprint, finding_id))

    def status(self, fingerprint: str | None, finding_id: str, rule_id: str | None) -> str:
        """The status a new finding is written with: `suppressed` or `open`."""
        return "suppressed" if self.applies(fingerprint, finding_id, rule_id) else "open"


def apply_suppressions(con: duckdb.DuckDBPyConnection, scan_id: str | None,
                       now: datetime | None = None) -> dict[str, int]:
    """Bring finding statuses in line with the suppressions table (call at the end of each scan).

    - open findings matching an active (unexpired) suppression become `suppressed`;
    - suppressed findings no active suppression covers any more (expired or deleted) become `open`;
    - resolved findings are left alone;
    - active suppressions that match a finding last seen by `scan_id` get `last_matched_scan = scan_id`.
    Returns counts {'suppressed': n, 'reopened': n, 'matched_suppressions': n}.
    """
    now = _naive_utc(now or utcnow())
    p = {"now": now}
    suppressed = _count(con.execute(
        f"UPDATE findings f SET status = 'suppressed' WHERE f.status = 'open' "
        f"AND EXISTS (SELECT 1 FROM suppressions s WHERE {MATCH} AND {ACTIVE})", p))
    reopened = _count(con.execute(
        f"UPDATE findings f SET status = 'open' WHERE f.status = 'suppressed' "
        f"AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE {MATCH} AND {ACTIVE})", p))
    matched = 0
    if scan_id is not None:
        matched = record_matches(con, "f.scan_id = $scan", scan_id, {**p, "scan": scan_id})
    return {"suppressed": suppressed, "reopened": reopened, "matched_suppressions": matched}


def record_matches(con: duckdb.DuckDBPyConnection, findings: str, scan_id: str, params: dict[str, Any]) -> int:
    """Active suppressions matching a finding of `findings` (SQL over `f`) get last_matched_scan = scan_id."""
    return _count(con.execute(
        f"UPDATE suppressions s SET last_matched_scan = $matched WHERE {ACTIVE} "
        f"AND EXISTS (SELECT 1 FROM findings f WHERE {findings} AND {MATCH})", {**params, "matched": scan_id}))


def _count(cur: duckdb.DuckDBPyConnection) -> int:
    """The row count an UPDATE returns (fetched to the end: DuckDB 2 refuses new work on a connection
    with an unfinished result)."""
    rows = cur.fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _naive_utc(dt: datetime) -> datetime:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


# -- one suppression, added or changed ------------------------------------------------------------

_HEX = re.compile(r"^[0-9a-f]+$")
NEVER = "never"  # an expiry given as 'never': an existing one is removed


def resolve_target(con: duckdb.DuckDBPyConnection, target: str, rule: str | None) -> tuple[str, str | None, str]:
    """(fingerprint to store, rule_id to store, what it was) for a finding_id or a fingerprint."""
    t = target.strip().lower()
    row = con.execute("SELECT fingerprint, rule_id FROM findings WHERE finding_id = ?", [t]).fetchall()
    row = row[0] if row else None
    if row is not None:
        if not row[0]:
            raise InputError(f"finding {t} has no fingerprint to suppress")
        return row[0], rule or row[1], "finding"
    n = con.execute("SELECT count(*) FROM findings WHERE fingerprint = ?", [t]).fetchall()[0][0]
    if n:
        return t, rule, "fingerprint"
    if len(t) == 64 and _HEX.match(t):
        return t, rule, "unseen fingerprint"  # suppress ahead of time: a fingerprint not seen yet
    raise InputError(f"no finding id or fingerprint {target!r} in the database "
                     "(finding ids: `flowleaks query \"SELECT finding_id, preview FROM open_findings\"`)")


@dataclass
class Suppressed:
    """What `suppress` did, for the command's one line."""

    updated: bool                 # an existing suppression was changed (else one was added)
    kind: str                     # finding | fingerprint | unseen fingerprint
    fingerprint: str
    rule_id: str | None
    expires_at: datetime | None   # as stored now
    preview: str | None           # of the secret, when a finding has it
    now_suppressed: int           # open findings suppressed by it now


def suppress(store: Store, target: str, reason: str | None, rule: str | None,
             expires_at: datetime | str | None) -> Suppressed:
    """Add the suppression of `target` (a finding_id or a fingerprint) and `rule`, or change the one
    there is: only what is given changes (`expires_at` None keeps an expiry, NEVER removes it). The
    open findings it names are suppressed now, not only at the next scan."""
    con = store.con
    fp, rule_id, kind = resolve_target(con, target, rule)
    key = {"fp": fp, "rule": rule_id}
    this = _this()
    with store.transaction():
        existing = con.execute(f"SELECT count(*) FROM suppressions WHERE {this}", key).fetchall()[0][0]
        if existing:
            # only what was given changes: an update of the reason must not drop the expiry
            changes: dict[str, Any] = {}
            if reason is not None:
                changes["reason"] = reason
            if expires_at is not None:
                changes["expires_at"] = None if expires_at == NEVER else expires_at
            if not changes:
                raise InputError("this suppression exists already: give --reason and/or --expires to change it")
            sets = ", ".join(f"{c} = ${c}" for c in changes)
            con.execute(f"UPDATE suppressions SET {sets} WHERE {this}", {**changes, **key})
        else:
            if reason is None:
                raise InputError("--reason is required for a new suppression")
            con.execute("INSERT INTO suppressions(fingerprint, rule_id, reason, created_at, expires_at, "
                        "created_by) VALUES (?,?,?,?,?,?)",
                        [fp, rule_id, reason, utcnow(), None if expires_at == NEVER else expires_at, _user()])
        now_expires = con.execute(f"SELECT max(expires_at) FROM suppressions WHERE {this}", key).fetchall()[0][0]
        # the findings this suppression names, at once (its expiry is the next scan's business)
        n = _count(con.execute(
            f"UPDATE findings f SET status = 'suppressed' WHERE f.status = 'open' "
            f"AND EXISTS (SELECT 1 FROM suppressions s WHERE {_this('s.')} AND {MATCH})", key))
    preview = con.execute("SELECT min(preview) FROM findings WHERE fingerprint = ?", [fp]).fetchall()[0][0]
    return Suppressed(bool(existing), kind, fp, rule_id, now_expires, preview, n)


def _this(s: str = "") -> str:
    """SQL: the suppression of $fp and $rule (a rule or NULL): one row at most."""
    return f"{s}fingerprint = $fp AND {s}rule_id IS NOT DISTINCT FROM $rule"


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return None


# -- the listing ----------------------------------------------------------------------------------

SUPPRESSIONS_SQL = """
WITH newest AS (
  -- on a merged database (flowleaks merge) the last merge speaks for the tenant: its shards' scans
  SELECT scan_id, kind, params FROM scans WHERE complete AND coalesce(kind, '') NOT IN ('lint', 'record')
  ORDER BY (kind = 'merge') DESC, started_at DESC, scan_id DESC LIMIT 1
), last_scan AS (
  SELECT scan_id FROM newest WHERE kind IS DISTINCT FROM 'merge'
  UNION ALL
  SELECT json_extract_string(shard, '$.scan_id')
  FROM newest, unnest(CAST(json_extract(params, '$.shards') AS JSON[])) AS t(shard) WHERE kind = 'merge'
)
SELECT s.fingerprint, s.rule_id, s.reason, s.created_at, s.expires_at, s.created_by,
       CASE WHEN {active} THEN 'active' ELSE 'expired' END AS state,
       (SELECT min(f.preview) FROM findings f WHERE f.fingerprint = s.fingerprint
           OR f.finding_id = s.fingerprint) AS preview,
       (SELECT count(*) FROM findings f WHERE {match} AND f.status = 'suppressed') AS suppressed_findings,
       (SELECT count(*) FROM findings f WHERE {match} AND f.status = 'open') AS open_findings,
       s.last_matched_scan,
       EXISTS (SELECT 1 FROM findings f, last_scan l WHERE {match} AND f.scan_id = l.scan_id)
           AS matched_last_scan
FROM suppressions s
{where}
ORDER BY s.created_at DESC NULLS LAST, s.fingerprint, s.rule_id
"""


def suppressions_sql(stale: bool) -> str:
    """The listing ($now: the clock it is judged by); `stale`: only those that matched no finding in
    the last complete scan."""
    where = ("WHERE EXISTS (SELECT 1 FROM last_scan) AND NOT EXISTS "
             f"(SELECT 1 FROM findings f, last_scan l WHERE {MATCH} AND f.scan_id = l.scan_id)") if stale else ""
    return SUPPRESSIONS_SQL.format(match=MATCH, active=ACTIVE, where=where)


def last_complete_scan(con: duckdb.DuckDBPyConnection) -> str | None:
    """The scan staleness is judged against: the newest complete sweep or scan."""
    rows = con.execute("SELECT scan_id FROM scans WHERE complete AND coalesce(kind, '') "
                       "NOT IN ('lint', 'record') ORDER BY started_at DESC, scan_id DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def suppression_rows(con: duckdb.DuckDBPyConnection, stale: bool = False) -> list[dict[str, Any]]:
    """The `suppressions` listing as dicts (for callers and tests)."""
    rel = con.sql(suppressions_sql(stale), params={"now": utcnow()})
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
