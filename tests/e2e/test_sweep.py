"""`flowleaks sweep` end to end: the real CLI against the loopback fake, checked against ground truth."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from tests.e2e.conftest import cli_env, flowleaks, plant_fingerprints, rows
from tests.fakeapi import FakeFlowApi, Faults, Tenant


def sweep(api, db: Path, *extra: str):
    return flowleaks("sweep", "--as-admin", "--quiet", *extra, env=cli_env(api, db))


def occurrences(db: Path) -> dict[tuple, set[str]]:
    found = defaultdict(set)
    for *loc, fingerprint in rows(db, "SELECT environment, flow_id, run_id, action, repetition, side, fingerprint "
                                      "FROM findings WHERE detector <> 'posture'"):
        found[tuple(loc)].add(fingerprint)
    return found


def test_sweep_finds_every_visible_plant_fetches_each_link_once_and_never_sends_a_token(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(tenant) as api:
        result = sweep(api, db)
        stats = api.stats
        assert api.content_auth_headers_seen == []
    assert result.code == 1, result.stderr  # complete, with findings
    assert "Scan complete" in result.stdout
    scanned = {r for r in rows(db, "SELECT environment, flow_id, run_id FROM runs")}
    found = occurrences(db)
    missed, leaked, checked = [], [], 0
    for p in tenant.iter_plants():
        if (p.environment, p.flow_id, p.run_id) not in scanned:
            continue  # outside the 30-day window
        hit = bool(plant_fingerprints(p) & found.get((p.environment, p.flow_id, p.run_id, p.action,
                                                      p.repetition, p.side), set()))
        checked += 1
        if p.secured and hit:
            leaked.append((p.kind, p.action))
        if not p.secured and not hit:
            missed.append((p.kind, p.action, p.side))
    assert checked > 100
    assert missed == []
    assert leaked == []
    # precision: run findings that are a planted secret (decoys must not be reported)
    planted = set().union(*(plant_fingerprints(p) for p in tenant.iter_plants()))
    reported = rows(db, "SELECT fingerprint FROM findings WHERE detector <> 'posture'")
    precision = sum(1 for (f,) in reported if f in planted) / len(reported)
    assert precision >= 0.95, precision
    # every link fetched at most once, none fetched twice; secured links recorded, never fetched
    assert stats.content_fetches and max(stats.content_fetches.values()) == 1
    secured = rows(db, "SELECT count(*) FROM skipped WHERE reason = 'secured'")[0][0]
    assert secured > 0
    assert rows(db, "SELECT complete, status FROM scans") == [(True, "complete")]
    # the window: nothing older than 30 days was read
    assert rows(db, "SELECT count(*) FROM runs WHERE start_time < now() - INTERVAL 30 DAY")[0][0] == 0


def test_rerun_adds_no_duplicate_rows_and_moves_last_seen(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(tenant) as api:
        assert sweep(api, db).code == 1
        first = rows(db, "SELECT finding_id, first_seen, last_seen FROM findings ORDER BY 1")
        runs_before = rows(db, "SELECT count(*) FROM runs")[0][0]
        assert sweep(api, db).code == 1
    second = rows(db, "SELECT finding_id, first_seen, last_seen FROM findings ORDER BY 1")
    assert [r[0] for r in first] == [r[0] for r in second]
    assert all(a[1] == b[1] and b[2] > a[2] for a, b in zip(first, second))
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == runs_before
    assert rows(db, "SELECT count(*) FROM (SELECT finding_id FROM findings GROUP BY 1 HAVING count(*) > 1)")[0][0] == 0


def test_faults_give_the_same_findings_as_a_clean_run(tenant, tmp_path):
    clean, faulty = tmp_path / "clean.duckdb", tmp_path / "faulty.duckdb"
    with FakeFlowApi(tenant) as api:
        assert sweep(api, clean).code == 1
    faults = Faults(seed=3, error_rate=0.05, drop_rate=0.05, burst_429_every=40, burst_429_length=4,
                    malformed_rate=0.03, expire_links_once=True)
    with FakeFlowApi(tenant, faults=faults) as api:
        result = sweep(api, faulty)
        stats = api.stats
        assert api.content_auth_headers_seen == []
    assert result.code == 1, result.stdout + result.stderr
    assert stats.server_errors and stats.drops and stats.throttled and stats.expired_links
    ids = "SELECT finding_id FROM findings ORDER BY 1"
    assert rows(faulty, ids) == rows(clean, ids)
    assert rows(faulty, "SELECT complete, retries > 0, throttled > 0 FROM scans") == [(True, True, True)]


def test_env_and_flow_narrow_the_sweep(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    env = tenant.environments[0]
    flow = next(f for f in tenant.flows if f.environment == env.name)
    with FakeFlowApi(tenant) as api:
        result = sweep(api, db, "--env", env.name, "--flow", flow.flow_id, "--days", "10")
    # flow 1 (a hard-coded secret in its definition) has 2 of its 4 runs in the last 10 days
    assert result.code == 1, result.stderr
    assert rows(db, "SELECT DISTINCT environment, flow_id FROM runs") == [(env.name, flow.flow_id)]
    assert rows(db, "SELECT count(*) FROM runs WHERE start_time < now() - INTERVAL 10 DAY")[0][0] == 0


def test_maker_scope_sees_the_flows_shared_with_the_identity(tmp_path):
    from tests.fakeapi import Tenant

    tenant = Tenant.generate(seed=4, environments=1, flows_per_env=6, runs_per_flow=1, maker_visible_fraction=0.5)
    db = tmp_path / "maker.duckdb"
    with FakeFlowApi(tenant, log_requests=True) as api:
        result = flowleaks("sweep", "--as-maker", "--quiet", env=cli_env(api, db))
        paths = [p for _, _, p, _ in api.requests_log]
    assert result.code == 1, result.stderr  # the visible flows include hard-coded secrets
    assert not any("/scopes/admin/" in p for p in paths)
    visible = {f.flow_id for f in tenant.flows if f.maker_visible}
    assert {r[0] for r in rows(db, "SELECT flow_id FROM flows")} == visible


def test_runs_outside_the_window_are_not_scanned_even_if_the_server_ignores_the_filter(tenant, tmp_path):
    class IgnoresFilter(FakeFlowApi):
        def _runs(self, flow, path, q):
            return super()._runs(flow, path, {k: v for k, v in q.items() if k != "$filter"})

    db = tmp_path / "f.duckdb"
    with IgnoresFilter(tenant) as api:
        result = sweep(api, db, "--days", "7")
    assert result.code == 1, result.stderr
    assert rows(db, "SELECT count(*) FROM runs WHERE start_time < now() - INTERVAL 7 DAY")[0][0] == 0
    assert rows(db, "SELECT count(*) FROM runs")[0][0] > 0


def test_detection_in_worker_processes_finds_what_the_detector_thread_finds(tmp_path):
    """--jobs 2 detects in two worker processes once the crawl is big enough to pay for them (results
    leave them redacted; whether a value is typed into the action, PA005, is decided there too);
    --jobs 1 in the scanning process: the same rows. The tenant is big enough (880 runs, ~3,900
    bodies) to pass the pool's threshold (detection.POOL_AFTER) well before its end: the workers really run."""
    cols = ("finding_id, rule_id, detector, fingerprint, preview, secret_length, json_path, cause, "
            "remediation, status, confidence, known_secret")
    out, detection = {}, {}
    big = Tenant.generate(seed=11, environments=2, flows_per_env=10, runs_per_flow=44)
    with FakeFlowApi(big) as api:
        for jobs in ("1", "2"):
            db, summary = tmp_path / f"j{jobs}.duckdb", tmp_path / f"j{jobs}.json"
            r = flowleaks("sweep", "--as-admin", "--quiet", "--jobs", jobs, "--summary-json", str(summary),
                          env=cli_env(api, db))
            assert r.code == 1, r.stderr
            out[jobs] = rows(db, f"SELECT {cols} FROM findings ORDER BY finding_id")
            detection[jobs] = json.loads(summary.read_text())["detection"]
            assert rows(db, "SELECT complete FROM scans") == [(True,)]
    assert out["1"] == out["2"]
    assert any(r[7] and r[7].startswith("PA005") for r in out["2"]), "the tenant has a typed-in secret"
    assert len(out["2"]) > 20
    assert detection["1"]["workers"] == 0 and detection["1"]["batches_in_workers"] == 0, detection
    assert detection["2"]["workers"] == 2 and detection["2"]["batches_in_workers"] > 0, detection
    assert detection["2"]["bodies"] == detection["1"]["bodies"] > 3000, detection
