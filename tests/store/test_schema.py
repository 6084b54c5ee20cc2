"""The schema's versions: a database written by flowleaks before versions (tests/data/schema-v1.duckdb,
see tests/data/README.md) opens at the current version with every row intact; a newer one is refused
in one line and left as it was."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from scanner.store.database import Store
from scanner.store.errors import StoreOpenError
from scanner.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from scanner.store.views import VIEWS

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "schema-v1.duckdb"
FIXTURE_KEY = "schema-v1-fixture-key"  # the key it was made with (tests/data/make_schema_v1.py)


@pytest.fixture()
def v1(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", FIXTURE_KEY)
    path = tmp_path / "v1.duckdb"
    shutil.copyfile(FIXTURE, path)
    path.chmod(0o600)
    return path


def run(db: Path, *sql: str) -> None:
    con = duckdb.connect(str(db))
    try:
        for s in sql:
            con.execute(s)
    finally:
        con.close()


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table (the version row aside), sorted."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        out = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    finally:
        con.close()
    out["meta"] = [r for r in out["meta"] if r[0] != "schema_version"]
    return out


def version(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()[0][0]
    finally:
        con.close()


def columns(db: Path) -> dict[str, list[tuple[str, str]]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE table_oid IN "
                           "(SELECT table_oid FROM duckdb_tables() WHERE database_name = current_database()) "
                           "ORDER BY table_name, column_index").fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        out.setdefault(table, []).append((column, type_))
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_fixture_is_a_v1_database_with_rows_in_every_table_that_matters():
    before = snapshot(FIXTURE)
    assert version(FIXTURE) == "1"
    for table in ("scans", "environments", "flows", "runs", "actions", "findings", "skipped", "filtered",
                  "watermarks", "content_results", "suppressions"):
        assert before[table], table
    statuses = {r[0] for r in duckdb.connect(str(FIXTURE), read_only=True).execute(
        "SELECT DISTINCT status FROM findings").fetchall()}
    assert statuses == {"open", "suppressed", "resolved"}


def test_a_v1_database_opens_at_the_current_version_with_every_row_intact(v1):
    before = snapshot(v1)
    Store(v1).close()
    assert version(v1) == str(SCHEMA_VERSION)
    assert snapshot(v1) == before
    # its tables are now exactly the current definitions, column for column
    assert {t.name: [(c.name, c.type) for c in t.columns] for t in TABLES} == columns(v1)
    store = Store(v1)
    try:
        for name in VIEWS:
            store.query(f"SELECT count(*) FROM {name}")
        assert store.query("SELECT count(*) FROM open_findings")[0][0] > 0
    finally:
        store.close()


def test_the_oldest_v1_databases_get_the_scan_files_columns(v1):
    """v1 databases from before scan-files have no `file` column: step 2 adds it to every table, and
    the rows keep their values."""
    run(v1, *(f"ALTER TABLE {t} DROP COLUMN file" for t in ("findings", "skipped", "filtered")))
    before = {t: rows for t, rows in snapshot(v1).items()}
    Store(v1).close()
    after = snapshot(v1)
    assert version(v1) == str(SCHEMA_VERSION)
    for table in ("findings", "skipped", "filtered"):
        assert [r[:-1] for r in after[table]] == before[table] and {r[-1] for r in after[table]} == {None}
    assert {t.name: [(c.name, c.type) for c in t.columns] for t in TABLES} == columns(v1)


def test_a_step_run_twice_is_harmless(v1):
    """A flowleaks from before versions writes '1' back into any database it opens; the next open runs
    the steps again over a database that has them already."""
    Store(v1).close()
    migrated = snapshot(v1)
    run(v1, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    Store(v1).close()
    assert version(v1) == str(SCHEMA_VERSION) and snapshot(v1) == migrated


def test_a_new_database_records_the_current_version(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", "k")
    Store(tmp_path / "new.duckdb").close()
    assert version(tmp_path / "new.duckdb") == str(SCHEMA_VERSION)


def test_a_step_that_fails_leaves_the_database_at_the_version_before_it(v1, monkeypatch):
    run(v1, "ALTER TABLE skipped DROP COLUMN file")
    before = snapshot(v1)
    step = MIGRATIONS[2]

    def half_done(con):
        step(con)
        raise RuntimeError("stopped mid-step")

    monkeypatch.setitem(MIGRATIONS, 2, half_done)
    with pytest.raises(RuntimeError, match="mid-step"):
        Store(v1)
    assert version(v1) == "1" and snapshot(v1) == before
    assert "file" not in {c for c, _ in columns(v1)["skipped"]}


def test_one_migration_per_version():
    assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("stored, why", [(str(SCHEMA_VERSION + 1), "newer flowleaks"),
                                         ("two", "not one flowleaks writes")])
def test_a_newer_or_unknown_version_is_refused_in_one_line_and_the_file_is_left_as_it_was(v1, stored, why):
    run(v1, f"UPDATE meta SET value = '{stored}' WHERE key = 'schema_version'")
    before = digest(v1)
    for read_only in (False, True):
        with pytest.raises(StoreOpenError) as caught:
            Store(v1, read_only=read_only)
        message = str(caught.value)
        assert why in message and str(v1) in message and "\n" not in message, message
        assert caught.value.exit_code == 2
    assert digest(v1) == before
