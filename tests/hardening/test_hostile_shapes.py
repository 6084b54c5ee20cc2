"""API answers of the wrong shape (right status, odd JSON) are recorded, never a crash (exit 4)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

from tests.e2e.conftest import ROOT
from tests.loopback import ScriptedServer

ENV = "Default-00000000-0000-0000-0000-000000000001"
FLOW = "11111111-1111-1111-1111-111111111111"
ODD_RUNS = {
    "startTime-not-a-string": {"name": "R1", "properties": {"startTime": 5, "status": "Succeeded",
                                                             "trigger": {"name": "manual"}, "actions": {}}},
    "trigger-not-an-object": {"name": "R2", "properties": {"status": "Succeeded", "trigger": "manual",
                                                            "actions": {"A": "not an object"}}},
    "properties-not-an-object": {"name": "R3", "properties": ["x"]},
    "run-not-an-object": ["not", "a", "run"],
}


@pytest.mark.parametrize("case", sorted(ODD_RUNS))
def test_odd_run_shapes_are_recorded_not_fatal(case, tmp_path):
    run = ODD_RUNS[case]

    def handler(method, path, headers):
        p = path.split("?")[0]
        if p.endswith("/environments"):
            body = {"value": [{"name": ENV, "properties": {"displayName": "Default"}}]}
        elif p.endswith("/v2/flows"):
            body = {"value": [{"name": FLOW, "properties": {"displayName": "odd"}}]}
        elif p.endswith(f"/flows/{FLOW}"):
            body = {"name": FLOW, "properties": {"displayName": "odd", "definition": "not a definition"}}
        elif p.endswith("/runs"):
            body = {"value": [{"name": "R0"}]}
        elif "/runs/" in p and p.endswith("/actions"):
            body = {"value": "not a list"}
        else:
            body = run
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    db = tmp_path / "odd.duckdb"
    with ScriptedServer(handler) as api:
        env = {**os.environ, "FLOWLEAKS_FLOW_API_URL": api.url, "FLOWLEAKS_ACCESS_TOKEN": "t",
               "FLOWLEAKS_CONTENT_HOSTS": "localhost", "FLOWLEAKS_DB": str(db)}
        p = subprocess.run([sys.executable, "-m", "scanner.cli", "sweep", "--as-admin", "--quiet"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    # the actions listing is not a list: that run could not be read whole, so the scan is incomplete
    assert p.returncode == 3, p.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT status, complete FROM scans").fetchall() == [("incomplete", False)]
    assert con.execute("SELECT count(*) FROM skipped WHERE reason NOT IN ('secured', 'not run', 'no content')"
                       ).fetchall()[0][0] > 0
    con.close()
