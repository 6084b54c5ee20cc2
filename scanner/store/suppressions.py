"""Suppressions: accepted findings that stay quiet across rescans.

A suppression row holds a secret fingerprint (or, for rows written by hand, a finding_id) and
optionally a rule id; it applies to every finding with that fingerprint (or id) and rule until
`expires_at` (exclusive). `flowleaks suppress <finding_id>` resolves the finding to its fingerprint so
the suppression follows the secret wherever it shows up again.

    suppress_command       flowleaks suppress <finding_id|fingerprint> --reason … [--rule] [--expires]
    suppressions_command   flowleaks suppressions [--stale]
    apply_suppressions     after a scan: suppress / re-open findings, record last_matched_scan
"""
from __future__ import annotations

import getpass
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import duckdb

from scanner.store.query import CommandError, connect_read_only, db_option, format_option, render
from scanner.store.database import Store, utcnow

_HEX = re.compile(r"^[0-9a-f]+$")

# A finding matches a suppression row (alias s) when the fingerprint or finding_id is named and
# the rule is unset or equal. `f` is the findings alias.
MATCH = ("(s.fingerprint = f.fingerprint OR s.fingerprint = f.finding_id) "
         "AND (s.rule_id IS NULL OR s.rule_id = f.rule_id)")
ACTIVE = "(s.expires_at IS NULL OR s.expires_at > $now)"


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
        matched = _count(con.execute(
            f"UPDATE suppressions s SET last_matched_scan = $scan WHERE {ACTIVE} "
            f"AND EXISTS (SELECT 1 FROM findings f WHERE f.scan_id = $scan AND {MATCH})",
            {**p, "scan": scan_id}))
    return {"suppressed": suppressed, "reopened": reopened, "matched_suppressions": matched}


def _count(cur: duckdb.DuckDBPyConnection) -> int:
    """The row count an UPDATE returns (fetched to the end: DuckDB 2 refuses new work on a connection
    with an unfinished result)."""
    rows = cur.fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def _naive_utc(dt: datetime) -> datetime:
    if dt.tzinfo is not None:
        from datetime import timezone

        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


NEVER = "never"


def _parse_expires(value: str | None) -> datetime | None | str:
    """None: not given (an update keeps the old expiry); NEVER: remove it; else the end, 00:00 UTC."""
    if value is None:
        return None
    if value.strip().lower() == NEVER:
        return NEVER
    try:
        d = date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD or 'never', got {value!r}", param_hint="--expires") from None
    at = datetime(d.year, d.month, d.day)
    if at <= utcnow():
        raise click.BadParameter(f"{value} is not in the future (the suppression ends at 00:00 UTC that day)",
                                 param_hint="--expires")
    return at


def known_rule_ids() -> set[str]:
    """Every rule id a finding can carry: the detectors' rules and the posture rules (PA001…)."""
    from detectors.engine import rules_by_id

    from scanner.posture import RULES as POSTURE_RULES

    return set(rules_by_id()) | set(POSTURE_RULES)


def check_rule(rule: str | None) -> str | None:
    """The rule id as the findings spell it, or CommandError (exit 2): a typo would otherwise be stored
    as a suppression that never matches anything, and the finding it was meant for stays open."""
    if rule is None:
        return None
    import difflib

    known = known_rule_ids()
    by_folded = {r.lower(): r for r in known}
    found = by_folded.get(rule.strip().lower())
    if found:
        return found
    close = difflib.get_close_matches(rule.strip().lower(), list(by_folded), n=1)
    hint = f"did you mean {by_folded[close[0]]}? " if close else ""
    raise CommandError(f"--rule: {rule!r} is not a flowleaks rule id; {hint}known: "
                       f"{', '.join(sorted(known, key=lambda r: (r.startswith('PA'), r)))}")


def resolve_target(con: duckdb.DuckDBPyConnection, target: str, rule: str | None) -> tuple[str, str | None, str]:
    """(fingerprint to store, rule_id to store, what it was) for a finding_id or a fingerprint."""
    t = target.strip().lower()
    row = con.execute("SELECT fingerprint, rule_id FROM findings WHERE finding_id = ?", [t]).fetchall()
    row = row[0] if row else None
    if row is not None:
        if not row[0]:
            raise CommandError(f"finding {t} has no fingerprint to suppress")
        return row[0], rule or row[1], "finding"
    n = con.execute("SELECT count(*) FROM findings WHERE fingerprint = ?", [t]).fetchall()[0][0]
    if n:
        return t, rule, "fingerprint"
    if len(t) == 64 and _HEX.match(t):
        return t, rule, "unseen fingerprint"  # suppress ahead of time: a fingerprint not seen yet
    raise CommandError(f"no finding id or fingerprint {target!r} in the database "
                       "(finding ids: `flowleaks query \"SELECT finding_id, preview FROM open_findings\"`)")


@click.command("suppress")
@click.argument("target", metavar="FINDING_ID|FINGERPRINT")
@click.option("--reason", help="Why this is accepted (kept with the suppression). Required for a new "
                               "suppression; on an existing one, replaces its reason.")
@click.option("--rule", "rule", help="Only findings of this rule id (default: the finding's rule when a "
                                     "finding id is given, else every rule).")
@click.option("--expires", help="YYYY-MM-DD: the suppression stops applying at 00:00 UTC that day; "
                                "'never' removes an expiry. Not given: an existing expiry is kept.")
@db_option
def suppress_command(target: str, reason: str | None, rule: str | None, expires: str | None, db: str) -> None:
    """Accept a finding (or a secret, by fingerprint) so it is reported as suppressed, not open.

    A finding id is resolved to its secret's fingerprint: the suppression covers that secret wherever it
    appears (with the same rule), now and in later scans. Run again on the same secret and rule to
    change it: only what is given (--reason, --expires) changes; the rest is kept.

    \b
    Examples:
      flowleaks suppress 3f2a…c9 --reason "test tenant key, rotated" --expires 2025-12-31
      flowleaks suppress <fingerprint> --reason "public sample key"
      flowleaks suppress 3f2a…c9 --expires 2026-06-30      # extend; the reason stays
    """
    if reason is not None and not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    expires_at = _parse_expires(expires)
    rule = check_rule(rule)
    if db != ":memory:" and not Path(db).is_file():
        raise CommandError(f"no database at {db}: run `flowleaks sweep` first, or pass --db / set FLOWLEAKS_DB")
    store = Store(db)
    try:
        con = store.con
        fp, rule_id, kind = resolve_target(con, target, rule)
        key = [fp, rule_id]
        where = "WHERE fingerprint = ? AND rule_id IS NOT DISTINCT FROM ?"
        with store.transaction():
            existing = con.execute(f"SELECT count(*) FROM suppressions {where}", key).fetchall()[0][0]
            if existing:
                # only what was given changes: an update of the reason must not drop the expiry
                changes: dict[str, Any] = {}
                if reason is not None:
                    changes["reason"] = reason
                if expires_at is not None:
                    changes["expires_at"] = None if expires_at == NEVER else expires_at
                if not changes:
                    raise CommandError("this suppression exists already: give --reason and/or --expires "
                                       "to change it")
                sets = ", ".join(f"{c} = ?" for c in changes)
                con.execute(f"UPDATE suppressions SET {sets} {where}", [*changes.values(), *key])
            else:
                if reason is None:
                    raise CommandError("--reason is required for a new suppression")
                con.execute("INSERT INTO suppressions(fingerprint, rule_id, reason, created_at, expires_at, "
                            "created_by) VALUES (?,?,?,?,?,?)",
                            [fp, rule_id, reason, utcnow(), None if expires_at == NEVER else expires_at,
                             _user()])
            now_expires = con.execute(f"SELECT max(expires_at) FROM suppressions {where}", key).fetchall()[0][0]
            n = _count(con.execute(
                "UPDATE findings SET status = 'suppressed' WHERE status = 'open' AND fingerprint = ? "
                "AND (CAST(? AS VARCHAR) IS NULL OR rule_id = ?)", [fp, rule_id, rule_id]))
        preview = con.execute("SELECT min(preview) FROM findings WHERE fingerprint = ?", [fp]).fetchall()[0][0]
    finally:
        store.close()
    scope = f"rule {rule_id}" if rule_id else "every rule"
    until = f" until {now_expires.date()}" if now_expires else " with no expiry"
    verb = "updated" if existing else "added"
    click.echo(f"suppression {verb} for {kind} {preview or fp[:16] + '…'} ({scope}){until}; "
               f"{n} open finding{'s' if n != 1 else ''} now suppressed")


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
       CASE WHEN s.expires_at IS NULL OR s.expires_at > $now THEN 'active' ELSE 'expired' END AS state,
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
    where = ("WHERE EXISTS (SELECT 1 FROM last_scan) AND NOT EXISTS "
             f"(SELECT 1 FROM findings f, last_scan l WHERE {MATCH} AND f.scan_id = l.scan_id)") if stale else ""
    return SUPPRESSIONS_SQL.format(match=MATCH, where=where)


@click.command("suppressions")
@click.option("--stale", is_flag=True,
              help="Only suppressions that matched no finding in the last complete scan (candidates to remove).")
@db_option
@format_option
def suppressions_command(stale: bool, db: str, fmt: str) -> None:
    """List suppressions with their state and how many findings they cover.

    \b
    Examples:
      flowleaks suppressions
      flowleaks suppressions --stale --format csv
    """
    con = connect_read_only(db)
    try:
        if stale:
            last = con.execute("SELECT scan_id FROM scans WHERE complete AND coalesce(kind, '') "
                               "NOT IN ('lint', 'record') ORDER BY started_at DESC, scan_id DESC LIMIT 1").fetchall()
            last = last[0] if last else None
            if last is None:
                raise CommandError("no complete scan yet: staleness is judged against the last complete scan")
            if fmt in (None, "table", "line"):
                click.echo(f"suppressions that matched nothing in scan {last[0]}:", err=True)
        render(con, suppressions_sql(stale), fmt, params={"now": utcnow()},
               title="Stale suppressions" if stale else "Suppressions")
    finally:
        con.close()


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return None


def suppression_rows(con: duckdb.DuckDBPyConnection, stale: bool = False) -> list[dict[str, Any]]:
    """The `suppressions` listing as dicts (for callers and tests)."""
    rel = con.sql(suppressions_sql(stale), params={"now": utcnow()})
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
