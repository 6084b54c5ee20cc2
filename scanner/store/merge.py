"""`flowleaks merge OUT.duckdb SHARD.duckdb…`: the shard databases of one tenant, as one database.

`scan --shard K/N` (or `sweep --shard K/N`) makes one process scan only the flows that hash to shard K
of N, into its own database. `merge` combines them into OUT so that OUT holds, row for row, what one
process scanning the whole tenant would have written (only the columns naming a scan and wall-clock
times differ). Everything is done by DuckDB: each shard is ATTACHed READ_ONLY and copied with
set-based SQL in one transaction on OUT.

    tables with a primary key   the shard's rows replace OUT's (a shard owns its flows); a row in
                                several shards (environments: every shard lists them) is taken
                                from the newest scan
    skipped, filtered           OUT's rows of the shards' scans are replaced by the shards' rows, so
                                merging again never duplicates; a tenant-level row (no flow: a vault
                                or environment that failed, which every shard records) is kept once
                                per night (the shard's n-th finished scan), as one process records it
    content_results             union (a cache: nothing to replace)
    suppressions                OUT's are kept; a shard's are added when OUT has none for that
                                fingerprint and rule
    scans                       every shard scan is copied (a shard scan still `running` died: it
                                is copied as `interrupted`), plus one `merge` scan per set of
                                shard scans merged (its id is derived from them: merging the same
                                shards again replaces it)

Before anything is written, every database is checked: a flowleaks database, of this schema version,
with the same fingerprint key (by key id: `meta.fingerprint_key_id`, never the key), tenant and Flow
API; each given database holds one shard, no index twice, one shard count N. A refusal is one line
and exit 2, and OUT is not touched (nor created).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import click
import duckdb

from scanner.store.query import CommandError, _sql_literal
from scanner.redact import redact_url
from scanner.store.database import SCHEMA_VERSION, Store, StoreOpenError, utcnow
from scanner.store.suppressions import ACTIVE, MATCH, apply_suppressions
from scanner.pipeline.sweep import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, EXIT_INCOMPLETE

KIND = "merge"
SCAN_KINDS = ("sweep", "scan")       # the kinds `--shard` applies to
IDENTITY = ("tenant", "flow_api")    # meta keys that must agree ("another tenant")
KEY_ID = "fingerprint_key_id"
# Columns that name a scan or a wall-clock time: not part of what a tenant-level row says.
_NOT_CONTENT = frozenset({"scan_id", "recorded_at"})
# Shown in the summary, in this order (other tables follow).
_SUMMARY_TABLES = ("findings", "runs", "flows", "actions", "skipped", "filtered", "watermarks",
                   "environments", "content_results", "suppressions", "scans")


@dataclass
class Db:
    """What the checks need to know about one database (read before anything is written)."""

    path: str
    alias: str
    meta: dict[str, str]
    scans: list[dict[str, Any]]          # oldest first
    shard: tuple[int, int] | None = None  # (index, count) of its latest sweep/scan
    latest: dict[str, Any] | None = None  # its latest sweep/scan

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class Plan:
    shards: list[Db]
    count: int
    missing: list[int]
    scan_id: str
    complete: bool


class Refused(CommandError):
    """A database that cannot be merged: one line, exit 2, nothing written."""


# -- reading a database ---------------------------------------------------------------------------

def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _attach(con: duckdb.DuckDBPyConnection, path: str, alias: str, role: str) -> None:
    """ATTACH read-only; a file that is not a DuckDB database (or not there) is refused by name."""
    try:
        con.execute(f"ATTACH {_sql_literal(path)} AS {_ident(alias)} (TYPE duckdb, READ_ONLY)")
    except (duckdb.Error, OSError) as exc:
        text = " ".join(str(exc).split())
        low = text.lower()
        if "lock" in low:
            raise CommandError(f"{role} {path} is in use by another process (most likely a running flowleaks "
                               "scan); DuckDB allows no reader beside a writer: merge when it has finished",
                               exit_code=EXIT_ERROR) from None
        if "not a valid duckdb database" in low:
            raise Refused(f"{role} {path} is not a flowleaks database (not a DuckDB file)") from None
        if "is a directory" in low:
            raise Refused(f"{role} {path} is a folder, not a flowleaks database") from None
        if "version" in low and ("newer" in low or "older" in low or "storage" in low):
            raise Refused(f"{role} {path} was written by another DuckDB version ({text[:200]})") from None
        raise Refused(f"cannot open {role} {path}: {text[:200]}") from None


def _inspect(con: duckdb.DuckDBPyConnection, path: str, alias: str, role: str) -> Db:
    a = _ident(alias)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'",
        [alias]).fetchall()}
    not_ours = Refused(f"{role} {path} is not a flowleaks database (a DuckDB file without flowleaks' tables)")
    if not {"meta", "scans"} <= tables:
        raise not_ours
    try:
        meta = {str(k): ("" if v is None else str(v)) for k, v in
                con.execute(f"SELECT key, value FROM {a}.main.meta").fetchall()}
        rows = con.execute(f"SELECT scan_id, kind, started_at, finished_at, status, complete, params "
                           f"FROM {a}.main.scans ORDER BY started_at NULLS FIRST, scan_id").fetchall()
    except duckdb.Error:
        raise not_ours from None
    if "schema_version" not in meta:
        raise not_ours
    if meta["schema_version"] != str(SCHEMA_VERSION):
        raise Refused(f"{role} {path} has schema version {meta['schema_version']}, this flowleaks merges schema "
                      f"version {SCHEMA_VERSION} only (scan it again with this version, or merge with the "
                      "version that wrote it)")
    cols = ("scan_id", "kind", "started_at", "finished_at", "status", "complete", "params")
    scans = [dict(zip(cols, r)) for r in rows]
    for s in scans:
        s["params"] = _params(s["params"])
        if s["status"] == "running":  # we could attach it: nobody holds the database, the scan died
            s["status"], s["complete"] = "interrupted", False
    db = Db(path, alias, meta, scans)
    sweeps = [s for s in scans if s["kind"] in SCAN_KINDS]
    if sweeps:
        db.latest = sweeps[-1]
        db.shard = _shard_of(db.latest)
    return db


def _params(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _shard_of(scan: dict[str, Any]) -> tuple[int, int] | None:
    sh = scan["params"].get("shard")
    if not isinstance(sh, dict):
        return None
    index, count = sh.get("index"), sh.get("count")
    if type(index) is not int or type(count) is not int or not 0 <= index < count:
        return None
    return index, count


# -- the checks -----------------------------------------------------------------------------------

def _same_api(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def check(out: Db | None, shards: Sequence[Db]) -> Plan:
    """Refuse what cannot be merged (Refused: exit 2); else what the merge will claim."""
    for db in shards:
        if KEY_ID not in db.meta:
            raise Refused(f"SHARD {db.path} does not record its fingerprint key id (no flowleaks scan of this "
                          "version wrote it): scan it again with this version before merging")
        kinds = {s["kind"] for s in db.scans}
        if KIND in kinds:
            raise Refused(f"SHARD {db.path} is a merged database, not a shard: give it as OUT, or merge the "
                          "shard databases it came from")
        if db.shard is None:
            what = "has no sweep or scan" if db.latest is None else "was not scanned with --shard K/N"
            raise Refused(f"SHARD {db.path} is not a shard database: it {what} (only OUT may be a database "
                          "without a shard)")
        others = {_shard_of(s) for s in db.scans if s["kind"] in SCAN_KINDS} - {db.shard}
        if others:
            other = sorted(others, key=lambda s: (s is None, s or (0, 0)))[0]
            said = "a scan without --shard" if other is None else f"shard {other[0]}/{other[1]}"
            raise Refused(f"SHARD {db.path} holds scans of shard {db.shard[0]}/{db.shard[1]} and of {said}: a "
                          "shard database must hold one shard (scan each shard into its own database)")
    first = shards[0]
    for db in [*shards[1:], *([out] if out is not None else [])]:
        role = "OUT" if db is out else "SHARD"
        key = db.meta.get(KEY_ID)
        if key is not None and key != first.meta[KEY_ID]:
            raise Refused(f"{role} {db.path} was scanned with another fingerprint key than {first.path}: its "
                          "fingerprints cannot be compared (give every shard the same FLOWLEAKS_FINGERPRINT_KEY)")
        tenant = db.meta.get("tenant")
        if tenant is not None and "tenant" in first.meta and tenant != first.meta["tenant"]:
            raise Refused(f"{role} {db.path} is of another tenant than {first.path} "
                          f"(tenant {tenant or 'unknown'} vs {first.meta['tenant'] or 'unknown'})")
        api = db.meta.get("flow_api")
        if api is not None and "flow_api" in first.meta and not _same_api(api, first.meta["flow_api"]):
            raise Refused(f"{role} {db.path} is of another tenant than {first.path} (Flow API "
                          f"{redact_url(api)} vs {redact_url(first.meta['flow_api'])})")
    counts = sorted({db.shard[1] for db in shards})
    if len(counts) > 1:
        named = ", ".join(f"{db.name} is {db.shard[0]}/{db.shard[1]}" for db in shards)
        raise Refused(f"the shards were scanned with different shard counts N ({named}): merge the "
                      "databases of one `--shard K/N` run, all with the same N")
    by_index: dict[int, Db] = {}
    for db in shards:
        seen = by_index.get(db.shard[0])
        if seen is not None:
            raise Refused(f"{seen.path} and {db.path} both hold shard {db.shard[0]}/{db.shard[1]}: give each "
                          "shard's database once")
        by_index[db.shard[0]] = db
    count = counts[0]
    ordered = [by_index[i] for i in sorted(by_index)]
    missing = [i for i in range(count) if i not in by_index]
    latest = sorted(db.latest["scan_id"] for db in ordered)
    scan_id = "merge-" + hashlib.sha256("\n".join(latest).encode()).hexdigest()[:16]
    complete = not missing and all(db.latest["complete"] is True for db in ordered)
    return Plan(ordered, count, missing, scan_id, complete)


def _inspect_all(con: duckdb.DuckDBPyConnection, out: str, shards: Sequence[str],
                 out_alias: str | None) -> tuple[Db | None, list[Db]]:
    """Attach (read-only) and inspect every shard, and OUT when `out_alias` names it attached."""
    dbs = []
    for i, path in enumerate(shards):
        _attach(con, path, _alias(i), "SHARD")
        dbs.append(_inspect(con, path, _alias(i), "SHARD"))
    out_db = _inspect(con, out, out_alias, "OUT") if out_alias else None
    return out_db, dbs


def _alias(i: int) -> str:
    return f"flowleaks_merge_shard_{i}"


def _check_paths(out: str, shards: Sequence[str]) -> None:
    real = {}
    out_real = os.path.realpath(out)
    for path in shards:
        p = Path(path)
        if not p.exists():
            raise Refused(f"SHARD {path}: no such file")
        if p.is_dir():
            raise Refused(f"SHARD {path} is a folder, not a flowleaks database")
        r = os.path.realpath(path)
        if r == out_real:
            raise Refused(f"SHARD {path} is OUT itself: OUT is where the shards are merged into; give it once, "
                          "first")
        if r in real:
            raise Refused(f"SHARD {path} is given twice ({real[r]} and {path})")
        real[r] = path
    if Path(out).is_dir():
        raise Refused(f"OUT {out} is a folder; OUT is a database file (a new path creates one)")


# -- the merge --------------------------------------------------------------------------------------

def _columns(con: duckdb.DuckDBPyConnection, database: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
        "AND table_name = ? ORDER BY column_index", [database, table]).fetchall()]


def _primary_keys(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[str]]:
    return {r[0]: list(r[1]) for r in con.execute(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() WHERE database_name = ? "
        "AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'", [database]).fetchall()}


class _Sources:
    """SQL that reads one OUT table's columns from every shard (a column a shard lacks reads NULL)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, main: str, plan: Plan):
        self.con, self.main, self.plan = con, main, plan
        self._cols: dict[tuple[str, str], list[str]] = {}

    def cols(self, database: str, table: str) -> list[str]:
        if (database, table) not in self._cols:
            self._cols[database, table] = _columns(self.con, database, table)
        return self._cols[database, table]

    def union(self, table: str, join_scans: bool = False) -> str | None:
        """UNION ALL of the shards' rows of `table` with OUT's column names, plus `_shard` (the shard
        index) and, with join_scans, `_started` (when the row's scan started) and `_round`."""
        want = self.cols(self.main, table)
        parts = []
        for db in self.plan.shards:
            have = set(self.cols(db.alias, table))
            if not have:
                continue  # the shard has no such table (nothing to copy)
            a = _ident(db.alias)
            select = ", ".join(f"x.{_ident(c)}" if c in have else f"NULL AS {_ident(c)}" for c in want)
            sql = f"SELECT {select}, {db.shard[0]} AS _shard"
            if join_scans:
                # _round: how many sweeps/scans the shard had finished (complete or not) before this row's
                # scan: night n is round n in every shard; a killed scan and its rerun share a round
                rounds = ("SELECT scan_id, started_at, coalesce(sum(CASE WHEN status IN ('complete', "
                          "'incomplete') AND kind IN ('sweep', 'scan') THEN 1 ELSE 0 END) OVER (ORDER BY "
                          "started_at NULLS FIRST, scan_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) "
                          f"AS _round FROM {a}.main.scans")
                sql += (f", sc.started_at AS _started, sc._round FROM {a}.main.{_ident(table)} x "
                        f"LEFT JOIN ({rounds}) sc ON sc.scan_id = x.scan_id")
            else:
                sql += f" FROM {a}.main.{_ident(table)} x"
            parts.append(sql)
        return " UNION ALL ".join(parts) if parts else None


def _merge_tables(con: duckdb.DuckDBPyConnection, main: str, plan: Plan) -> None:
    src = _Sources(con, main, plan)
    keys = _primary_keys(con, main)
    shard_scans = " UNION ALL ".join(f"SELECT scan_id FROM {_ident(db.alias)}.main.scans" for db in plan.shards)
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
        "ORDER BY table_name", [main]).fetchall()]
    for table in tables:
        if table in ("meta", "scans"):
            continue
        cols = src.cols(main, table)
        names = ", ".join(_ident(c) for c in cols)
        t = _ident(table)
        if table == "content_results":  # a cache keyed by content: what any shard scanned is valid
            union = src.union(table)
            if union:
                pk = ", ".join(_ident(c) for c in keys[table])
                con.execute(f"INSERT OR IGNORE INTO {t} ({names}) SELECT {names} FROM ({union}) "
                            f"QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY scanned_at DESC NULLS LAST, "
                            "_shard) = 1")
        elif table == "suppressions":  # OUT's own decisions stay; a shard's are added when OUT lacks them
            union = src.union(table)
            if union:
                con.execute(f"INSERT INTO {t} ({names}) SELECT {names} FROM ({union}) x "
                            "WHERE NOT EXISTS (SELECT 1 FROM suppressions o WHERE o.fingerprint = x.fingerprint "
                            "AND o.rule_id IS NOT DISTINCT FROM x.rule_id) "
                            "QUALIFY row_number() OVER (PARTITION BY fingerprint, rule_id "
                            "ORDER BY created_at NULLS LAST, _shard) = 1")
        elif table in keys:
            # the shard owns its flows: its row replaces OUT's; a key in several shards (environments)
            # comes from the newest scan
            has_scan = "scan_id" in cols
            union = src.union(table, join_scans=has_scan)
            if union:
                pk = ", ".join(_ident(c) for c in keys[table])
                order = "_started DESC NULLS LAST, _shard DESC" if has_scan else "_shard DESC"
                con.execute(f"INSERT OR REPLACE INTO {t} ({names}) SELECT {names} FROM ({union}) "
                            f"QUALIFY row_number() OVER (PARTITION BY {pk} ORDER BY {order}) = 1")
        elif "scan_id" in cols:
            # rows of a scan: OUT's rows of the shards' scans are replaced, so a second merge adds none
            con.execute(f"DELETE FROM {t} WHERE scan_id IN ({shard_scans})")
            union = src.union(table, join_scans=True)
            if union:
                flowless = "flow_id" in cols
                if not flowless:
                    con.execute(f"INSERT INTO {t} ({names}) SELECT {names} FROM ({union})")
                    continue
                # a tenant-level row (no flow) is recorded by every shard: once per round, as one process
                content = ", ".join(["_round", *(_ident(c) for c in cols if c not in _NOT_CONTENT)])
                con.execute(
                    f"INSERT INTO {t} ({names}) "
                    f"WITH r AS ({union}) "
                    f"SELECT {names} FROM r WHERE flow_id IS NOT NULL "
                    f"UNION ALL SELECT {names} FROM (SELECT *, min(_shard) OVER (PARTITION BY {content}) AS _first "
                    f"FROM r WHERE flow_id IS NULL) WHERE _shard = _first")
        else:
            raise RuntimeError(f"merge does not know how to merge table {table} (no primary key, no scan_id)")


def _merge_scans(con: duckdb.DuckDBPyConnection, main: str, plan: Plan) -> None:
    src = _Sources(con, main, plan)
    cols = src.cols(main, "scans")
    names = ", ".join(_ident(c) for c in cols)
    union = src.union("scans")
    # a shard scan still `running` in a database nobody holds (we attached it) died: interrupted
    fixed = ", ".join(
        "CASE WHEN status = 'running' THEN 'interrupted' ELSE status END AS status" if c == "status" else
        "CASE WHEN status = 'running' THEN false ELSE complete END AS complete" if c == "complete" else _ident(c)
        for c in cols)
    con.execute(f"INSERT OR REPLACE INTO scans ({names}) SELECT {fixed} FROM ({union}) "
                "QUALIFY row_number() OVER (PARTITION BY scan_id ORDER BY _shard) = 1")
    latest = [db.latest["scan_id"] for db in plan.shards]
    params = {
        "shards": [{"path": db.name, "index": db.shard[0], "count": db.shard[1], "scan_id": db.latest["scan_id"],
                    "complete": db.latest["complete"] is True} for db in plan.shards],
        "count": plan.count, "missing": plan.missing,
    }
    problems = [f"shard {i}/{plan.count} missing" for i in plan.missing]
    problems += [f"shard {db.shard[0]}/{plan.count} {db.latest['status'] or 'not finished'}"
                 for db in plan.shards if db.latest["complete"] is not True]
    summed = ("flows_planned", "flows_scanned", "runs_planned", "runs_scanned", "content_fetched",
              "content_reused", "bytes_downloaded", "requests", "throttled", "retries", "skipped", "findings")
    # every shard lists every environment: the environment counts are the largest, not a sum
    counters = ["max(environments_planned)", "max(environments_scanned)",
                *(f"sum({c})::{'BIGINT' if c == 'bytes_downloaded' else 'INTEGER'}" for c in summed)]
    con.execute(
        "INSERT OR REPLACE INTO scans(scan_id, kind, started_at, finished_at, status, complete, params, "
        f"environments_planned, environments_scanned, {', '.join(summed)}, error) "
        f"SELECT $id, '{KIND}', min(started_at), max(finished_at), $status, $complete, $params, "
        f"{', '.join(counters)}, $error FROM scans WHERE list_contains($latest, scan_id)",
        {"id": plan.scan_id, "status": "complete" if plan.complete else "incomplete", "complete": plan.complete,
         "params": json.dumps(params), "latest": latest, "error": "; ".join(problems) or None})


def _apply_suppressions(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """As a scan ends: statuses follow OUT's suppressions; a suppression that matched a finding the
    merged shard scans saw records the merge as its last match."""
    apply_suppressions(con, None)
    con.execute(f"UPDATE suppressions s SET last_matched_scan = $merge WHERE {ACTIVE} AND EXISTS "
                f"(SELECT 1 FROM findings f WHERE list_contains($latest, f.scan_id) AND {MATCH})",
                {"now": utcnow(), "merge": plan.scan_id, "latest": [db.latest["scan_id"] for db in plan.shards]})


def merge(out: str, shards: Sequence[str]) -> tuple[Plan, dict[str, int], int]:
    """Check everything, then merge in one transaction. Returns (plan, rows per table, open findings)."""
    _check_paths(out, shards)
    existed = os.path.exists(out)
    # 1. every check, before OUT is opened for writing (or created)
    con = duckdb.connect(":memory:")
    try:
        if existed:
            _attach(con, out, "flowleaks_merge_out", "OUT")
        out_db, dbs = _inspect_all(con, out, shards, "flowleaks_merge_out" if existed else None)
        check(out_db, dbs)
    finally:
        con.close()
    # 2. OUT through Store (schema, 0600, umask), the shards attached to it, checked again, merged
    try:
        store = Store(out)
    except StoreOpenError as exc:
        raise CommandError(str(exc), exit_code=exc.exit_code) from None
    ok = False
    try:
        con = store.con
        main = con.execute("SELECT current_database()").fetchall()[0][0]
        # what we merge is what we checked: read again through this connection
        _, dbs = _inspect_all(con, out, shards, None)
        plan = check(out_db, dbs)
        with store.transaction():
            first = dbs[0].meta
            # OUT says which key and tenant its fingerprints belong to, as a scan's database does
            store.set_meta({k: first[k] for k in (KEY_ID, *IDENTITY) if k in first})
            _merge_scans(con, main, plan)
            _merge_tables(con, main, plan)
            _apply_suppressions(con, plan)
        for db in dbs:
            con.execute(f"DETACH {_ident(db.alias)}")
        counts = _counts(con, main)
        open_findings = con.execute("SELECT count(*) FROM findings WHERE status = 'open'").fetchall()[0][0]
        ok = True
        return plan, counts, open_findings
    finally:
        store.close()
        if not ok and not existed:
            _remove_new(out)


def _remove_new(out: str) -> None:
    """A merge that failed leaves no OUT it created (it would pass for an empty, clean result)."""
    for p in (out, out + ".wal"):
        try:
            os.unlink(p)
        except OSError:
            pass


def _counts(con: duckdb.DuckDBPyConnection, main: str) -> dict[str, int]:
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'",
        [main]).fetchall()]
    order = [t for t in _SUMMARY_TABLES if t in tables] + sorted(t for t in tables
                                                                  if t not in _SUMMARY_TABLES and t != "meta")
    return {t: con.execute(f"SELECT count(*) FROM {_ident(t)}").fetchall()[0][0] for t in order}


def exit_code(plan: Plan, open_findings: int) -> int:
    """Incomplete first: a missing or unfinished shard is what the scheduler must see, and a merged
    database that lacks part of the tenant is never reported as clean."""
    if not plan.complete:
        return EXIT_INCOMPLETE
    return EXIT_FINDINGS if open_findings else EXIT_CLEAN


def print_summary(out: str, plan: Plan, counts: dict[str, int], open_findings: int) -> None:
    click.echo(f"flowleaks merge {plan.scan_id}: {len(plan.shards)} of {plan.count} shards into {out}")
    for db in plan.shards:
        state = "complete" if db.latest["complete"] is True else f"INCOMPLETE ({db.latest['status']})"
        click.echo(f"  shard {db.shard[0]}/{db.shard[1]}  {db.path}  scan {db.latest['scan_id']}  {state}")
    for i in plan.missing:
        click.echo(f"  shard {i}/{plan.count}  MISSING")
    click.echo("rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    click.echo(f"{open_findings} open finding{'s' if open_findings != 1 else ''}"
               + (f": flowleaks query \"SELECT * FROM open_findings\" --db {out}" if open_findings else ""))
    if plan.missing:
        names = ", ".join(f"{i}/{plan.count}" for i in plan.missing)
        click.echo(f"flowleaks: missing shard{'s' if len(plan.missing) != 1 else ''} {names}: merge "
                   f"{'their databases' if len(plan.missing) != 1 else 'its database'} too; the merged "
                   "result does not cover the whole tenant", err=True)
    if plan.complete:
        click.echo("Merge complete." + ("" if open_findings else " No open findings."))
    else:
        bad = [f"shard {i}/{plan.count} missing" for i in plan.missing]
        bad += [f"shard {db.shard[0]}/{plan.count} {db.latest['status']}" for db in plan.shards
                if db.latest["complete"] is not True]
        click.echo(f"Merge INCOMPLETE ({'; '.join(bad)}): part of the tenant was not scanned; not a clean result.")


@click.command("merge")
@click.argument("out", metavar="OUT.duckdb", type=click.Path(dir_okay=True))
@click.argument("shards", metavar="SHARD.duckdb…", nargs=-1, required=True, type=click.Path(dir_okay=True))
def merge_command(out: str, shards: tuple[str, ...]) -> int:
    """Merge the shard databases of `scan --shard K/N` (or `sweep --shard K/N`) into OUT.

    OUT then holds what one process scanning the whole tenant would have written; query it as any
    database. OUT may be a new path (created 0600) or an earlier merge: the shard databases grow
    night after night, and merging them into last night's OUT brings it up to date. Merging the same
    shards again changes nothing.

    Refused (exit 2, OUT untouched): a file that is not a flowleaks database, another schema version,
    another fingerprint key or tenant, a database without a shard (only OUT may be one), a shard index
    given twice, different shard counts N. A missing shard is merged without: the result is incomplete.

    \b
    Example (an Indexed Job of 3 pods, then one merge):
      flowleaks scan --as-admin --shard 0/3 --db shard0.duckdb      # ... 1/3, 2/3
      flowleaks merge tenant.duckdb shard0.duckdb shard1.duckdb shard2.duckdb

    \b
    Exit status:
      0  merged, every shard present and complete, no open findings
      1  merged, open findings (flowleaks query "SELECT * FROM open_findings" --db OUT)
      2  refused (nothing written), or a usage error
      3  merged but INCOMPLETE: a shard missing, or its latest scan incomplete (even with open
         findings: the part not merged is the news; never reported clean)
      4  unexpected error, or a database in use by a running scan
    """
    plan, counts, open_findings = merge(out, shards)
    print_summary(out, plan, counts, open_findings)
    return exit_code(plan, open_findings)


# -- what "equal to one process" means (tests/e2e/test_merge.py, benchmarks/shards.py) ---------------
# Columns that name a scan or a wall-clock time: they differ between a merge and one process.
VOLATILE = frozenset({"scan_id", "first_scan_id", "first_seen", "last_seen", "scanned_at", "recorded_at",
                      "updated_at", "started_at", "finished_at"})
COMPARED = ("findings", "runs", "flows", "skipped", "watermarks", "environments", "actions", "filtered")


def comparable_rows(db: str | os.PathLike, table: str, scans: list[str] | None = None) -> list[tuple]:
    """A table's rows without the scan and clock columns, sorted; `scans`: only rows of these scans."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND table_name = ? ORDER BY column_index", [table]).fetchall()]
        keep = ", ".join(c for c in cols if c not in VOLATILE)
        where = "WHERE list_contains($scans, scan_id)" if scans is not None else ""
        return con.execute(f"SELECT {keep} FROM {table} {where} ORDER BY ALL",
                           {"scans": scans} if scans is not None else {}).fetchall()
    finally:
        con.close()
