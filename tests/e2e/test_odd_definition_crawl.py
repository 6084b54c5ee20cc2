"""An odd definition is recorded (flow named, JSON path) and its runs are still scanned (item 5)."""
from __future__ import annotations

import copy

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant
from tests.fakeapi.server import FakeFlowApi as Served


def test_odd_definitions_are_recorded_by_path_and_their_runs_still_scanned(monkeypatch, tmp_path):
    tenant = Tenant.generate(seed=41, environments=1, flows_per_env=4, runs_per_flow=2, history_days=20)
    odd = tenant.flows[0]
    bad = copy.deepcopy(odd.definition)
    bad["triggers"] = list((bad.get("triggers") or {}).values())  # a list where an object belongs
    flow_json = Served._flow_json

    def serve(self, flow, with_definition):
        out = flow_json(self, flow, with_definition)
        if with_definition and flow is odd:
            out["properties"]["definition"] = bad
        return out

    monkeypatch.setattr(Served, "_flow_json", serve)
    db = tmp_path / "odd.duckdb"
    with FakeFlowApi(tenant) as api:
        result = flowleaks("sweep", "--as-admin", "--quiet", env=cli_env(api, db))
    assert result.code == 1, result.stderr  # findings, not 4 (a crash)
    details = rows(db, "SELECT flow_id, detail FROM skipped WHERE reason = 'definition unreadable'")
    assert details and all(f == odd.flow_id for f, _ in details)
    assert any("$.triggers (list, expected object)" in d for _, d in details), details
    assert rows(db, "SELECT count(*) FROM runs WHERE flow_id = ?", [odd.flow_id])[0][0] == 2
    assert rows(db, "SELECT complete FROM scans")[0][0] is False  # posture could not read all of it
