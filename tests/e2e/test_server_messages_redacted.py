"""Server error text can echo a URL with its sig, a $skiptoken or a value: it reaches skipped.detail,
the summary and -vv logs redacted (issue 9, item 10)."""
from __future__ import annotations

import json
import os
import subprocess

import duckdb

from tests.cli import ROOT, installed_cli
from tests.loopback import ScriptedServer

ENV = "Default-00000000-0000-0000-0000-000000000009"
FLOW = "22222222-2222-2222-2222-222222222222"
SIG = "Zm9vYmFyU2VjcmV0U2lnMTIzNDU2Nzg5MA"
SKIP = "eyJuZXh0Um93S2V5IjoiMSE1MCJ9"
ECHO = (f"The request 'https://prod-12.westeurope.logic.azure.com/workflows/abc/runs?api-version=2016-06-01"
        f"&sp=%2Fruns%2Fread&sv=1.0&sig={SIG}' failed; retry with $skiptoken={SKIP}")


def test_server_messages_are_stored_and_logged_redacted(tmp_path):
    def handler(method, path, headers):
        p = path.split("?")[0]
        if p.endswith("/environments"):
            body = {"value": [{"name": ENV, "properties": {"displayName": "Default"}}]}
        elif p.endswith("/v2/flows"):
            body = {"value": [{"name": FLOW, "properties": {"displayName": "echo"}}]}
        elif p.endswith(f"/flows/{FLOW}"):
            body = {"name": FLOW, "properties": {"displayName": "echo", "definition": {"triggers": {}, "actions": {}}}}
        else:  # the runs listing fails with a message that quotes credentials
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"error": {"code": "BadRequest", "message": ECHO}}).encode()
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    db = tmp_path / "echo.duckdb"
    with ScriptedServer(handler) as api:
        env = {**os.environ, "FLOWLEAKS_FLOW_API_URL": api.url, "FLOWLEAKS_ACCESS_TOKEN": "t",
               "FLOWLEAKS_CONTENT_HOSTS": "localhost", "FLOWLEAKS_DB": str(db)}
        p = subprocess.run([installed_cli(), "-vv", "sweep", "--as-admin", "--quiet"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    con = duckdb.connect(str(db), read_only=True)
    details = [d for (d,) in con.execute("SELECT detail FROM skipped").fetchall()]
    con.close()
    assert any("BadRequest" in d and "prod-12.westeurope.logic.azure.com/workflows/abc/runs" in d for d in details)
    for text in (*details, p.stdout, p.stderr):
        assert SIG not in text and SKIP not in text
