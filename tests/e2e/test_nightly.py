"""`flowleaks scan` (nightly): incremental by watermark, cheap when nothing changed, resumable after kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from tests.e2e.conftest import ROOT, cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Faults
from tests.fakeapi.model import to_ticks

IDENTITY = ("SELECT finding_id, environment, flow_id, run_id, action, repetition, side, json_path, rule_id, "
            "detector, fingerprint, preview, secret_length FROM findings ORDER BY finding_id")


def scan(api, db, *extra):
    return flowleaks("scan", "--as-admin", "--quiet", *extra, env=cli_env(api, db))


def per_flow_requests(before: dict, after: dict) -> int:
    kinds = ("flow", "runs", "run", "actions", "repetitions", "content")
    return sum(after.get(k, 0) - before.get(k, 0) for k in kinds)


def test_second_scan_is_cheap_and_third_reads_only_new_runs(tenant, tmp_path):
    db = tmp_path / "nightly.duckdb"
    flows = len(tenant.flows)
    with FakeFlowApi(tenant) as api:
        api.show_runs_until(tenant.now - timedelta(days=3))
        first = scan(api, db)
        assert first.code == 1, first.stderr
        runs_first = rows(db, "SELECT count(*) FROM runs")[0][0]
        assert rows(db, "SELECT count(*) FROM watermarks")[0][0] > 0

        before = dict(api.stats.by_kind)
        second = scan(api, db)
        # nothing new, but the first scan's findings are still open: the exit code counts them
        assert second.code == 1, second.stderr
        running = sum(len(r[0] or []) for r in rows(db, "SELECT running_runs FROM watermarks"))
        # one runs-list call per flow, plus a re-read of each run that was still Running
        cost = per_flow_requests(before, api.stats.by_kind)
        assert cost <= 2 * flows, (cost, flows, running)
        assert api.stats.by_kind.get("content", 0) - before.get("content", 0) <= 10 * running

        api.show_runs_until(None)
        horizon = to_ticks(tenant.now - timedelta(days=3))
        new_runs = sum(1 for f in tenant.flows for r in tenant.runs(f) if r.start > horizon)
        before = dict(api.stats.by_kind)
        third = scan(api, db)
        assert third.code == 1, third.stderr
        run_reads = api.stats.by_kind.get("run", 0) - before.get("run", 0)
        assert 0 < new_runs and run_reads <= new_runs + running
        assert rows(db, "SELECT count(*) FROM runs")[0][0] >= runs_first + new_runs
    ids = rows(db, "SELECT count(*), count(DISTINCT finding_id) FROM findings")[0]
    assert ids[0] == ids[1]


def test_scan_killed_with_sigkill_resumes_to_the_same_findings(tenant, tmp_path):
    reference, resumed = tmp_path / "reference.duckdb", tmp_path / "resumed.duckdb"
    with FakeFlowApi(tenant) as api:
        assert scan(api, reference).code == 1
    with FakeFlowApi(tenant, faults=Faults(latency_ms=15)) as api:
        proc = subprocess.Popen([sys.executable, "-m", "scanner.cli", "scan", "--as-admin", "--quiet"],
                                env={**os.environ, **cli_env(api, resumed)}, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while api.stats.by_kind.get("run", 0) < 40 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the scan finished before it could be killed; make the tenant bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        again = scan(api, resumed)
        assert again.code == 1, again.stderr
    assert rows(resumed, IDENTITY) == rows(reference, IDENTITY)
    assert rows(resumed, "SELECT status FROM scans ORDER BY started_at") == [("interrupted",), ("complete",)]


def test_a_second_scan_on_the_same_database_stops_with_a_clear_message(tenant, tmp_path):
    db = tmp_path / "busy.duckdb"
    with FakeFlowApi(tenant, faults=Faults(latency_ms=30)) as api:
        env = {**os.environ, **cli_env(api, db)}
        first = subprocess.Popen([sys.executable, "-m", "scanner.cli", "scan", "--as-admin", "--quiet"],
                                 env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while api.stats.requests < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            second = scan(api, db)
        finally:
            first.kill()
            first.wait()
    assert second.code == 4
    assert "in use by another flowleaks process" in second.stderr
