"""`flowleaks merge OUT SHARD…`: the shard databases of `scan --shard K/N`, merged, equal what one
process scanning the whole tenant writes — night after night, after a kill -9, and merged twice; what
cannot be merged is refused before OUT is touched."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb

import pytest

from scanner.store.merge import COMPARED, comparable_rows
from scanner.store.schema import SCHEMA_VERSION

from tests.e2e.conftest import KEY, assert_nothing_leaks, cli_env, flowleaks, installed_cli, rows
from tests.fakeapi import FakeFlowApi, Faults

OTHER_KEY = "another-fingerprint-key-for-the-merge-test"


# -- helpers ----------------------------------------------------------------------------------------

def scan_shards(api, dbs, *extra: str, ok=(0, 1), own: dict[int, tuple] | None = None) -> None:
    """`flowleaks scan --shard K/N` for every db at once (as an Indexed Job's pods run); `own`: shard
    index -> options instead of `extra`."""
    count, own = len(dbs), own or {}
    procs = [subprocess.Popen([installed_cli(), "scan", "--as-admin", "--quiet", *own.get(k, extra),
                               "--shard", f"{k}/{count}"],
                              env={**os.environ, **cli_env(api, db)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k, db in enumerate(dbs)]
    for k, p in enumerate(procs):
        _, err = p.communicate(timeout=120)
        assert p.returncode in ok, (k, p.returncode, err)


def scan_whole(api, db, *extra: str) -> None:
    r = flowleaks("scan", "--as-admin", "--quiet", *extra, env=cli_env(api, db))
    assert r.code == 1, r.stderr


def merge(out, *shards):
    return flowleaks("merge", out, *shards)


def merge_id(result) -> str:
    m = re.search(r"flowleaks merge (merge-[0-9a-f]{16}):", result.stdout)
    assert m, result.stdout + result.stderr
    return m.group(1)


def merged_scan(db, scan_id: str) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rel = con.sql("SELECT * FROM scans WHERE scan_id = ?", params=[scan_id])
        found = [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()
    assert len(found) == 1, (scan_id, found)
    found[0]["params"] = json.loads(found[0]["params"])
    return found[0]


content = comparable_rows


def assert_scanned(r, db) -> None:
    """A shard scan's exit code is exactly its part's: 1 with open findings in its database, else 0."""
    open_findings = rows(db, "SELECT count(*) FROM findings WHERE status = 'open'")[0][0]
    assert r.code == (1 if open_findings else 0), (r.code, r.stderr)


def assert_same_tenant(merged, single, merged_scans=None, single_scans=None) -> None:
    """Row for row, every compared table (skipped/filtered: of the given scans when given)."""
    for table in COMPARED:
        by_scan = table in ("skipped", "filtered")
        a = content(merged, table, merged_scans if by_scan else None)
        b = content(single, table, single_scans if by_scan else None)
        assert a, table  # a table that is empty on both sides proves nothing
        if a != b:
            only_a, only_b = set(map(repr, a)) - set(map(repr, b)), set(map(repr, b)) - set(map(repr, a))
            pytest.fail(f"{table}: merged {len(a)} rows, single {len(b)}; only merged {sorted(only_a)[:2]}, "
                        f"only single {sorted(only_b)[:2]}")
    ids = lambda db: {r[0] for r in rows(db, "SELECT finding_id FROM findings")}  # noqa: E731
    assert ids(merged) == ids(single)


def latest_scan(db) -> str:
    return rows(db, "SELECT scan_id FROM scans WHERE kind = 'scan' ORDER BY started_at DESC LIMIT 1")[0][0]


def snapshot(db) -> dict[str, list[tuple]]:
    """Every table, every column, sorted: what "identical" means for a merged twice OUT."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE "
                                            "database_name = current_database() ORDER BY 1").fetchall()]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    finally:
        con.close()


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@dataclass
class Shards:
    api: FakeFlowApi
    dir: Path
    shards: list[Path]      # shard 0/3, 1/3, 2/3
    single: Path            # one process, the whole tenant
    merged: Path            # merge of the three (not to be written by tests: copy it)


@pytest.fixture(scope="module")
def built(tenant, tmp_path_factory):
    """Three shard databases and one unsharded database of one tenant, from one fake (one Flow API root:
    databases from two fakes would differ in `flow_api`, i.e. be of another tenant)."""
    d = tmp_path_factory.mktemp("merge")
    with FakeFlowApi(tenant) as api:
        shards = [d / f"shard-{k}.duckdb" for k in range(3)]
        scan_shards(api, shards)
        scan_whole(api, d / "single.duckdb")
        r = merge(d / "merged.duckdb", *shards)
        assert r.code == 1, r.stdout + r.stderr
        yield Shards(api, d, shards, d / "single.duckdb", d / "merged.duckdb")


# -- the Done-when --------------------------------------------------------------------------

def test_three_shards_merge_to_what_one_process_writes_night_after_night(tenant, tmp_path):
    out, single = tmp_path / "out" / "tenant.duckdb", tmp_path / "single.duckdb"
    shards = [tmp_path / f"shard-{k}.duckdb" for k in range(3)]
    with FakeFlowApi(tenant) as api:
        api.show_runs_until(tenant.now - timedelta(days=3))  # night 1: the newest runs are not there yet
        scan_shards(api, shards)
        scan_whole(api, single)
        first = merge(out, *shards)
        assert first.code == 1, first.stdout + first.stderr
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        assert_same_tenant(out, single)
        night1 = merged_scan(out, merge_id(first))
        assert (night1["kind"], night1["status"], night1["complete"]) == ("merge", "complete", True)
        assert [(s["index"], s["count"], s["complete"]) for s in night1["params"]["shards"]] == \
            [(0, 3, True), (1, 3, True), (2, 3, True)]
        assert night1["runs_scanned"] == rows(single, "SELECT runs_scanned FROM scans")[0][0]
        assert "3 of 3 shards" in first.stdout and "Merge complete" in first.stdout
        runs_night1 = rows(out, "SELECT count(*) FROM runs")[0][0]

        api.show_runs_until(None)  # night 2: new runs; the shard databases persist and grow
        scan_shards(api, shards)
        scan_whole(api, single)
        second = merge(out, *shards)
        assert second.code == 1, second.stdout + second.stderr
    assert rows(out, "SELECT count(*) FROM runs")[0][0] > runs_night1
    assert_same_tenant(out, single)
    night2 = merged_scan(out, merge_id(second))
    assert night2["scan_id"] != night1["scan_id"] and night2["complete"] is True
    assert rows(out, "SELECT count(*) FROM scans WHERE kind = 'merge'")[0][0] == 2
    assert rows(out, "SELECT count(*) FROM scans WHERE kind = 'scan'")[0][0] == 6
    # what the merged database and the command's output hold: previews and keyed fingerprints only
    assert_nothing_leaks(tenant.secrets() | {api.token}, out, [],
                         [first.stdout, first.stderr, second.stdout, second.stderr])


def test_a_shard_killed_with_sigkill_and_rerun_merges_to_the_same_result(tenant, tmp_path):
    ref = [tmp_path / f"ref-{k}.duckdb" for k in range(3)]
    killed = tmp_path / "killed-1.duckdb"
    with FakeFlowApi(tenant) as api:
        scan_shards(api, ref)
        reference = merge(tmp_path / "reference.duckdb", *ref)
        assert reference.code == 1, reference.stdout + reference.stderr

        api.faults.latency_ms = 15  # slow enough for the kill to land mid-scan
        before = api.stats.by_kind.get("run", 0)
        proc = subprocess.Popen([installed_cli(), "scan", "--as-admin", "--quiet", "--shard", "1/3"],
                                env={**os.environ, **cli_env(api, killed)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while api.stats.by_kind.get("run", 0) - before < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the shard finished before it could be killed; slow the fake down"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        api.faults.latency_ms = 0

        out = tmp_path / "out.duckdb"
        # the killed shard's scan is still `running` in its database: merged, it is incomplete
        dead = merge(out, ref[0], killed, ref[2])
        assert dead.code == 3, dead.stdout + dead.stderr
        assert "INCOMPLETE (interrupted)" in dead.stdout and "Merge complete" not in dead.stdout
        row = merged_scan(out, merge_id(dead))
        assert (row["complete"], row["error"]) == (False, "shard 1/3 interrupted")
        assert rows(out, "SELECT status, complete FROM scans WHERE kind = 'scan' AND scan_id NOT IN "
                         "(SELECT scan_id FROM scans WHERE status = 'complete')") == [("interrupted", False)]

        again = flowleaks("scan", "--as-admin", "--quiet", "--shard", "1/3", env=cli_env(api, killed))
        assert_scanned(again, killed)
        assert rows(killed, "SELECT status FROM scans ORDER BY started_at") == [("interrupted",), ("complete",)]
        resumed = merge(out, ref[0], killed, ref[2])
        assert resumed.code == 1, resumed.stdout + resumed.stderr
    merged_scans = [s["scan_id"] for s in merged_scan(out, merge_id(resumed))["params"]["shards"]]
    reference_scans = [s["scan_id"] for s in merged_scan(tmp_path / "reference.duckdb",
                                                         merge_id(reference))["params"]["shards"]]
    assert merged_scan(out, merge_id(resumed))["complete"] is True
    # the killed scan may have recorded skips of its own: compare the latest complete scans' rows
    assert_same_tenant(out, tmp_path / "reference.duckdb", merged_scans, reference_scans)


def test_a_tenant_level_skip_every_shard_records_is_kept_once_a_night(tenant, tmp_path):
    """An environment that refuses listing, a vault that cannot be reached: every shard records it (each
    lists every environment, each loads the known values), one process records it once a night. On
    night 1 shard 0 is not given the vault: that night's vault skip comes from shard 1 alone."""
    denied = tenant.flows[0].environment
    denied = getattr(denied, "name", denied)
    vault = ("--known-vault", "http://127.0.0.1:9/")  # nothing listens there
    out, single = tmp_path / "out.duckdb", tmp_path / "single.duckdb"
    shards = [tmp_path / f"shard-{k}.duckdb" for k in range(3)]
    with FakeFlowApi(tenant, faults=Faults(denied_environments=[denied])) as api:
        for night in (1, 2):
            api.show_runs_until(tenant.now - timedelta(days=3) if night == 1 else None)
            scan_shards(api, shards, *vault, ok=(0, 1, 3), own={0: ()} if night == 1 else None)
            scan_whole(api, single, *vault)
            r = merge(out, *shards)
            assert r.code == 3, r.stdout + r.stderr  # the denied environment: every shard is incomplete
    tenant_level = "SELECT count(*) FROM skipped WHERE flow_id IS NULL"
    assert rows(single, tenant_level)[0][0] == 4  # two nights of (the environment, the vault)
    assert sum(rows(db, tenant_level)[0][0] for db in shards) == 3 * 4 - 1
    assert_same_tenant(out, single)


# -- refused: exit 2, one line, OUT untouched -----------------------------------------------------

def _copy_with(src: Path, dst: Path, sql: str) -> Path:
    shutil.copy(src, dst)
    con = duckdb.connect(str(dst))
    con.execute(sql)
    con.close()
    return dst


def _another_key(b: Shards, tmp: Path) -> list[Path]:
    other = tmp / "other-key-2.duckdb"
    r = flowleaks("scan", "--as-admin", "--quiet", "--shard", "2/3", env=cli_env(b.api, other,
                                                                                  FLOWLEAKS_FINGERPRINT_KEY=OTHER_KEY))
    assert_scanned(r, other)
    return [b.shards[0], b.shards[1], other]


def _mixed_counts(b: Shards, tmp: Path) -> list[Path]:
    half = tmp / "half-1.duckdb"
    r = flowleaks("scan", "--as-admin", "--quiet", "--shard", "1/2", env=cli_env(b.api, half))
    assert_scanned(r, half)
    return [b.shards[0], half]


def _not_flowleaks(b: Shards, tmp: Path) -> list[Path]:
    text = tmp / "notes.duckdb"
    text.write_text("not a database\n" * 100)
    return [b.shards[0], text]


def _plain_duckdb(b: Shards, tmp: Path) -> list[Path]:
    plain = tmp / "plain.duckdb"
    con = duckdb.connect(str(plain))
    con.execute("CREATE TABLE findings(x INTEGER)")
    con.close()
    return [b.shards[0], plain]


CASES = {
    "another fingerprint key": (_another_key, "another fingerprint key"),
    "an older schema version": (lambda b, tmp: [b.shards[0], _copy_with(
        b.shards[1], tmp / "old.duckdb", "UPDATE meta SET value = '1' WHERE key = 'schema_version'")],
        f"schema version 1, this flowleaks merges schema version {SCHEMA_VERSION} only"),
    "a newer schema version": (lambda b, tmp: [b.shards[0], _copy_with(
        b.shards[1], tmp / "new.duckdb", f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' "
                                         "WHERE key = 'schema_version'")],
        f"schema version {SCHEMA_VERSION + 1}, this flowleaks merges schema version {SCHEMA_VERSION} only"),
    "another tenant": (lambda b, tmp: [b.shards[0], _copy_with(
        b.shards[1], tmp / "tenant.duckdb", "INSERT OR REPLACE INTO meta VALUES ('tenant', 'contoso-other')")],
        "another tenant"),
    "another flow api": (lambda b, tmp: [b.shards[0], _copy_with(
        b.shards[1], tmp / "api.duckdb", "INSERT OR REPLACE INTO meta VALUES ('flow_api', "
                                         "'https://api.flow.example.com/?sig=abc123secret')")],
        "another tenant"),
    "not a DuckDB file": (_not_flowleaks, "is not a flowleaks database"),
    "a DuckDB file of something else": (_plain_duckdb, "is not a flowleaks database"),
    "an unsharded database": (lambda b, tmp: [b.shards[0], b.single], "is not a shard database"),
    "a shard index twice": (lambda b, tmp: [b.shards[0], b.shards[1], shutil.copy(b.shards[0], tmp / "again.duckdb")],
                            "both hold shard 0/3"),
    "different shard counts": (_mixed_counts, "different shard counts"),
}


@pytest.mark.parametrize("case", CASES)
def test_what_cannot_be_merged_is_refused_and_out_is_not_touched(built, tmp_path, case):
    make, message = CASES[case]
    shards = make(built, tmp_path)
    fresh = tmp_path / "new" / "out.duckdb"
    r = merge(fresh, *shards)
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line, no traceback
    assert not fresh.exists() and not fresh.parent.exists()
    # an existing OUT (last night's merge) is left byte for byte as it was
    existing = tmp_path / "last-night.duckdb"
    shutil.copy(built.merged, existing)
    before = digest(existing)
    r = merge(existing, *shards)
    assert r.code == 2 and message in r.stderr, (r.code, r.stderr)
    assert digest(existing) == before and not Path(str(existing) + ".wal").exists()
    for secret in (KEY, OTHER_KEY, "abc123secret"):  # no key material, no URL query
        assert secret not in r.stdout + r.stderr


def test_shards_of_another_fingerprint_key_than_out_are_refused(built, tmp_path):
    other = tmp_path / "other-key.duckdb"
    r = flowleaks("scan", "--as-admin", "--quiet", "--shard", "0/3",
                  env=cli_env(built.api, other, FLOWLEAKS_FINGERPRINT_KEY=OTHER_KEY))
    assert_scanned(r, other)
    existing = tmp_path / "out.duckdb"
    shutil.copy(built.merged, existing)
    before = digest(existing)
    r = merge(existing, other)
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    assert f"OUT {existing} was scanned with another fingerprint key" in r.stderr
    assert digest(existing) == before
    assert KEY not in r.stderr and OTHER_KEY not in r.stderr


def test_last_nights_out_of_an_older_schema_version_is_migrated_as_it_is_merged_into(built, tmp_path):
    """OUT is opened for writing (the shards only read): an older one is brought up to date, not refused."""
    out = _copy_with(built.merged, tmp_path / "v1.duckdb", "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    r = merge(out, *built.shards)
    assert r.code == 1, (r.code, r.stdout, r.stderr)
    assert rows(out, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert_same_tenant(out, built.single)


# -- incomplete, idempotent, suppressions ------------------------------------------------------------

def test_a_missing_shard_merges_incomplete_and_a_later_full_merge_completes(built, tmp_path):
    out = tmp_path / "out.duckdb"
    r = merge(out, built.shards[0], built.shards[2])
    assert r.code == 3, (r.code, r.stdout, r.stderr)  # incomplete, even with open findings
    assert "missing shard 1/3" in r.stderr
    assert "shard 1/3  MISSING" in r.stdout and "Merge INCOMPLETE" in r.stdout
    assert "Merge complete" not in r.stdout and "No open findings" not in r.stdout
    row = merged_scan(out, merge_id(r))
    assert (row["status"], row["complete"], row["params"]["missing"]) == ("incomplete", False, [1])
    assert "shard 1/3 missing" in row["error"]
    # the missing shard arrives: the same OUT becomes the whole tenant
    full = merge(out, *built.shards)
    assert full.code == 1, full.stdout + full.stderr
    assert merged_scan(out, merge_id(full))["complete"] is True
    assert_same_tenant(out, built.single)


def test_merging_the_same_shards_twice_gives_identical_out(built, tmp_path):
    out = tmp_path / "out.duckdb"
    first = merge(out, *built.shards)
    assert first.code == 1, first.stdout + first.stderr
    once = snapshot(out)
    second = merge(out, *built.shards)
    assert second.code == 1, second.stdout + second.stderr
    assert snapshot(out) == once
    assert merge_id(first) == merge_id(second)
    assert first.stdout.replace(str(out), "") == second.stdout.replace(str(out), "")
    assert sum(len(v) for v in once.values()) > 0 and once["skipped"] and once["content_results"]


def test_a_suppression_made_on_the_merged_database_survives_the_next_merge(built, tmp_path):
    out = tmp_path / "out.duckdb"
    shutil.copy(built.merged, out)
    finding, fingerprint = rows(out, "SELECT finding_id, fingerprint FROM findings WHERE status = 'open' "
                                     "AND detector = 'pattern' ORDER BY finding_id LIMIT 1")[0]
    open_before = rows(out, "SELECT count(*) FROM findings WHERE status = 'open'")[0][0]
    s = flowleaks("suppress", finding, "--reason", "test tenant key", "--db", out)
    assert s.code == 0, s.stderr
    suppressed = rows(out, "SELECT count(*) FROM findings WHERE status = 'suppressed'")[0][0]
    assert suppressed >= 1
    # the shards know nothing of it: their rows say open, and replace OUT's
    assert rows(built.shards[0], "SELECT count(*) FROM suppressions")[0][0] == 0
    r = merge(out, *built.shards)
    assert r.code == 1, r.stdout + r.stderr
    assert rows(out, "SELECT status FROM findings WHERE finding_id = ?", [finding]) == [("suppressed",)]
    assert rows(out, "SELECT count(*) FROM findings WHERE status = 'suppressed'")[0][0] == suppressed
    assert rows(out, "SELECT count(*) FROM findings WHERE status = 'open'")[0][0] == open_before - suppressed
    assert f"{open_before - suppressed} open findings" in r.stdout
    assert rows(out, "SELECT last_matched_scan FROM suppressions WHERE fingerprint = ?", [fingerprint]) == \
        [(merge_id(r),)]


def test_suppressions_stale_on_a_merged_database_judges_by_every_shard_of_the_last_merge(built, tmp_path):
    """`suppressions --stale` on OUT: the last complete scan is the last merge, i.e. all its shards' scans
    (one shard's scan alone would call a suppression matched by another shard stale)."""
    out = tmp_path / "out.duckdb"
    shutil.copy(built.merged, out)
    picked = []
    for shard in built.shards:  # one open finding from each shard's own flows
        picked += rows(shard, "SELECT finding_id FROM findings WHERE status = 'open' ORDER BY finding_id LIMIT 1")
    assert len(picked) == len(built.shards)
    for (finding,) in picked:
        assert flowleaks("suppress", finding, "--reason", "accepted risk", "--db", out).code == 0
    assert merge(out, *built.shards).code == 1
    stale = flowleaks("suppressions", "--stale", "--format", "json", "--db", out)
    assert stale.code == 0, stale.stderr
    assert json.loads(stale.stdout) == []
    listed = json.loads(flowleaks("suppressions", "--format", "json", "--db", out).stdout)
    assert len(listed) == len(picked) and all(s["matched_last_scan"] for s in listed)
