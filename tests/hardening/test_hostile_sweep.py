"""The full hostile sweep (issue 6.7): the real CLI against FakeFlowApi with every transient fault on.

It must complete (exit 1, findings), record what happened where a user can query it (the scans row:
complete, retries, 429s), never send an Authorization header to the content host, and find exactly
the findings a clean run of the same tenant finds (same finding_ids; the tenant's clock and the
sweep window are fixed, so both runs see the same runs).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from scanner.skip_reasons import NON_BLOCKING_SKIPS
from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.hardening.helpers import NOW, db_rows, flowleaks, sweep_args

HOSTILE = Faults(seed=5, latency_ms=1, error_rate=0.05, drop_rate=0.03, malformed_rate=0.05,
                 burst_429_every=25, burst_429_length=2, expire_links_once=True)


@pytest.fixture(scope="module")
def tenant():
    return Tenant.generate(44, environments=2, flows_per_env=2, runs_per_flow=3, now=NOW)


def test_hostile_sweep_completes_and_matches_a_clean_run(tenant, tmp_path):
    clean_db, hostile_db = tmp_path / "clean.duckdb", tmp_path / "hostile.duckdb"
    # the two sweeps run side by side (two servers, two subprocesses): half the wall time
    with FakeFlowApi(tenant, runs_page_size=2, actions_page_size=3) as clean_api, \
            FakeFlowApi(tenant, faults=HOSTILE, runs_page_size=2, actions_page_size=3) as api:
        with ThreadPoolExecutor(2) as pool:
            clean_f = pool.submit(flowleaks, sweep_args(clean_db), clean_api.env_vars())
            hostile_f = pool.submit(flowleaks, sweep_args(hostile_db, "--summary-json",
                                                          str(tmp_path / "hostile.summary.json")), api.env_vars())
            clean, hostile = clean_f.result(), hostile_f.result()
        stats, auth_seen, clean_auth = api.stats.snapshot(), api.content_auth_headers_seen, \
            clean_api.content_auth_headers_seen

    assert clean.returncode == 1, clean.stderr[-2000:]
    assert hostile.returncode == 1, hostile.stderr[-2000:]
    # the faults really happened (otherwise this test proves nothing)
    assert stats["server_errors"] > 0 and stats["drops"] > 0 and stats["malformed"] > 0, stats
    assert stats["throttled"] > 0 and stats["expired_links"] > 0, stats

    # recorded where a user can query it
    (status, complete, retries, throttled, runs_planned, runs_scanned), = db_rows(
        hostile_db, "SELECT status, complete, retries, throttled, runs_planned, runs_scanned FROM scans")
    assert complete is True and status == "complete"
    assert retries > 0 and throttled > 0 and runs_planned == runs_scanned > 0
    summary = json.loads((tmp_path / "hostile.summary.json").read_text())
    assert summary["complete"] is True and summary["retries"] == retries and summary["throttled"] == throttled
    blocking = db_rows(hostile_db, "SELECT reason, count(*) FROM skipped WHERE NOT list_contains(?, reason) "
                                  "GROUP BY reason", [sorted(NON_BLOCKING_SKIPS)])
    assert blocking == []

    # no token on the content host, in either run
    assert auth_seen == [] and clean_auth == []

    # the same findings as the clean run
    clean_ids = {r for r, in db_rows(clean_db, "SELECT finding_id FROM findings")}
    hostile_ids = {r for r, in db_rows(hostile_db, "SELECT finding_id FROM findings")}
    assert clean_ids and hostile_ids == clean_ids
    assert db_rows(hostile_db, "SELECT count(*) FROM runs")[0][0] == db_rows(clean_db, "SELECT count(*) FROM runs")[0][0]
