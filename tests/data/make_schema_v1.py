"""Make tests/data/schema-v1.duckdb: a database written by flowleaks before schema versions (commit 1979fda).

Run it from a checkout of that commit, with this project's venv, so that every row is written by the
old code (its CLI, as a subprocess, against the loopback fake of the Flow API):

    mkdir /tmp/oldmain && git archive 1979fda | tar -x -C /tmp/oldmain
    cp tests/data/make_schema_v1.py /tmp/oldmain/
    cd /tmp/oldmain && PYTHONPATH=/tmp/oldmain /path/to/.venv/bin/python make_schema_v1.py OUT.duckdb

What it holds: a sweep (open findings, runs, flows, actions, skipped, filtered, watermarks), two
suppressions (one by finding id, one by fingerprint with an expiry), a nightly scan after the fake aged
out the runs older than 30 days (resolved findings), and a scan-files scan (a finding with `file`). The
fingerprint key is FIXTURE_KEY (test-only), so no key file is needed; every secret is the fake's (or,
for scan-files, random and never stored: the database holds previews and keyed fingerprints only).
"""
from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb

from tests.fakeapi import FakeFlowApi, Tenant

FIXTURE_KEY = "schema-v1-fixture-key"


def flowleaks(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0, 1)) -> None:
    p = subprocess.run([sys.executable, "-m", "scanner.cli", *args], env=env, capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit(f"{args[0]} exited {p.returncode}: {p.stderr[-2000:]}")


def main(out: Path) -> None:
    out.unlink(missing_ok=True)
    # an empty database of 16 KB blocks (DuckDB's default is 256 KB): the fixture stays small; the old
    # code opens it as any existing database and writes every table and row itself
    con = duckdb.connect()
    con.execute(f"ATTACH '{out}' AS fixture (BLOCK_SIZE 16384)")
    con.close()
    base = {**os.environ, "FLOWLEAKS_FINGERPRINT_KEY": FIXTURE_KEY, "FLOWLEAKS_DB": str(out)}
    tenant = Tenant.generate(seed=29, environments=1, flows_per_env=4, runs_per_flow=4, history_days=38,
                             running_fraction=0, vault_size=4)
    with FakeFlowApi(tenant) as api:
        env = {**base, **api.env_vars()}
        flowleaks("sweep", "--as-admin", "--days", "40", "--quiet", env=env)
        con = duckdb.connect(str(out), read_only=True)
        (fid,), (fp,) = (con.execute("SELECT finding_id FROM findings WHERE status = 'open' AND run_id IS NOT NULL "
                                     "ORDER BY run_start DESC, finding_id LIMIT 1").fetchall()[0],
                         con.execute("SELECT fingerprint FROM findings WHERE status = 'open' AND detector = "
                                     "'posture' AND fingerprint IS NOT NULL ORDER BY 1 LIMIT 1").fetchall()[0])
        con.close()
        flowleaks("suppress", fid, "--reason", "fixture: accepted by finding id", env=env)
        flowleaks("suppress", fp, "--reason", "fixture: accepted by fingerprint", "--expires", "2099-01-01", env=env)
        api.age_out_runs_before(tenant.now - timedelta(days=30))
        flowleaks("scan", "--as-admin", "--quiet", env=env)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "run.json"
        token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        export.write_text(json.dumps({"properties": {"inputs": {"headers": {"Authorization": f"token {token}"}}}}))
        flowleaks("scan-files", str(export), env=base)
    Path(str(out) + ".wal").unlink(missing_ok=True)  # every command checkpoints at close


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
