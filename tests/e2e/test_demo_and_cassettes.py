"""The bundled sample tenant replays over loopback; `flowleaks record` scrubs what it records."""
from __future__ import annotations

import base64
import re
import os
import subprocess
import sys

from scanner.cassette import Cassette
from scanner.replay import ReplayServer
from tests.e2e.conftest import ROOT, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant

SAMPLE = ROOT / "cassettes" / "sample-tenant.yaml"


def test_sweep_against_the_replayed_sample_tenant_finds_secrets(tmp_path):
    db = tmp_path / "demo.duckdb"
    with ReplayServer(Cassette.load(SAMPLE), token="demo-token") as server:
        env = {**server.env(), "FLOWLEAKS_ACCESS_TOKEN": "demo-token", "FLOWLEAKS_DB": str(db)}
        result = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet", env=env)
        assert server.content_auth_headers_seen == []
        assert server.misses == []
    assert result.code == 1, result.stdout + result.stderr
    assert rows(db, "SELECT count(DISTINCT flow_id), count(DISTINCT environment) FROM runs") == [(10, 2)]
    rules = {r[0] for r in rows(db, "SELECT DISTINCT rule_id FROM findings")}
    assert {"github-token", "secret-source-output", "PA001"} <= rules


def test_make_demo_runs_end_to_end_and_every_readme_query_runs_on_its_database():
    p = subprocess.run([sys.executable, "-m", "scanner.demo"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "Open findings by flow" in p.stdout and "Error" not in p.stdout
    readme = (ROOT / "README.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", readme, re.S)
    assert len(queries) >= 8
    db = ROOT / "demo-output" / "demo.duckdb"
    for sql in queries:
        r = flowleaks("query", sql, "--db", str(db), "--format", "csv", env={})
        assert r.code == 0, (sql, r.stderr)


def test_recorded_cassette_holds_no_secret_in_any_encoding(tmp_path):
    tenant = Tenant.generate(seed=5, environments=1, flows_per_env=10, runs_per_flow=2)
    out = tmp_path / "repro.yaml"
    with FakeFlowApi(tenant) as api:
        # the loopback hosts renamed to the real services' (as for the sample cassette): the replay
        # server answers for those names only
        p = subprocess.run([sys.executable, "-m", "scanner.cli", "record", "--as-admin", "--out", str(out),
                            "--map-origin", f"{api.api_url}=https://api.flow.microsoft.com",
                            "--map-origin", f"{api.content_url}=https://prod-07.westeurope.logic.azure.com:443"],
                           env={**os.environ, **api.env_vars()}, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    import yaml
    recorded = yaml.safe_load(text)["interactions"]
    assert recorded and all(i["request"]["headers"] == {} for i in recorded)  # no Authorization header kept
    assert api.token not in text
    assert "sig=SCRUBBED" in text
    secrets = tenant.secrets(visible_only=True)
    assert secrets
    for s in secrets:
        b64 = base64.b64encode(s.encode()).decode()
        assert s not in text and b64[2:-4] not in text, s[:4]
    # and the scrubbed cassette still replays into a sweep
    with ReplayServer(Cassette.load(out)) as server:
        result = flowleaks("sweep", "--as-admin", "--quiet", env={**server.env(), "FLOWLEAKS_DB": str(tmp_path / "r.duckdb")})
    # complete (every recorded interaction is there); the definitions' structural risks (an unsecured
    # Key Vault "Get secret") survive scrubbing, so there are open findings
    assert result.code == 1, result.stderr
    assert rows(tmp_path / "r.duckdb", "SELECT complete FROM scans") == [(True,)]
