"""The scan database's schema: every table's columns defined once (the DDL and every INSERT are made
from these definitions), the schema version, and the migrations from older versions.

Columns named in DESIGN.md ("Store (DuckDB) — contract") are the contract; the rest are ours and may
grow. A new column goes at the end of its table's definition, with a migration that adds it; a new
table needs none (every open for writing creates the tables a database lacks, in their current form).

The version is the `schema_version` row of the meta table:

    1  the baseline: every database flowleaks wrote before migrations (it recorded '1'; a meta table
       without the row is read as 1 too). The oldest lack the scan-files `file` columns.
    2  the `file` columns are always there (v1 code added them on every open).

Opening a database for writing (`prepare`) migrates an older one step by step, each step in one
transaction with its version, and refuses a newer one in one line (StoreOpenError, exit 2): a newer
schema is never read as if it were ours. A read-only open (`check_readable`) refuses a newer one too
and reads an older one as it is. Every step must be safe to run twice: a flowleaks from before
versions, opening a newer database, writes its '1' back (v1 code set the row on every open).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import duckdb

from scanner.store.errors import StoreOpenError
from scanner.store.views import create_views

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "VARCHAR"
    note: str = ""            # why the column is there; a comment in the DDL
    not_null: bool = False
    primary_key: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # a key of several columns (one column's key is on the Column)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def without(self, *names: str) -> tuple[str, ...]:
        return tuple(n for n in self.names if n not in names)

    def type_of(self, name: str) -> str:
        for c in self.columns:
            if c.name == name:
                return c.type
        raise KeyError(f"{self.name} has no column {name}")

    def ddl(self) -> str:
        """CREATE TABLE IF NOT EXISTS, one column a line, its note a comment after it."""
        lines = [(f"{c.name} {c.type}{' NOT NULL' if c.not_null else ''}{' PRIMARY KEY' if c.primary_key else ''}",
                  c.note) for c in self.columns]
        if self.primary_key:
            lines.append((f"PRIMARY KEY({', '.join(self.primary_key)})", ""))
        body = [f"  {text}{',' if i < len(lines) - 1 else ''}" + (f"  -- {note}" if note else "")
                for i, (text, note) in enumerate(lines)]
        return f"CREATE TABLE IF NOT EXISTS {self.name}(\n" + "\n".join(body) + "\n);\n"


def _c(name: str, type_: str = "VARCHAR", note: str = "", **kw: bool) -> Column:
    return Column(name, type_, note, **kw)


def _required(name: str, type_: str = "VARCHAR", note: str = "") -> Column:
    """NOT NULL: a key column, or a value a row is meaningless without."""
    return Column(name, type_, note, not_null=True)


META = Table("meta", (_c("key", primary_key=True), _c("value")))

SCANS = Table("scans", (
    _c("scan_id", primary_key=True),
    _c("kind", note="sweep | scan | scan-files | lint"),
    _c("started_at", "TIMESTAMP"),
    _c("finished_at", "TIMESTAMP"),
    _c("status", note="running | complete | incomplete | failed"),
    _c("complete", "BOOLEAN"),
    _c("params", "JSON"),
    _c("environments_planned", "INTEGER"), _c("environments_scanned", "INTEGER"),
    _c("flows_planned", "INTEGER"), _c("flows_scanned", "INTEGER"),
    _c("runs_planned", "INTEGER"), _c("runs_scanned", "INTEGER"),
    _c("content_fetched", "INTEGER"), _c("content_reused", "INTEGER"), _c("bytes_downloaded", "BIGINT"),
    _c("requests", "INTEGER"), _c("throttled", "INTEGER"), _c("retries", "INTEGER"),
    _c("skipped", "INTEGER"), _c("findings", "INTEGER"),
    _c("error"),
))

ENVIRONMENTS = Table("environments", (
    _c("environment", primary_key=True),
    _c("display_name"),
    _c("location"),
    _c("is_default", "BOOLEAN"),
    _c("flow_endpoint"),
    _c("scan_id"),
    _c("last_seen", "TIMESTAMP"),
))

FLOWS = Table("flows", (
    _required("environment"),
    _required("flow_id"),
    _c("display_name"),
    _c("creator", note="creator object id (Entra ID)"),
    _c("state"),
    _c("definition_hash", note="sha256 of the canonical definition JSON"),
    _c("created_time", "TIMESTAMP"),
    _c("last_modified_time", "TIMESTAMP"),
    _c("trigger_type"),
    _c("connectors", "VARCHAR[]"),
    _c("modified_marker", note="lastModifiedTime as the API gave it: unchanged flows are not re-read"),
    _c("scan_id"),
    _c("last_seen", "TIMESTAMP"),
), primary_key=("environment", "flow_id"))

RUNS = Table("runs", (
    _required("environment"),
    _required("flow_id"),
    _required("run_id"),
    _c("start_time", "TIMESTAMP", "UTC (the API's 7th fractional digit is dropped here; see watermarks)"),
    _c("end_time", "TIMESTAMP"),
    _c("status"),
    _c("scan_id"),
    _c("trigger_name"),
    _c("actions", "INTEGER"),
    _c("content_scanned", "INTEGER"),
    _c("content_skipped", "INTEGER"),
    _c("scanned_at", "TIMESTAMP"),
), primary_key=("environment", "flow_id", "run_id"))

ACTIONS = Table("actions", (
    _c("action_key", note="hash of environment, flow, run, action, repetition: a rescan replaces",
       primary_key=True),
    _c("environment"), _c("flow_id"), _c("run_id"),
    _c("action"), _c("repetition"),
    _c("status"), _c("code"),
    _c("inputs_secured", "BOOLEAN"), _c("outputs_secured", "BOOLEAN"),
    _c("inputs_size", "BIGINT"), _c("outputs_size", "BIGINT"),
    _c("scan_id"),
))

FINDINGS = Table("findings", (
    _c("finding_id", note="stable: hash of location + rule + fingerprint", primary_key=True),
    _c("scan_id", note="the scan that last saw it"),
    _c("environment"),
    _c("flow_id"),
    _c("run_id"),
    _c("action"),
    _c("repetition"),
    _c("side"),
    _c("json_path"),
    _c("rule_id"),
    _c("detector", note="pattern | entropy | known_value | posture"),
    _c("fingerprint", note="hex HMAC-SHA256(key, secret)"),
    _c("preview", note="'ghp_…(40)'"),
    _c("secret_length", "INTEGER"),
    _c("visible", "BOOLEAN"),
    _c("known_secret", note="vault/name or input line for known values; never the value"),
    _c("first_seen", "TIMESTAMP"),
    _c("last_seen", "TIMESTAMP"),
    _c("status", note="open | suppressed | resolved"),
    _c("confidence"),
    _c("decoding"),
    _c("severity"),
    _c("message"),
    _c("cause", note="posture rule + action that explains a run finding"),
    _c("remediation"),
    _c("run_start", "TIMESTAMP"),
    _c("first_scan_id"),
    _c("file", note="scan-files: the file as given (null for API scans)"),
))

SKIPPED = Table("skipped", (
    _c("scan_id"),
    _c("environment"),
    _c("flow_id"),
    _c("run_id"),
    _c("action"),
    _c("side"),
    _c("reason"),
    _c("detail"),
    _c("repetition"),
    _c("recorded_at", "TIMESTAMP"),
    _c("file"),
))

FILTERED = Table("filtered", (
    _c("scan_id"),
    _c("environment"), _c("flow_id"), _c("run_id"), _c("action"), _c("side"),
    _c("json_path"),
    _c("rule_id"),
    _c("filter"),
    _c("recorded_at", "TIMESTAMP"),
    _c("file"),
))

WATERMARKS = Table("watermarks", (
    _required("environment"),
    _required("flow_id"),
    _c("last_run_start", "TIMESTAMP"),
    _c("running_runs", "VARCHAR[]", "runs still Running at the last scan: fetched again next time"),
    _c("last_run_start_raw", note="as the API wrote it (7 fractional digits): the exact `gt` filter"),
    _c("scan_id"),
    _c("updated_at", "TIMESTAMP"),
), primary_key=("environment", "flow_id"))

CONTENT_RESULTS = Table("content_results", (
    _required("content_key", note="md5 contentHash + ':' + contentSize of a content body"),
    _required("engine_version", note="detectors + known-value set; a change invalidates the cache"),
    _c("result", "JSON", "redacted hits (fingerprint, preview, path, rule), skips, drops"),
    _c("scanned_at", "TIMESTAMP"),
), primary_key=("content_key", "engine_version"))

SUPPRESSIONS = Table("suppressions", (
    _required("fingerprint", note="a secret fingerprint or a finding_id"),
    _c("rule_id", note="optional: only this rule"),
    _required("reason"),
    _c("created_at", "TIMESTAMP"),
    _c("expires_at", "TIMESTAMP"),
    _c("created_by"),
    _c("last_matched_scan"),
))

# In the order they are created (as every version before created them).
TABLES = (META, SCANS, ENVIRONMENTS, FLOWS, RUNS, ACTIONS, FINDINGS, SKIPPED, FILTERED, WATERMARKS,
          CONTENT_RESULTS, SUPPRESSIONS)
SCHEMA = "\n".join(t.ddl() for t in TABLES)

# The rows a scan hands the store, column by column. `scan-files` rows carry one more column, the file
# (last in its table); a batch's rows are all of one width.
FILE_COLUMN = "file"
FINDING_COLUMNS = FINDINGS.without(FILE_COLUMN)
SKIPPED_COLUMNS = SKIPPED.without(FILE_COLUMN)
FILTERED_COLUMNS = FILTERED.without(FILE_COLUMN)
FILE_FINDING_COLUMNS = FINDINGS.names
FILE_SKIPPED_COLUMNS = SKIPPED.names
FILE_FILTERED_COLUMNS = FILTERED.names


# -- versions -------------------------------------------------------------------------------------

def _v2_file_columns(con: duckdb.DuckDBPyConnection) -> None:
    """v1 → v2: the scan-files `file` column of findings, skipped and filtered (a table the database
    lacks altogether is created whole after the steps)."""
    for table in ("findings", "skipped", "filtered"):
        con.execute(f"ALTER TABLE IF EXISTS {table} ADD COLUMN IF NOT EXISTS file VARCHAR")


# MIGRATIONS[n] turns a database of version n - 1 into version n. Written once, never changed: a step
# says what version n was, whatever the tables look like today.
MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    2: _v2_file_columns,
}


def parse_version(path: str, raw: object) -> int:
    """The version a meta row holds; anything but a version some flowleaks wrote is refused."""
    text = "" if raw is None else str(raw).strip()
    if not text.isdigit() or int(text) < 1:
        raise StoreOpenError(f"cannot open {path}: its schema version {text[:40]!r} is not one flowleaks writes")
    return int(text)


def refuse_newer(path: str, version: int | None) -> None:
    """A database of a newer flowleaks is refused in one line (exit 2): never read as if it were ours."""
    if version is not None and version > SCHEMA_VERSION:
        raise StoreOpenError(f"cannot open {path}: it has schema version {version}, written by a newer flowleaks "
                             f"(this one knows versions up to {SCHEMA_VERSION}); upgrade flowleaks to use it")


def stored_version(con: duckdb.DuckDBPyConnection, path: str) -> int | None:
    """The database's version: None when it has no meta table (a new database, or not one of ours)."""
    has_meta = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                           "AND schema_name = 'main' AND table_name = 'meta'").fetchall()[0][0]
    if not has_meta:
        return None
    rows = con.execute("SELECT value FROM meta WHERE key = ?", [VERSION_KEY]).fetchall()
    return parse_version(path, rows[0][0]) if rows else 1


def check_readable(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """For a read-only connection (nothing can be migrated): refuse a newer schema; an older one is
    read as it is."""
    refuse_newer(path, stored_version(con, path))


def _write_version(con: duckdb.DuckDBPyConnection, version: int) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [VERSION_KEY, str(version)])


def migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Bring a database of `version` up to SCHEMA_VERSION, one step (one transaction) at a time."""
    for target in range(version + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            MIGRATIONS[target](con)
            _write_version(con, target)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def prepare(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Make the database one of this version: refuse a newer one, migrate an older one, create what is
    missing (every table of a new database), the views, and the version row."""
    version = stored_version(con, path)
    refuse_newer(path, version)
    if version is not None:
        migrate(con, version)
    con.execute(SCHEMA)
    create_views(con)
    _write_version(con, SCHEMA_VERSION)
