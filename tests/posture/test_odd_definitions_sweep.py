"""End to end (issue 9, items 5 and 10): a sweep over a tenant whose flows have malformed definitions
and a run whose outputs use secrets as JSON keys completes (exit 1: findings, not 4: crash), finds
the keys, and stores no json_path (nor any other column) that carries them."""
from __future__ import annotations

import copy

import duckdb

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant
from tests.fakeapi.model import Body
from tests.fakeapi.server import FakeFlowApi as _Served

GH_KEY = "ghp_Q7w2Er9Ty4Ui1Op6As3Df8Gh5Jk0Lz2Xc7Vb"  # fake, GitHub-token shaped
AWS_KEY = "AKIAZXCVBNMQWERTYUIO"  # fake, AWS-access-key-id shaped
SECRET_KEYED_OUTPUTS = {"statusCode": 200, "headers": {AWS_KEY: "x"},
                        "body": {GH_KEY: {"note": "the token is the name", "items": [1, 2]}}}
def _malform(definition: dict, how: int) -> dict:
    d = copy.deepcopy(definition)
    if how == 0:
        d["triggers"] = list(d.get("triggers", {}).values())
        for node in d.get("actions", {}).values():
            node["runtimeConfiguration"] = "secure"
            node["runAfter"] = ["x"]
    else:
        d["actions"] = None
    return d


def test_sweep_over_odd_definitions_and_secret_keys_completes_and_never_stores_the_keys(tmp_path, monkeypatch):
    tenant = Tenant.generate(seed=5, environments=1, flows_per_env=3, runs_per_flow=1)
    flows = tenant.flows
    # the fake's flow listing reads the definition itself: only the served definition is malformed
    odd = {flows[0].flow_id: _malform(flows[0].definition, 0), flows[1].flow_id: _malform(flows[1].definition, 1)}
    flow_json = _Served._flow_json

    def serve_odd_definitions(self, flow, with_definition):
        out = flow_json(self, flow, with_definition)
        if with_definition and flow.flow_id in odd:
            out["properties"]["definition"] = odd[flow.flow_id]
        return out

    monkeypatch.setattr(_Served, "_flow_json", serve_odd_definitions)
    target = flows[2]
    build = tenant._build_run

    def build_with_secret_keys(flow, header):
        detail = build(flow, header)
        if flow is target:
            step = next(s for s in detail.actions.values() if s.repetitions is None and "outputs" not in s.secure)
            step.outputs = Body(SECRET_KEYED_OUTPUTS)
        return detail

    tenant._build_run = build_with_secret_keys
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(tenant) as api:
        result = flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db))
    assert result.code == 1, (result.code, result.stderr[-2000:])
    assert GH_KEY not in result.stdout + result.stderr and AWS_KEY not in result.stdout + result.stderr
    found = rows(db, "SELECT rule_id, json_path FROM findings WHERE flow_id = ? AND detector <> 'posture'",
                 [target.flow_id])
    assert ("github-token", "$.body['ghp_…(40)']<key>") in found
    assert ("aws-access-key", "$.headers['AKIA…(20)']<key>") in found
    # every flow was read, the malformed ones included (their runs too)
    assert {f for (f,) in rows(db, "SELECT DISTINCT flow_id FROM runs")} == {f.flow_id for f in flows}
    assert _columns_containing(db, (GH_KEY, AWS_KEY)) == []


def _columns_containing(db, secrets) -> list[str]:
    """(table.column) of every text column of the store in which one of `secrets` appears."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR' AND table_schema = 'main'").fetchall()
        hits = []
        for table, column in cols:
            for s in secrets:
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE position(? IN "{column}") > 0', [s]).fetchone()
                if n and n[0]:
                    hits.append(f"{table}.{column}")
        return hits
    finally:
        con.close()
