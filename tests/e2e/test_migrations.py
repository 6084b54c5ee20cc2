"""The installed CLI on a database written by flowleaks before schema versions (tests/data/schema-v1.duckdb):
`query` reads it, a nightly `scan` migrates and extends it, and a database of a newer flowleaks is refused
in one line by every command that opens one."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest

from scanner.store.schema import SCHEMA_VERSION
from tests.e2e.conftest import ROOT, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant

FIXTURE = ROOT / "tests" / "data" / "schema-v1.duckdb"
FIXTURE_KEY = "schema-v1-fixture-key"  # tests/data/make_schema_v1.py
# "Flows leaking most", from the README's Ready SQL
README_QUERY = next(q for q in re.findall(r"```sql\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                                          flags=re.S) if "FROM findings_by_flow" in q)


@pytest.fixture()
def v1(tmp_path) -> Path:
    path = tmp_path / "v1.duckdb"
    shutil.copyfile(FIXTURE, path)
    path.chmod(0o600)
    return path


def version(db: Path) -> str:
    return rows(db, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0]


def env(**extra: str) -> dict[str, str]:
    return {"FLOWLEAKS_FINGERPRINT_KEY": FIXTURE_KEY, **extra}


def test_a_readme_query_reads_the_v1_database_as_it_is_and_once_migrated(v1):
    expected = rows(FIXTURE, "SELECT count(*) FROM findings_by_flow WHERE open_findings > 0")[0][0]
    assert expected > 0
    for _ in range(2):  # as written by the old flowleaks (read-only: nothing migrated), then migrated
        r = flowleaks("query", README_QUERY, "--db", v1, "--format", "csv", env=env())
        assert r.code == 0, r.stderr
        assert r.stdout.splitlines()[0].startswith("environment_name,flow_name,flow_id")
        assert len(r.stdout.splitlines()) == 1 + expected
        assert version(v1) in ("1", str(SCHEMA_VERSION))
        s = flowleaks("suppress", "0" * 64, "--reason", "migrates the database", "--db", v1, env=env())
        assert s.code == 0, s.stderr
        assert version(v1) == str(SCHEMA_VERSION)


def test_a_nightly_scan_into_the_v1_database_migrates_it_and_keeps_what_it_held(v1):
    # the tenant the fixture was made from (seed and shape as tests/data/make_schema_v1.py), now
    tenant = Tenant.generate(seed=29, environments=1, flows_per_env=4, runs_per_flow=4, history_days=38,
                             running_fraction=0, vault_size=4)
    findings = {r[0] for r in rows(v1, "SELECT finding_id FROM findings")}
    suppressions = rows(v1, "SELECT * FROM suppressions ORDER BY ALL")
    scans = {r[0] for r in rows(v1, "SELECT scan_id FROM scans")}
    with FakeFlowApi(tenant) as api:
        r = flowleaks("scan", "--as-admin", "--quiet", env=env(**api.env_vars(), FLOWLEAKS_DB=str(v1)))
    assert r.code == 1, r.stderr
    assert version(v1) == str(SCHEMA_VERSION)
    assert findings <= {r[0] for r in rows(v1, "SELECT finding_id FROM findings")}
    assert [s[:5] for s in rows(v1, "SELECT * FROM suppressions ORDER BY ALL")] == [s[:5] for s in suppressions]
    assert rows(v1, "SELECT kind, complete FROM scans WHERE NOT list_contains(?, scan_id)", [list(scans)]) == \
        [("scan", True)]
    # the suppression by fingerprint still holds its findings (none open; resolved ones stay resolved)
    fp = rows(v1, "SELECT fingerprint FROM suppressions WHERE rule_id IS NULL")[0][0]
    statuses = {s for (s,) in rows(v1, "SELECT DISTINCT status FROM findings WHERE fingerprint = ?", [fp])}
    assert "suppressed" in statuses and "open" not in statuses, statuses


def test_a_database_of_a_newer_flowleaks_is_refused_in_one_line(v1):
    con = duckdb.connect(str(v1))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    before = v1.read_bytes()
    nowhere = {"FLOWLEAKS_ACCESS_TOKEN": "t", "FLOWLEAKS_FLOW_API_URL": "http://127.0.0.1:9"}
    commands = ((("query", "SELECT 1"), {}), (("export", "--format", "csv", "--out", v1.parent / "x.csv"), {}),
                (("suppressions",), {}), (("suppress", "0" * 64, "--reason", "x"), {}),
                (("scan", "--as-admin", "--quiet"), nowhere))
    for args, extra in commands:
        r = flowleaks(*args, env=env(FLOWLEAKS_DB=str(v1), **extra))
        assert r.code == 2, (args, r.code, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert f"schema version {SCHEMA_VERSION + 1}, written by a newer flowleaks" in r.stderr, (args, r.stderr)
    assert v1.read_bytes() == before
