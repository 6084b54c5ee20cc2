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

What may be merged is checked first, before anything is written (scanner/store/merge_plan.py): a
refusal is one line and exit 2, and OUT is not touched (nor created). The command, its summary and
exit status are scanner/cli/merge.py.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import duckdb

from scanner.store.database import Store, utcnow
from scanner.store.merge_plan import IDENTITY, KEY_ID, KIND, Plan, attach, check, check_paths, inspect_all
from scanner.store.sql import ident
from scanner.store.suppressions import apply_suppressions, record_matches

# Columns that name a scan or a wall-clock time: not part of what a tenant-level row says.
_NOT_CONTENT = frozenset({"scan_id", "recorded_at"})
# Shown in the summary, in this order (other tables follow).
_SUMMARY_TABLES = ("findings", "runs", "flows", "actions", "skipped", "filtered", "watermarks",
                   "environments", "content_results", "suppressions", "scans")


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
            a = ident(db.alias)
            select = ", ".join(f"x.{ident(c)}" if c in have else f"NULL AS {ident(c)}" for c in want)
            sql = f"SELECT {select}, {db.shard[0]} AS _shard"
            if join_scans:
                # _round: how many sweeps/scans the shard had finished (complete or not) before this row's
                # scan: night n is round n in every shard; a killed scan and its rerun share a round
                rounds = ("SELECT scan_id, started_at, coalesce(sum(CASE WHEN status IN ('complete', "
                          "'incomplete') AND kind IN ('sweep', 'scan') THEN 1 ELSE 0 END) OVER (ORDER BY "
                          "started_at NULLS FIRST, scan_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) "
                          f"AS _round FROM {a}.main.scans")
                sql += (f", sc.started_at AS _started, sc._round FROM {a}.main.{ident(table)} x "
                        f"LEFT JOIN ({rounds}) sc ON sc.scan_id = x.scan_id")
            else:
                sql += f" FROM {a}.main.{ident(table)} x"
            parts.append(sql)
        return " UNION ALL ".join(parts) if parts else None


def _merge_tables(con: duckdb.DuckDBPyConnection, main: str, plan: Plan) -> None:
    src = _Sources(con, main, plan)
    keys = _primary_keys(con, main)
    shard_scans = " UNION ALL ".join(f"SELECT scan_id FROM {ident(db.alias)}.main.scans" for db in plan.shards)
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
        "ORDER BY table_name", [main]).fetchall()]
    for table in tables:
        if table in ("meta", "scans"):
            continue
        cols = src.cols(main, table)
        names = ", ".join(ident(c) for c in cols)
        t = ident(table)
        if table == "content_results":  # a cache keyed by content: what any shard scanned is valid
            union = src.union(table)
            if union:
                pk = ", ".join(ident(c) for c in keys[table])
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
                pk = ", ".join(ident(c) for c in keys[table])
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
                content = ", ".join(["_round", *(ident(c) for c in cols if c not in _NOT_CONTENT)])
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
    names = ", ".join(ident(c) for c in cols)
    union = src.union("scans")
    # a shard scan still `running` in a database nobody holds (we attached it) died: interrupted
    fixed = ", ".join(
        "CASE WHEN status = 'running' THEN 'interrupted' ELSE status END AS status" if c == "status" else
        "CASE WHEN status = 'running' THEN false ELSE complete END AS complete" if c == "complete" else ident(c)
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
    record_matches(con, "list_contains($latest, f.scan_id)", plan.scan_id,
                   {"now": utcnow(), "latest": [db.latest["scan_id"] for db in plan.shards]})


def merge(out: str, shards: Sequence[str]) -> tuple[Plan, dict[str, int], int]:
    """Check everything, then merge in one transaction. Returns (plan, rows per table, open findings).
    Refused (exit 2) for what cannot be merged; StoreBusy (exit 4) for a database a scan holds."""
    check_paths(out, shards)
    existed = os.path.exists(out)
    # 1. every check, before OUT is opened for writing (or created)
    con = duckdb.connect(":memory:")
    try:
        if existed:
            attach(con, out, "flowleaks_merge_out", "OUT")
        out_db, dbs = inspect_all(con, out, shards, "flowleaks_merge_out" if existed else None)
        check(out_db, dbs)
    finally:
        con.close()
    # 2. OUT through Store (schema, 0600, umask), the shards attached to it, checked again, merged
    store = Store(out)  # StoreOpenError (a newer schema too): one line, nothing written
    ok = False
    try:
        con = store.con
        main = con.execute("SELECT current_database()").fetchall()[0][0]
        # what we merge is what we checked: read again through this connection
        _, dbs = inspect_all(con, out, shards, None)
        plan = check(out_db, dbs)
        with store.transaction():
            first = dbs[0].meta
            # OUT says which key and tenant its fingerprints belong to, as a scan's database does
            store.set_meta({k: first[k] for k in (KEY_ID, *IDENTITY) if k in first})
            _merge_scans(con, main, plan)
            _merge_tables(con, main, plan)
            _apply_suppressions(con, plan)
        for db in dbs:
            con.execute(f"DETACH {ident(db.alias)}")
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
    return {t: con.execute(f"SELECT count(*) FROM {ident(t)}").fetchall()[0][0] for t in order}


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
