"""Exit status of the real CLI, in a subprocess (issue 6.5).

0 complete and clean, 1 open findings, 2 usage error, 3 incomplete with no findings, 4 unexpected
error — never 1 for an error, even when findings were stored before it.
"""
from __future__ import annotations

import pytest

from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.hardening.helpers import NOW, db_rows, flowleaks, sweep_args


@pytest.fixture(scope="module")
def tenant():
    return Tenant.generate(21, environments=1, flows_per_env=3, runs_per_flow=2, now=NOW)


@pytest.fixture(scope="module")
def api(tenant):
    with FakeFlowApi(tenant) as server:
        yield server


def test_findings_exit_1(api, tmp_path):
    p = flowleaks(sweep_args(tmp_path / "f.duckdb"), api.env_vars())
    assert p.returncode == 1, p.stderr
    (status, complete), = db_rows(tmp_path / "f.duckdb", "SELECT status, complete FROM scans")
    assert complete is True and status != "failed"


def test_unexpected_error_exits_4_with_one_line_and_a_failed_scan_row(api, tmp_path):
    """Detection (Detector._detect_here) fails after two payloads (so findings are already stored): exit 4, not 1."""
    db = tmp_path / "e.duckdb"
    p = flowleaks(sweep_args(db), api.env_vars(), fail_after=2)
    assert p.returncode == 4, (p.returncode, p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("flowleaks: stopped by an unexpected error: RuntimeError")
    assert "Traceback" not in p.stderr + p.stdout
    (status, complete, error), = db_rows(db, "SELECT status, complete, error FROM scans")
    assert status == "failed" and complete is False
    assert error.startswith("RuntimeError") and "boom" not in error


def test_unexpected_error_in_the_first_payload_still_exits_4(api, tmp_path):
    p = flowleaks(sweep_args(tmp_path / "e0.duckdb"), api.env_vars(), fail_after=0)
    assert p.returncode == 4, p.stderr[-2000:]


@pytest.mark.parametrize("args", [
    ["sweep", "--no-such-flag"],
    ["sweep", "--since", "not-a-date"],
    ["sweep", "--flow-api-url", "http://api.example.com"],
])
def test_usage_errors_exit_2(args, tmp_path):
    p = flowleaks([*args, "--db", str(tmp_path / "u.duckdb")] if args[0] == "sweep" else args,
                  {"FLOWLEAKS_ACCESS_TOKEN": "t"})
    assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert "Traceback" not in p.stderr


def test_incomplete_scan_without_findings_exits_3(tenant, tmp_path):
    denied = [e.name for e in tenant.environments]
    with FakeFlowApi(tenant, faults=Faults(denied_environments=denied)) as api:
        db = tmp_path / "i.duckdb"
        p = flowleaks(sweep_args(db), api.env_vars())
    assert p.returncode == 3, (p.returncode, p.stderr[-2000:])
    (status, complete), = db_rows(db, "SELECT status, complete FROM scans")
    assert complete is False and status != "failed"
    reasons = {r for r, in db_rows(db, "SELECT reason FROM skipped")}
    assert reasons and db_rows(db, "SELECT count(*) FROM findings")[0][0] == 0


def test_expired_links_everywhere_make_the_scan_incomplete(tenant, tmp_path):
    with FakeFlowApi(tenant, faults=Faults(always_expired_links=True)) as api:
        db = tmp_path / "x.duckdb"
        p = flowleaks(sweep_args(db), api.env_vars())
    # this tenant's definitions hold hard-coded secrets (posture findings): 1 takes precedence over 3
    assert tenant.risky_definitions
    assert p.returncode == 1, p.stderr[-2000:]
    (complete,), = db_rows(db, "SELECT complete FROM scans")
    assert complete is False
    assert db_rows(db, "SELECT count(*) FROM skipped WHERE reason = 'expired'")[0][0] > 0
    assert db_rows(db, "SELECT count(*) FROM findings WHERE detector <> 'posture'")[0][0] == 0
