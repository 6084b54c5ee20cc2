"""A scope that matches nothing is a usage error, a scope named by display name counts its findings,
and nothing in scope is not "clean" (issue 9, items 3 and 8)."""
from __future__ import annotations

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant


def test_a_flow_that_matches_nothing_exits_2_and_names_what_exists(tenant, tmp_path):
    db = tmp_path / "typo.duckdb"
    with FakeFlowApi(tenant) as api:
        result = flowleaks("sweep", "--as-admin", "--quiet", "--flow", "No such flow", env=cli_env(api, db))
    assert result.code == 2, result.stderr
    assert "--flow no such flow matched nothing" in result.stderr
    some_flow = tenant.flows[0]
    assert some_flow.flow_id in result.stderr  # what exists is named, so the typo can be fixed
    assert "Scan complete" not in result.stdout


def test_an_environment_that_matches_nothing_exits_2(tenant, tmp_path):
    db = tmp_path / "env.duckdb"
    with FakeFlowApi(tenant) as api:
        result = flowleaks("sweep", "--as-admin", "--quiet", "--env", "Prodction", env=cli_env(api, db))
    assert result.code == 2, result.stderr
    assert "--env prodction matched nothing" in result.stderr
    assert tenant.environments[0].name in result.stderr


def test_one_typo_among_good_flows_still_exits_2(tenant, tmp_path):
    db = tmp_path / "mixed.duckdb"
    flow = tenant.flows[0]
    with FakeFlowApi(tenant) as api:
        result = flowleaks("sweep", "--as-admin", "--quiet", "--flow", flow.flow_id, "--flow", "Sycn orders",
                           env=cli_env(api, db))
    assert result.code == 2, result.stderr
    assert rows(db, "SELECT count(DISTINCT flow_id) FROM runs")[0][0] == 1  # the good one was scanned


def test_a_nightly_scan_scoped_by_display_name_counts_that_flows_open_findings(tenant, tmp_path):
    db = tmp_path / "byname.duckdb"
    with FakeFlowApi(tenant) as api:
        first = flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db))
        assert first.code == 1, first.stderr
        env, flow_id, name = rows(db, "SELECT f.environment, f.flow_id, w.display_name FROM findings f JOIN flows w "
                                      "USING (environment, flow_id) WHERE f.status = 'open' AND w.display_name "
                                      "IS NOT NULL ORDER BY 1, 2 LIMIT 1")[0]
        by_name = flowleaks("scan", "--as-admin", "--quiet", "--flow", name, env=cli_env(api, db))
        env_name = rows(db, "SELECT display_name FROM environments WHERE environment = ?", [env])[0][0]
        by_env_name = flowleaks("scan", "--as-admin", "--quiet", "--env", env_name, env=cli_env(api, db))
    assert by_name.code == 1, by_name.stderr
    assert by_env_name.code == 1, by_env_name.stderr


def test_a_sweep_that_lists_no_flow_exits_3_with_a_hint(tmp_path):
    """A service principal in maker scope sees no flows: that is not a clean tenant."""
    hidden = Tenant.generate(seed=31, environments=1, flows_per_env=4, runs_per_flow=2, maker_visible_fraction=0)
    db = tmp_path / "maker.duckdb"
    with FakeFlowApi(hidden) as api:
        result = flowleaks("sweep", env=cli_env(api, db))
    assert result.code == 3, result.stderr
    assert "--as-admin" in result.stdout + result.stderr
    assert rows(db, "SELECT complete FROM scans")[0][0] is False
