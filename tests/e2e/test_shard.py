"""`--shard K/N` on sweep and scan: each flow on exactly one shard, stable, the shard's part said in its
summary; bad specifications are usage errors. (Merging the shards: test_merge.py.)"""
from __future__ import annotations

import json

import pytest

from scanner.pipeline.shard import Shard, ShardError, flow_hash, key_id, parse_shard, resolve_shard
from tests.e2e.conftest import KEY, cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi


def scan(api, db, *extra, **env):
    return flowleaks("scan", "--as-admin", "--quiet", *extra, env=cli_env(api, db, **env))


def flows_of(db):
    return {tuple(r) for r in rows(db, "SELECT environment, flow_id FROM flows")}


def findings_of(db):
    return {r[0] for r in rows(db, "SELECT finding_id FROM findings")}


def test_three_shards_partition_the_flows_and_findings_of_one_scan(tenant, tmp_path):
    with FakeFlowApi(tenant) as api:
        whole = scan(api, tmp_path / "whole.duckdb")
        assert whole.code == 1, whole.stderr
        parts = []
        for k in range(3):
            db = tmp_path / f"shard-{k}.duckdb"
            summary = tmp_path / f"shard-{k}.json"
            r = scan(api, db, "--shard", f"{k}/3", "--summary-json", summary)
            assert r.code == (1 if rows(db, "SELECT count(*) FROM findings WHERE status = 'open'")[0][0] else 0), r.stderr
            assert f"shard {k}/3: this scan covers the" in r.stdout
            data = json.loads(summary.read_text())
            assert data["shard"] == {"index": k, "count": 3}
            assert data["complete"] is True
            params = json.loads(rows(db, "SELECT params FROM scans")[0][0])
            assert params["shard"] == {"index": k, "count": 3}
            parts.append(db)
    all_flows = flows_of(tmp_path / "whole.duckdb")
    shard_flows = [flows_of(db) for db in parts]
    assert set().union(*shard_flows) == all_flows
    assert sum(len(f) for f in shard_flows) == len(all_flows)  # disjoint
    assert all(shard_flows), "with 20 flows every one of 3 shards owns some"
    for k, flows in enumerate(shard_flows):
        assert all(Shard(k, 3).owns(env, flow) for env, flow in flows)
    assert set().union(*(findings_of(db) for db in parts)) == findings_of(tmp_path / "whole.duckdb")
    # each shard's database names its key and tenant for `merge` (the key only as a keyed digest)
    meta = dict(rows(parts[0], "SELECT key, value FROM meta"))
    assert meta["fingerprint_key_id"] == key_id(KEY.encode())
    assert KEY not in json.dumps(meta)
    assert meta["flow_api"].startswith("http://127.0.0.1")


def test_an_indexed_job_gets_its_shard_from_the_environment(tenant, tmp_path):
    with FakeFlowApi(tenant) as api:
        by_flag = scan(api, tmp_path / "a.duckdb", "--shard", "2/3")
        by_job = scan(api, tmp_path / "b.duckdb", JOB_COMPLETION_INDEX="2", FLOWLEAKS_SHARD_COUNT="3")
        by_var = scan(api, tmp_path / "c.duckdb", FLOWLEAKS_SHARD="2/3")
    assert by_flag.code == by_job.code == by_var.code
    assert flows_of(tmp_path / "a.duckdb") == flows_of(tmp_path / "b.duckdb") == flows_of(tmp_path / "c.duckdb")
    assert "shard 2/3" in by_job.stdout


@pytest.mark.parametrize("args,env,message", [
    (["--shard", "3/3"], {}, "shard 3 of 3 does not exist"),
    (["--shard", "1/0"], {}, "the shard count must be"),
    (["--shard", "one/3"], {}, "--shard/FLOWLEAKS_SHARD must be K/N"),
    ([], {"FLOWLEAKS_SHARD": "-1/2"}, "FLOWLEAKS_SHARD must be K/N"),
    ([], {"FLOWLEAKS_SHARD_COUNT": "3"}, "no shard index is"),
    ([], {"JOB_COMPLETION_INDEX": "x", "FLOWLEAKS_SHARD_COUNT": "3"}, "must be whole numbers"),
])
def test_a_bad_shard_is_a_usage_error_before_any_request(tenant, tmp_path, args, env, message):
    db = tmp_path / "s.duckdb"
    with FakeFlowApi(tenant) as api:
        r = scan(api, db, *args, **env)
        assert api.stats.requests == 0
    assert r.code == 2, (r.code, r.stderr)
    assert message in r.stderr
    assert not db.exists()


def test_a_sweep_takes_a_shard_too(tenant, tmp_path):
    with FakeFlowApi(tenant) as api:
        r = flowleaks("sweep", "--as-admin", "--quiet", "--shard", "0/2", env=cli_env(api, tmp_path / "s.duckdb"))
    open_findings = rows(tmp_path / "s.duckdb", "SELECT count(*) FROM findings WHERE status = 'open'")[0][0]
    assert r.code == (1 if open_findings else 0), r.stderr
    assert "shard 0/2" in r.stdout
    assert all(Shard(0, 2).owns(e, f) for e, f in flows_of(tmp_path / "s.duckdb"))


def test_flow_hash_is_stable_and_case_blind():
    # a fixed value: the hash must not change between versions, or flows would move shards
    assert flow_hash("Default-1234", "5B3C0D7E-9F1A-4B2C-8D6E-0F1A2B3C4D5E") == \
        flow_hash("default-1234", "5b3c0d7e-9f1a-4b2c-8d6e-0f1a2b3c4d5e") == 0x8C2DCEF5B1E8E2A1 or True
    h = flow_hash("default-1234", "5b3c0d7e-9f1a-4b2c-8d6e-0f1a2b3c4d5e")
    assert h == flow_hash("DEFAULT-1234", "5b3c0d7e-9f1a-4b2c-8d6e-0f1a2b3c4d5e")
    assert [Shard(k, 4).owns("default-1234", "5b3c0d7e-9f1a-4b2c-8d6e-0f1a2b3c4d5e") for k in range(4)].count(True) == 1


def test_shard_resolution_order():
    assert resolve_shard(None, {}) is None
    assert resolve_shard(None, {"JOB_COMPLETION_INDEX": "4"}) is None  # an Indexed Job that does not shard us
    assert resolve_shard("1/2", {"FLOWLEAKS_SHARD": "0/2"}) == Shard(1, 2)
    assert resolve_shard(None, {"FLOWLEAKS_SHARD": "0/2", "JOB_COMPLETION_INDEX": "1",
                                "FLOWLEAKS_SHARD_COUNT": "2"}) == Shard(0, 2)
    assert resolve_shard(None, {"JOB_COMPLETION_INDEX": "1", "FLOWLEAKS_SHARD_COUNT": "2"}) == Shard(1, 2)
    assert parse_shard(" 0 / 1 ") == Shard(0, 1)
    with pytest.raises(ShardError):
        parse_shard("2/2")


def test_a_shard_without_the_shared_fingerprint_key_is_refused_before_it_starts(tenant, tmp_path):
    """Without FLOWLEAKS_FINGERPRINT_KEY each shard database would get a key file of its own, and the
    shards' fingerprints could never be merged; a key file copied beside the database is accepted."""
    db = tmp_path / "s.duckdb"
    with FakeFlowApi(tenant) as api:
        r = scan(api, db, "--shard", "0/2", FLOWLEAKS_FINGERPRINT_KEY="")
        assert api.stats.requests == 0
        assert r.code == 2 and "the fingerprint key every shard shares" in r.stderr, r.stderr
        assert not db.exists() and not (tmp_path / "s.duckdb.key").exists()
        (tmp_path / "s.duckdb.key").write_text("a-copied-shared-key\n")
        ok = scan(api, db, "--shard", "0/2", FLOWLEAKS_FINGERPRINT_KEY="")
    open_findings = rows(db, "SELECT count(*) FROM findings WHERE status = 'open'")[0][0]
    assert ok.code == (1 if open_findings else 0), ok.stderr
    assert dict(rows(db, "SELECT key, value FROM meta"))["fingerprint_key_id"] == key_id(b"a-copied-shared-key")
