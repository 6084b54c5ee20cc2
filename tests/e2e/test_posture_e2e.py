"""Posture on the fake tenant: planted risky definitions reported with the right rule and action,
safe ones not; every run finding carries a cause; a fixed flow's posture findings are resolved."""
from __future__ import annotations

import copy

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant

EXPECTED_RULES = {
    "keyvault-get-secret-unsecured-outputs": {"PA001"},
    "secret-consumer-unsecured-inputs": {"PA002"},
    "hardcoded-secret": {"PA005", "PA004"},  # a literal credential in a URI query is PA004
}


def posture_findings(db) -> set[tuple]:
    return set(rows(db, "SELECT environment, flow_id, rule_id, action FROM findings "
                        "WHERE detector = 'posture' AND status = 'open'"))


def test_planted_risky_definitions_are_reported_and_safe_ones_are_not(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(tenant) as api:
        assert flowleaks("sweep", "--as-admin", "--quiet", env=cli_env(api, db)).code == 1
    found = posture_findings(db)
    for risk in tenant.risky_definitions:
        rules = {r for e, f, r, a in found if (e, f, a) == (risk.environment, risk.flow_id, risk.action)}
        assert rules & EXPECTED_RULES[risk.issue], risk
    risky_flows = {(r.environment, r.flow_id) for r in tenant.risky_definitions}
    safe = [(f.environment, f.flow_id) for f in tenant.flows if (f.environment, f.flow_id) not in risky_flows]
    assert safe
    flagged_safe = {(e, f, r, a) for e, f, r, a in found if (e, f) in safe and r != "PA001"}
    assert flagged_safe == set()  # PA001 may flag a token request the fake does not list as a risk
    # every run-history finding is explained by a cause
    assert rows(db, "SELECT count(*) FROM findings WHERE detector <> 'posture' AND cause IS NULL") == [(0,)]


def test_fixing_a_flow_resolves_its_posture_findings(tmp_path):
    tenant = Tenant.generate(seed=11, environments=1, flows_per_env=10, runs_per_flow=1)
    db = tmp_path / "f.duckdb"
    target = next(r for r in tenant.risky_definitions if r.issue == "keyvault-get-secret-unsecured-outputs")
    flow = next(f for f in tenant.flows if f.flow_id == target.flow_id)
    with FakeFlowApi(tenant) as api:
        assert flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db)).code == 1
        before = {x for x in posture_findings(db) if x[1] == flow.flow_id}
        assert ("PA001", "Get_secret") in {(r, a) for _, _, r, a in before}
        fixed = copy.deepcopy(flow.definition)
        for action in fixed["actions"].values():  # the maker turns on Secure Inputs/Outputs everywhere
            action["runtimeConfiguration"] = {"secureData": {"properties": ["inputs", "outputs"]}}
        flow.definition, flow.modified = fixed, flow.modified + 10_000_000
        # the other nine flows keep their open findings
        rescan = flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db))
        assert rescan.code == 1, rescan.stderr
    after = rows(db, "SELECT rule_id, action, status FROM findings WHERE detector = 'posture' AND flow_id = ?",
                 [flow.flow_id])
    assert ("PA001", "Get_secret", "resolved") in after
    assert not [r for r in after if r[0] in ("PA001", "PA002") and r[2] == "open"]
