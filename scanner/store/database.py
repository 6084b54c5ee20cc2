"""DuckDB store: the Store (one connection, batched writes, private files) and the rows it takes.

The store knows nothing of HTTP or detectors: it takes plain rows (tuples/dicts of redacted data).
Nothing that reaches this module may hold a secret value; findings carry preview + fingerprint only.
The tables, their columns and versions are scanner/store/schema.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import duckdb

from scanner.private import private_dir, private_umask, tighten_file
from scanner.store import lifecycle
from scanner.store.errors import open_error
from scanner.store.schema import (ACTIONS, CONTENT_RESULTS, ENVIRONMENTS, FILE_FILTERED_COLUMNS, FILE_FINDING_COLUMNS,
                                  FILE_SKIPPED_COLUMNS, FILTERED, FILTERED_COLUMNS, FINDING_COLUMNS, FINDINGS, FLOWS,
                                  RUNS, SKIPPED, SKIPPED_COLUMNS, WATERMARKS, Table, check_readable,
                                  prepare)

INSERT_CHUNK = 5000  # rows per INSERT statement
DB_MEMORY_LIMIT = os.environ.get("FLOWLEAKS_DB_MEMORY", "128MB")


def _columns(rows: Sequence[tuple], base: tuple[str, ...], with_file: tuple[str, ...]) -> tuple[str, ...]:
    """The column list for a batch of rows: API scans' rows, or scan-files' rows with the file last.
    Rows of both widths in one batch would be a bug (a shifted column), so it is refused."""
    widths = {len(r) for r in rows}
    if widths == {len(base)}:
        return base
    if widths == {len(with_file)}:
        return with_file
    raise ValueError(f"rows of widths {sorted(widths)} for columns {base[:3]}…")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def finding_id(environment: str | None, flow_id: str | None, run_id: str | None, action: str | None,
               repetition: str | None, side: str | None, json_path: str | None, rule_id: str,
               fingerprint: str, file: str | None = None) -> str:
    """Stable id of one occurrence: location + rule + fingerprint (never the secret itself).
    `file` (scan-files) is part of the location; without it the id is what it always was."""
    parts = (environment, flow_id, run_id, action, repetition, side, json_path, rule_id, fingerprint)
    if file is not None:
        parts += (file,)
    raw = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def action_key(environment: str, flow_id: str, run_id: str, action: str, repetition: str | None) -> str:
    raw = "\x1f".join((environment, flow_id, run_id, action, repetition or ""))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class Batch:
    """Rows gathered for one atomic write (typically a few finished runs)."""

    runs: list[tuple]
    actions: list[tuple]
    findings: list[tuple]
    skipped: list[tuple]
    filtered: list[tuple]
    content: list[tuple] = field(default_factory=list)     # content_results rows
    watermarks: list[tuple] = field(default_factory=list)  # flows fully scanned in this batch
    posture_seen: list[tuple] = field(default_factory=list)  # (env, flow, finding_ids found now)

    @classmethod
    def empty(cls) -> "Batch":
        return cls([], [], [], [], [])

    def __len__(self) -> int:
        return len(self.runs) + len(self.findings) + len(self.skipped)


class Store:
    def __init__(self, path: str | os.PathLike = "flowleaks.duckdb", read_only: bool = False):
        self.path = str(path)
        self.read_only = read_only
        # Held until close(): DuckDB creates the WAL at the first write and spill files whenever
        # memory runs short, long after connect; each must be born 0600, not with the caller's umask.
        self._private = ExitStack()
        self._private.enter_context(private_umask())
        try:
            self.con = self._connect()
        except BaseException:
            self._private.close()
            raise
        try:
            self._prepare()
        except BaseException:
            self.close()  # a half-opened store must not keep the process umask
            raise

    def _prepare(self) -> None:
        if self.read_only:
            check_readable(self.con, self.path)  # a newer schema is refused, never mis-read
            return
        # DuckDB would otherwise cache up to 80% of RAM; a capped buffer pool keeps a 50,000-run
        # sweep's footprint flat (measured: 261 MB -> 203 MB peak for the store's writes alone).
        self.con.execute(f"SET memory_limit = '{DB_MEMORY_LIMIT}'")
        prepare(self.con, self.path)  # an older database migrated, a newer one refused; tables, views
        if self.path != ":memory:":
            # the DB, WAL and key file are as sensitive as the tenant they describe
            tighten_file(Path(self.path))  # a database from before this version may be 0644
            tighten_file(Path(self.path + ".wal"))

    @property
    def temp_dir(self) -> Path | None:
        """DuckDB's spill folder: ours, 0700, beside the database (not the shared default)."""
        if self.read_only or self.path == ":memory:":
            return None
        return Path(self.path + ".tmp")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, str] = {}
        try:
            if not self.read_only and self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                config["temp_directory"] = str(private_dir(self.temp_dir))
            return duckdb.connect(self.path, read_only=self.read_only, config=config)
        except (duckdb.Error, OSError) as exc:  # one line naming the file and why (`open_error`)
            raise open_error(self.path, exc) from None

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self._remove_empty_temp_dir()
            self._private.close()

    def _remove_empty_temp_dir(self) -> None:
        """DuckDB empties the spill folder at close; an empty one of ours need not linger."""
        if self.temp_dir is not None:
            try:
                self.temp_dir.rmdir()
            except OSError:
                pass  # still holds files (another process's spill), or already gone

    # -- scans --------------------------------------------------------------------------------

    def set_meta(self, values: dict[str, str]) -> None:
        self.con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [[k, str(v)] for k, v in values.items()])

    def meta(self) -> dict[str, str]:
        return dict(self.con.execute("SELECT key, value FROM meta").fetchall())

    def begin_scan(self, kind: str, params: dict[str, Any]) -> str:
        # We hold the only write lock on this file, so a scan still marked running died mid-way.
        self.con.execute("UPDATE scans SET status = 'interrupted', complete = false "
                         "WHERE status = 'running'")
        scan_id = utcnow().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.con.execute(
            "INSERT INTO scans(scan_id, kind, started_at, status, complete, params) VALUES (?,?,?,?,?,?)",
            [scan_id, kind, utcnow(), "running", False, json.dumps(params, default=str)])
        return scan_id

    def update_scan(self, scan_id: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.con.execute(f"UPDATE scans SET {cols} WHERE scan_id = ?", [*fields.values(), scan_id])

    def finish_scan(self, scan_id: str, complete: bool, status: str | None = None, **stats: Any) -> None:
        self.update_scan(scan_id, finished_at=utcnow(), complete=complete,
                         status=status or ("complete" if complete else "incomplete"), **stats)

    # -- inventory ----------------------------------------------------------------------------

    def _insert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple], tail: str = "",
                key: Callable[[tuple], Any] | None = None, replace: bool = False) -> None:
        """Bulk INSERT [OR REPLACE] of `columns` of `table`: rows are bound column by column as typed
        lists (the types of the table's definition) and unnested, one statement per chunk. Measured on
        DuckDB 2.0 for 300 rows: executemany ~1,000 ms, one VALUES list ~40 ms, unnested columns ~10 ms.
        `key` dedupes rows (last wins): an ON CONFLICT statement may not touch one key twice."""
        if not rows:
            return
        if key is not None:
            rows = list({key(r): r for r in rows}.values())
        select = ", ".join(f"unnest(?::{table.type_of(c)}[])" for c in columns)
        head = f"INSERT {'OR REPLACE ' if replace else ''}INTO {table.name}({', '.join(columns)})"
        for i in range(0, len(rows), INSERT_CHUNK):
            part = rows[i:i + INSERT_CHUNK]
            self.con.execute(f"{head} SELECT {select} {tail}", [list(col) for col in zip(*part)])

    def upsert_environments(self, rows: Sequence[tuple]) -> None:
        """rows: (environment, display_name, location, is_default, flow_endpoint, scan_id)."""
        if rows:
            now = utcnow()
            self._insert(ENVIRONMENTS, ENVIRONMENTS.names, [(*r, now) for r in rows], key=lambda r: r[0],
                         replace=True)

    def upsert_flows(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        now = utcnow()
        cols = FLOWS.without("last_seen")  # each row a dict of these (a missing one is null)
        # A flow whose definition could not be read keeps the facts an earlier scan stored.
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, flows.{c})" for c in cols[2:])
        self._insert(FLOWS, (*cols, "last_seen"), [tuple(r.get(c) for c in cols) + (now,) for r in rows],
                     f"ON CONFLICT (environment, flow_id) DO UPDATE SET {updates}, last_seen = excluded.last_seen",
                     key=lambda r: r[:2])

    def touch_flow(self, environment: str, flow_id: str, scan_id: str) -> None:
        self.con.execute("UPDATE flows SET scan_id = ?, last_seen = ? WHERE environment = ? AND flow_id = ?",
                         [scan_id, utcnow(), environment, flow_id])

    def flow_definition_hash(self, environment: str, flow_id: str) -> str | None:
        row = self._one("SELECT definition_hash FROM flows WHERE environment=? AND flow_id=?",
                               [environment, flow_id])
        return row[0] if row else None

    # -- run results --------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        """One transaction per batch: a run's row lands together with its findings or not at all."""
        if not (len(batch) or batch.actions or batch.filtered or batch.content or batch.watermarks
                or batch.posture_seen):
            return
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if batch.runs:
                self._insert(RUNS, RUNS.names, batch.runs, key=lambda r: r[:3], replace=True)
            if batch.actions:
                self._insert(ACTIONS, ACTIONS.names, [(action_key(*a[:5]), *a) for a in batch.actions],
                             key=lambda r: r[0], replace=True)
            if batch.findings:
                self._upsert_findings(batch.findings)
            if batch.skipped:
                cols = _columns(batch.skipped, SKIPPED_COLUMNS, FILE_SKIPPED_COLUMNS)
                self._insert(SKIPPED, cols, batch.skipped)
            if batch.filtered:
                cols = _columns(batch.filtered, FILTERED_COLUMNS, FILE_FILTERED_COLUMNS)
                self._insert(FILTERED, cols, batch.filtered)
            for env, flow, keep in batch.posture_seen:
                # a posture finding not found in the flow's current definition is fixed: resolved
                con.execute("UPDATE findings SET status = 'resolved' WHERE detector = 'posture' "
                            "AND environment = ? AND flow_id = ? AND status <> 'resolved' "
                            "AND NOT list_contains(?, finding_id)", [env, flow, keep])
            if batch.content:
                self._insert(CONTENT_RESULTS, CONTENT_RESULTS.names, batch.content, key=lambda r: r[:2],
                             replace=True)
            if batch.watermarks:
                # (environment, flow_id, newest run start as the API wrote it, running runs, scan_id).
                # The start only moves forward; same-format ISO strings compare like the times they are.
                self._insert(
                    WATERMARKS, WATERMARKS.names,
                    [(e, f, raw, running, raw, scan, utcnow()) for e, f, raw, running, scan in batch.watermarks],
                    "ON CONFLICT (environment, flow_id) DO UPDATE "
                    "SET last_run_start = greatest(coalesce(watermarks.last_run_start, excluded.last_run_start), "
                    "coalesce(excluded.last_run_start, watermarks.last_run_start)), "
                    "last_run_start_raw = greatest(coalesce(watermarks.last_run_start_raw, excluded.last_run_start_raw), "
                    "coalesce(excluded.last_run_start_raw, watermarks.last_run_start_raw)), "
                    "running_runs = excluded.running_runs, scan_id = excluded.scan_id, "
                    "updated_at = excluded.updated_at", key=lambda r: r[:2])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _upsert_findings(self, rows: Sequence[tuple]) -> None:
        """Insert new occurrences; a known finding_id only moves last_seen/scan_id forward.

        A finding that was resolved and shows up again is open again; a suppressed one stays suppressed.
        """
        cols = _columns(rows, FINDING_COLUMNS, FILE_FINDING_COLUMNS)
        self._insert(
            FINDINGS, cols, rows,
            "ON CONFLICT (finding_id) DO UPDATE SET last_seen = excluded.last_seen, "
            "scan_id = excluded.scan_id, visible = excluded.visible, cause = excluded.cause, "
            "remediation = excluded.remediation, "
            "status = CASE WHEN findings.status = 'suppressed' THEN 'suppressed' ELSE excluded.status END",
            key=lambda r: r[0])

    def add_findings(self, rows: Sequence[tuple]) -> None:
        b = Batch.empty()
        b.findings.extend(rows)
        self.write_batch(b)

    def add_skipped(self, rows: Iterable[tuple]) -> None:
        b = Batch.empty()
        b.skipped.extend(rows)
        self.write_batch(b)

    # -- helpers for callers -------------------------------------------------------------------

    def content_result(self, key: str, engine_version: str) -> str | None:
        row = self._one("SELECT result FROM content_results WHERE content_key=? AND engine_version=?",
                               [key, engine_version])
        return row[0] if row else None

    def content_results(self, keys: Sequence[str], engine_version: str) -> dict[str, str]:
        """`content_result` for many keys in one query (a run's content units): key -> stored result."""
        if not keys:
            return {}
        # a semi-join on the unnested keys (a hash join): one scan for the run, not a lookup per unit
        rows = self.con.execute("SELECT content_key, result FROM content_results WHERE engine_version = ? "
                                "AND content_key IN (SELECT unnest(?::VARCHAR[]))",
                                [engine_version, list(dict.fromkeys(keys))]).fetchall()
        return dict(rows)

    def watermark(self, environment: str, flow_id: str) -> tuple[str | None, list[str]]:
        """(last run start as OData text with 7 fractional digits, runs still Running last time)."""
        row = self._one("SELECT last_run_start_raw, running_runs FROM watermarks WHERE environment=? AND flow_id=?",
                        [environment, flow_id])
        if not row:
            return None, []
        return (f"{row[0]}Z" if row[0] else None), list(row[1] or [])

    def flow_modified(self, environment: str, flow_id: str) -> tuple[str | None, str | None]:
        row = self._one("SELECT modified_marker, definition_hash FROM flows "
                               "WHERE environment=? AND flow_id=?", [environment, flow_id])
        return (row[0], row[1]) if row else (None, None)

    def open_in_scope(self, environments: Sequence[str] = (), flows: Sequence[str] = ()) -> int:
        """Open findings in a scope, whichever scan found them. A scope names environments and flows by
        id or display name (as `--env`/`--flow` accept them), so both are matched, through the stored
        names; an empty list is no restriction."""
        sql, params = "SELECT count(*) FROM findings f WHERE f.status = 'open'", {}
        if environments:
            sql += (" AND (list_contains($envs, lower(f.environment)) OR EXISTS (SELECT 1 FROM environments e "
                    "WHERE e.environment = f.environment AND list_contains($envs, lower(e.display_name))))")
            params["envs"] = [e.lower() for e in environments]
        if flows:
            sql += (" AND (list_contains($flows, lower(f.flow_id)) OR EXISTS (SELECT 1 FROM flows w "
                    "WHERE w.environment = f.environment AND w.flow_id = f.flow_id "
                    "AND list_contains($flows, lower(w.display_name))))")
            params["flows"] = [f.lower() for f in flows]
        return self.con.execute(sql, params).fetchall()[0][0]

    def resolve_environment_posture(self, environment: str, keep: Sequence[str]) -> None:
        """Environment-level posture findings (PA007, no flow) of `environment` not among `keep` (the
        ones a complete read found now) are fixed: resolved."""
        self.con.execute("UPDATE findings SET status = 'resolved' WHERE detector = 'posture' "
                         "AND rule_id = 'PA007' AND environment = ? AND flow_id IS NULL "
                         "AND status <> 'resolved' AND NOT list_contains(?, finding_id)", [environment, list(keep)])

    # -- the lifecycle of findings (lifecycle.py, suppressions.py take the connection; callers the Store)

    def resolve_unlisted(self, environment: str, flow_id: str, low: datetime | None, high: datetime | None,
                         listed: Sequence[str], low_exclusive: bool = False) -> int:
        return lifecycle.resolve_unlisted(self.con, environment, flow_id, low, high, listed,
                                          low_exclusive=low_exclusive)

    def runs_to_probe(self, environment: str, flow_id: str, before: datetime) -> list[str]:
        return lifecycle.runs_to_probe(self.con, environment, flow_id, before)

    def resolve_runs(self, environment: str, flow_id: str, run_ids: Sequence[str]) -> int:
        return lifecycle.resolve_runs(self.con, environment, flow_id, run_ids)

    def apply_suppressions(self, scan_id: str | None) -> dict[str, int]:
        from scanner.store.suppressions import apply_suppressions  # it imports this module
        return apply_suppressions(self.con, scan_id)

    # -- what a finished scan counts -----------------------------------------------------------

    def open_in_scan(self, scan_id: str) -> int:
        """Open findings the scan saw (a sweep's, a scan-files run's exit code)."""
        return self._one("SELECT count(*) FROM findings WHERE scan_id = ? AND status = 'open'", [scan_id])[0]

    def new_open_in_scan(self, scan_id: str) -> int:
        """Open findings the scan saw first."""
        return self._one("SELECT count(*) FROM findings WHERE first_scan_id = ? AND status = 'open'", [scan_id])[0]

    def runs_stored(self, scan_id: str) -> tuple[int, int]:
        """(runs, flows) the scan stored: what a rerun resumes from."""
        runs, flows = self._one("SELECT count(*), count(DISTINCT environment || '/' || flow_id) FROM runs "
                                "WHERE scan_id = ?", [scan_id])
        return runs, flows

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _one(self, sql: str, params: Sequence[Any] | None = None) -> tuple | None:
        """First row or None. fetchall, not fetchone: DuckDB 2 refuses new statements on a connection
        with an unfinished result."""
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0] if rows else None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()
