"""DuckDB store: the contract tables of DESIGN.md, batched writes, private files.

The store knows nothing of HTTP or detectors: it takes plain rows (tuples/dicts of redacted data).
Nothing that reaches this module may hold a secret value; findings carry preview + fingerprint only.
"""
from __future__ import annotations

import hashlib
import re
import json
import os
import secrets
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import duckdb

from scanner.private import private_dir, private_umask, tighten_file, write_private_text
from scanner.store.views import create_views

SCHEMA_VERSION = 1
INSERT_CHUNK = 5000  # rows per INSERT statement
DB_MEMORY_LIMIT = os.environ.get("FLOWLEAKS_DB_MEMORY", "128MB")

# Columns named in DESIGN.md are the contract; the rest are ours and may grow.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS scans(
  scan_id VARCHAR PRIMARY KEY,
  kind VARCHAR,                 -- sweep | scan | scan-files | lint
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  status VARCHAR,               -- running | complete | incomplete | failed
  complete BOOLEAN,
  params JSON,
  environments_planned INTEGER, environments_scanned INTEGER,
  flows_planned INTEGER, flows_scanned INTEGER,
  runs_planned INTEGER, runs_scanned INTEGER,
  content_fetched INTEGER, content_reused INTEGER, bytes_downloaded BIGINT,
  requests INTEGER, throttled INTEGER, retries INTEGER,
  skipped INTEGER, findings INTEGER,
  error VARCHAR
);

CREATE TABLE IF NOT EXISTS environments(
  environment VARCHAR PRIMARY KEY,
  display_name VARCHAR,
  location VARCHAR,
  is_default BOOLEAN,
  flow_endpoint VARCHAR,
  scan_id VARCHAR,
  last_seen TIMESTAMP
);

CREATE TABLE IF NOT EXISTS flows(
  environment VARCHAR NOT NULL,
  flow_id VARCHAR NOT NULL,
  display_name VARCHAR,
  creator VARCHAR,              -- creator object id (Entra ID)
  state VARCHAR,
  definition_hash VARCHAR,      -- sha256 of the canonical definition JSON
  created_time TIMESTAMP,
  last_modified_time TIMESTAMP,
  trigger_type VARCHAR,
  connectors VARCHAR[],
  modified_marker VARCHAR,      -- lastModifiedTime as the API gave it: unchanged flows are not re-read
  scan_id VARCHAR,
  last_seen TIMESTAMP,
  PRIMARY KEY(environment, flow_id)
);

CREATE TABLE IF NOT EXISTS runs(
  environment VARCHAR NOT NULL,
  flow_id VARCHAR NOT NULL,
  run_id VARCHAR NOT NULL,
  start_time TIMESTAMP,         -- UTC (the API's 7th fractional digit is dropped here; see watermarks)
  end_time TIMESTAMP,
  status VARCHAR,
  scan_id VARCHAR,
  trigger_name VARCHAR,
  actions INTEGER,
  content_scanned INTEGER,
  content_skipped INTEGER,
  scanned_at TIMESTAMP,
  PRIMARY KEY(environment, flow_id, run_id)
);

CREATE TABLE IF NOT EXISTS actions(
  action_key VARCHAR PRIMARY KEY,   -- hash of environment, flow, run, action, repetition: a rescan replaces
  environment VARCHAR, flow_id VARCHAR, run_id VARCHAR,
  action VARCHAR, repetition VARCHAR,
  status VARCHAR, code VARCHAR,
  inputs_secured BOOLEAN, outputs_secured BOOLEAN,
  inputs_size BIGINT, outputs_size BIGINT,
  scan_id VARCHAR
);

CREATE TABLE IF NOT EXISTS findings(
  finding_id VARCHAR PRIMARY KEY,   -- stable: hash of location + rule + fingerprint
  scan_id VARCHAR,                  -- the scan that last saw it
  environment VARCHAR,
  flow_id VARCHAR,
  run_id VARCHAR,
  action VARCHAR,
  repetition VARCHAR,
  side VARCHAR,
  json_path VARCHAR,
  rule_id VARCHAR,
  detector VARCHAR,                 -- pattern | entropy | known_value | posture
  fingerprint VARCHAR,              -- hex HMAC-SHA256(key, secret)
  preview VARCHAR,                  -- 'ghp_…(40)'
  secret_length INTEGER,
  visible BOOLEAN,
  known_secret VARCHAR,             -- vault/name or input line for known values; never the value
  first_seen TIMESTAMP,
  last_seen TIMESTAMP,
  status VARCHAR,                   -- open | suppressed | resolved
  confidence VARCHAR,
  decoding VARCHAR,
  severity VARCHAR,
  message VARCHAR,
  cause VARCHAR,                    -- posture rule + action that explains a run finding
  remediation VARCHAR,
  run_start TIMESTAMP,
  first_scan_id VARCHAR,
  file VARCHAR                      -- scan-files: the file as given (null for API scans)
);

CREATE TABLE IF NOT EXISTS skipped(
  scan_id VARCHAR,
  environment VARCHAR,
  flow_id VARCHAR,
  run_id VARCHAR,
  action VARCHAR,
  side VARCHAR,
  reason VARCHAR,
  detail VARCHAR,
  repetition VARCHAR,
  recorded_at TIMESTAMP,
  file VARCHAR
);

CREATE TABLE IF NOT EXISTS filtered(
  scan_id VARCHAR,
  environment VARCHAR, flow_id VARCHAR, run_id VARCHAR, action VARCHAR, side VARCHAR,
  json_path VARCHAR,
  rule_id VARCHAR,
  filter VARCHAR,
  recorded_at TIMESTAMP,
  file VARCHAR
);

CREATE TABLE IF NOT EXISTS watermarks(
  environment VARCHAR NOT NULL,
  flow_id VARCHAR NOT NULL,
  last_run_start TIMESTAMP,
  running_runs VARCHAR[],          -- runs still Running at the last scan: fetched again next time
  last_run_start_raw VARCHAR,      -- as the API wrote it (7 fractional digits): the exact `gt` filter
  scan_id VARCHAR,
  updated_at TIMESTAMP,
  PRIMARY KEY(environment, flow_id)
);

-- `file`: the exported file a `scan-files` finding, skip or drop came from (null for API scans).
-- New databases get it from CREATE TABLE above; older ones from these no-op-when-present ALTERs.
ALTER TABLE findings ADD COLUMN IF NOT EXISTS file VARCHAR;
ALTER TABLE skipped ADD COLUMN IF NOT EXISTS file VARCHAR;
ALTER TABLE filtered ADD COLUMN IF NOT EXISTS file VARCHAR;

CREATE TABLE IF NOT EXISTS content_results(
  content_key VARCHAR NOT NULL,     -- md5 contentHash + ':' + contentSize of a content body
  engine_version VARCHAR NOT NULL,  -- detectors + known-value set; a change invalidates the cache
  result JSON,                      -- redacted hits (fingerprint, preview, path, rule), skips, drops
  scanned_at TIMESTAMP,
  PRIMARY KEY(content_key, engine_version)
);

CREATE TABLE IF NOT EXISTS suppressions(
  fingerprint VARCHAR NOT NULL,    -- a secret fingerprint or a finding_id
  rule_id VARCHAR,                 -- optional: only this rule
  reason VARCHAR NOT NULL,
  created_at TIMESTAMP,
  expires_at TIMESTAMP,
  created_by VARCHAR,
  last_matched_scan VARCHAR
);
"""

FINDING_COLUMNS = (
    "finding_id", "scan_id", "environment", "flow_id", "run_id", "action", "repetition", "side",
    "json_path", "rule_id", "detector", "fingerprint", "preview", "secret_length", "visible",
    "known_secret", "first_seen", "last_seen", "status", "confidence", "decoding", "severity",
    "message", "cause", "remediation", "run_start", "first_scan_id",
)
SKIPPED_COLUMNS = ("scan_id", "environment", "flow_id", "run_id", "action", "side", "reason", "detail",
                   "repetition", "recorded_at")
FILTERED_COLUMNS = ("scan_id", "environment", "flow_id", "run_id", "action", "side", "json_path",
                    "rule_id", "filter", "recorded_at")
# `scan-files` rows carry one more column, the file; a batch's rows are all of one width.
FILE_COLUMN = "file"
FILE_FINDING_COLUMNS = (*FINDING_COLUMNS, FILE_COLUMN)
FILE_SKIPPED_COLUMNS = (*SKIPPED_COLUMNS, FILE_COLUMN)
FILE_FILTERED_COLUMNS = (*FILTERED_COLUMNS, FILE_COLUMN)
RUN_COLUMNS = ("environment", "flow_id", "run_id", "start_time", "end_time", "status", "scan_id",
               "trigger_name", "actions", "content_scanned", "content_skipped", "scanned_at")
ACTION_COLUMNS = ("action_key", "environment", "flow_id", "run_id", "action", "repetition", "status", "code",
                  "inputs_secured", "outputs_secured", "inputs_size", "outputs_size", "scan_id")


def _columns(rows: Sequence[tuple], base: tuple[str, ...], with_file: tuple[str, ...]) -> tuple[str, ...]:
    """The column list for a batch of rows: API scans' rows, or scan-files' rows with the file last.
    Rows of both widths in one batch would be a bug (a shifted column), so it is refused."""
    widths = {len(r) for r in rows}
    if widths == {len(base)}:
        return base
    if widths == {len(with_file)}:
        return with_file
    raise ValueError(f"rows of widths {sorted(widths)} for columns {base[:3]}…")


class StoreOpenError(RuntimeError):
    """The database file cannot be opened. The message names the file and the cause in one line;
    `exit_code` is 2 when the path given is wrong (not a database, a folder), 4 otherwise."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class StoreBusy(StoreOpenError):
    """Another flowleaks process holds the database (DuckDB allows one writer process)."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=4)


def open_error(path: str, exc: BaseException) -> StoreOpenError:
    """Why DuckDB could not open `path`, for every command that opens one (scans and `query`)."""
    text = " ".join(str(exc).split())
    low = text.lower()
    if "lock" in low:
        return StoreBusy(f"database {path} is in use by another flowleaks process; "
                         "wait for it to finish (one scan per database at a time)")
    if "not a valid duckdb database" in low:
        return StoreOpenError(f"{path} is not a DuckDB database (not a file flowleaks wrote, or damaged): "
                              "pass --db with a flowleaks database, or a new path to create one")
    if "version" in low and ("newer" in low or "older" in low or "storage" in low):
        return StoreOpenError(f"cannot open {path}: written by another DuckDB version ({text[:300]})")
    if isinstance(exc, IsADirectoryError) or "is a directory" in low:
        return StoreOpenError(f"cannot open {path}: it is a folder; --db takes a file")
    if isinstance(exc, OSError) and exc.strerror:
        return StoreOpenError(f"cannot open {path}: {exc.strerror}")
    return StoreOpenError(f"cannot open {path}: {text[:300]}", exit_code=4)


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


def make_private(path: Path) -> None:
    """Tighten to 0600 (the DB, WAL and key file are as sensitive as the tenant they describe)."""
    tighten_file(path)


def fingerprint_key(db_path: str | os.PathLike | None) -> bytes:
    """FLOWLEAKS_FINGERPRINT_KEY if set, else a key file beside the database (created 0600)."""
    env = os.environ.get("FLOWLEAKS_FINGERPRINT_KEY")
    if env:
        return env.encode("utf-8")
    if db_path is None or str(db_path) == ":memory:":
        return secrets.token_hex(32).encode()
    key_path = Path(str(db_path) + ".key")
    if key_path.exists():
        make_private(key_path)  # a key file from before this version may be 0644
        return key_path.read_text().strip().encode("utf-8")
    key = secrets.token_hex(32)
    write_private_text(key_path, key + "\n", exclusive=True)  # O_EXCL: never overwrite a key
    return key.encode("utf-8")


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
        self._types: dict[str, dict[str, str]] = {}
        # Held until close(): DuckDB creates the WAL at the first write and spill files whenever
        # memory runs short, long after connect; each must be born 0600, not with the caller's umask.
        self._private = ExitStack()
        self._private.enter_context(private_umask())
        try:
            self.con = self._connect()
        except BaseException:
            self._private.close()
            raise
        if not read_only:
            try:
                self._prepare()
            except BaseException:
                self.close()  # a half-opened store must not keep the process umask
                raise

    def _prepare(self) -> None:
        # DuckDB would otherwise cache up to 80% of RAM; a capped buffer pool keeps a 50,000-run
        # sweep's footprint flat (measured: 261 MB -> 203 MB peak for the store's writes alone).
        self.con.execute(f"SET memory_limit = '{DB_MEMORY_LIMIT}'")
        self.con.execute(SCHEMA)
        create_views(self.con)
        self.set_meta({"schema_version": SCHEMA_VERSION})
        if self.path != ":memory:":
            make_private(Path(self.path))  # a database from before this version may be 0644
            make_private(Path(self.path + ".wal"))

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

    def _insert(self, head: str, rows: Sequence[tuple], tail: str = "",
                key: Callable[[tuple], Any] | None = None) -> None:
        """Bulk INSERT: `head` is `INSERT [OR REPLACE] INTO table(col, …)`; rows are bound column by
        column as typed lists and unnested, one statement per chunk. Measured on DuckDB 2.0 for 300
        rows: executemany ~1,000 ms, one VALUES list ~40 ms, unnested columns ~10 ms.
        `key` dedupes rows (last wins): an ON CONFLICT statement may not touch one key twice."""
        if not rows:
            return
        if key is not None:
            rows = list({key(r): r for r in rows}.values())
        table, columns = self._target(head)
        types = [self._column_types(table)[c] for c in columns]
        select = ", ".join(f"unnest(?::{t}[])" for t in types)
        for i in range(0, len(rows), INSERT_CHUNK):
            part = rows[i:i + INSERT_CHUNK]
            self.con.execute(f"{head} SELECT {select} {tail}", [list(col) for col in zip(*part)])

    @staticmethod
    def _target(head: str) -> tuple[str, list[str]]:
        m = re.search(r"INTO\s+(\w+)\s*\(([^)]*)\)", head)
        if not m:
            raise ValueError(f"insert head needs an explicit column list: {head}")
        return m.group(1), [c.strip() for c in m.group(2).split(",")]

    def _column_types(self, table: str) -> dict[str, str]:
        if table not in self._types:
            self._types[table] = dict(self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                [table]).fetchall())
        return self._types[table]

    def upsert_environments(self, rows: Sequence[tuple]) -> None:
        """rows: (environment, display_name, location, is_default, flow_endpoint, scan_id)."""
        if rows:
            now = utcnow()
            self._insert("INSERT OR REPLACE INTO environments(environment, display_name, location, is_default, "
                         "flow_endpoint, scan_id, last_seen)", [(*r, now) for r in rows], key=lambda r: r[0])

    def upsert_flows(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        now = utcnow()
        cols = ("environment", "flow_id", "display_name", "creator", "state", "definition_hash",
                "created_time", "last_modified_time", "modified_marker", "trigger_type", "connectors", "scan_id")
        # A flow whose definition could not be read keeps the facts an earlier scan stored.
        updates = ", ".join(f"{c} = coalesce(excluded.{c}, flows.{c})" for c in cols[2:])
        self._insert(f"INSERT INTO flows({', '.join(cols)}, last_seen)",
                     [tuple(r.get(c) for c in cols) + (now,) for r in rows],
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
                self._insert(f"INSERT OR REPLACE INTO runs({', '.join(RUN_COLUMNS)})",
                             batch.runs, key=lambda r: r[:3])
            if batch.actions:
                self._insert(f"INSERT OR REPLACE INTO actions({', '.join(ACTION_COLUMNS)})",
                             [(action_key(*a[:5]), *a) for a in batch.actions], key=lambda r: r[0])
            if batch.findings:
                self._upsert_findings(batch.findings)
            if batch.skipped:
                cols = _columns(batch.skipped, SKIPPED_COLUMNS, FILE_SKIPPED_COLUMNS)
                self._insert(f"INSERT INTO skipped({', '.join(cols)})", batch.skipped)
            if batch.filtered:
                cols = _columns(batch.filtered, FILTERED_COLUMNS, FILE_FILTERED_COLUMNS)
                self._insert(f"INSERT INTO filtered({', '.join(cols)})", batch.filtered)
            for env, flow, keep in batch.posture_seen:
                # a posture finding not found in the flow's current definition is fixed: resolved
                con.execute("UPDATE findings SET status = 'resolved' WHERE detector = 'posture' "
                            "AND environment = ? AND flow_id = ? AND status <> 'resolved' "
                            "AND NOT list_contains(?, finding_id)", [env, flow, keep])
            if batch.content:
                self._insert("INSERT OR REPLACE INTO content_results(content_key, engine_version, result, scanned_at)",
                             batch.content, key=lambda r: r[:2])
            if batch.watermarks:
                # (environment, flow_id, newest run start as the API wrote it, running runs, scan_id).
                # The start only moves forward; same-format ISO strings compare like the times they are.
                self._insert(
                    "INSERT INTO watermarks(environment, flow_id, last_run_start, running_runs, last_run_start_raw, "
                    "scan_id, updated_at)",
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
            f"INSERT INTO findings({', '.join(cols)})", rows,
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

    def active_suppressions(self) -> list[tuple[str, str | None]]:
        now = utcnow()
        return self.con.execute(
            "SELECT fingerprint, rule_id FROM suppressions WHERE expires_at IS NULL OR expires_at > ?",
            [now]).fetchall()

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
