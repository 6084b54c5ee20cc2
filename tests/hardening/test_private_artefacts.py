"""Private artefacts and what never leaves the process (issue 6.6).

The database, its key file, the summary JSON, exports and the token cache are mode 0600 (checked
with the child's umask at 022, so a 0644 default would show); a sweep that dies on a payload full of
planted secrets prints none of them and not the token; the access token is never in any output or
in the database file's bytes.
"""
from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scanner.auth import write_private
from tests.fakeapi import FakeFlowApi, Tenant
from tests.hardening.helpers import NOW, db_rows, flowleaks, sweep_args

TOKEN = "tok-HARDENING-9f8e7d6c5b4a-never-printed"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def tenant():
    return Tenant.generate(33, environments=1, flows_per_env=3, runs_per_flow=2, now=NOW)


@pytest.fixture(scope="module")
def runs(tenant, tmp_path_factory):
    """One normal sweep (key file, no FLOWLEAKS_FINGERPRINT_KEY), its exports, one failing sweep."""
    d = tmp_path_factory.mktemp("artefacts")
    out: dict = {"dir": d}
    with FakeFlowApi(tenant, token=TOKEN) as api:
        env = api.env_vars()
        with ThreadPoolExecutor(2) as pool:  # two independent sweeps side by side
            ok = pool.submit(flowleaks, sweep_args(d / "scan.duckdb", "--summary-json", str(d / "summary.json")),
                             env, extra_env={"FLOWLEAKS_FINGERPRINT_KEY": None})
            failed = pool.submit(flowleaks, sweep_args(d / "failed.duckdb"), env, fail_after=3)
            out["sweep"], out["failed"] = ok.result(), failed.result()
            jobs = {fmt: (d / f"findings.{fmt}", pool.submit(flowleaks, [
                "export", "--format", fmt, "--out", str(d / f"findings.{fmt}"), "--db", str(d / "scan.duckdb")]))
                for fmt in ("jsonl", "csv", "sarif", "parquet")}
            out["exports"] = {fmt: (path, job.result()) for fmt, (path, job) in jobs.items()}
        out["content_auth"] = list(api.content_auth_headers_seen)
    return out


def test_sweep_itself_worked(runs):
    assert runs["sweep"].returncode == 1, runs["sweep"].stderr[-2000:]
    assert runs["failed"].returncode == 4, runs["failed"].stderr[-2000:]
    assert runs["content_auth"] == []


def test_database_key_file_and_summary_are_0600(runs):
    d = runs["dir"]
    for name in ("scan.duckdb", "scan.duckdb.key", "summary.json", "failed.duckdb"):
        assert mode(d / name) == 0o600, name
    for wal in d.glob("*.wal"):
        assert mode(wal) == 0o600, wal.name


def test_exports_are_0600(runs):
    for fmt, (path, p) in runs["exports"].items():
        assert p.returncode == 0, (fmt, p.stderr)
        assert path.stat().st_size > 0 and mode(path) == 0o600, fmt


def test_write_private_creates_and_tightens(tmp_path):
    new = tmp_path / "cache" / "msal-token-cache.json"
    write_private(new, '{"AccessToken": {}}')
    assert mode(new) == 0o600
    old = tmp_path / "loose.json"
    old.write_text("x")
    os.chmod(old, 0o644)
    write_private(old, '{"RefreshToken": {}}')
    assert mode(old) == 0o600 and old.read_text() == '{"RefreshToken": {}}'


def _all_output(runs) -> str:
    texts = [runs["sweep"].stdout, runs["sweep"].stderr, runs["failed"].stdout, runs["failed"].stderr]
    texts += [p.stdout + p.stderr for _, p in runs["exports"].values()]
    texts.append((runs["dir"] / "summary.json").read_text())
    for fmt, (path, _) in runs["exports"].items():
        texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def _secrets(tenant) -> set[str]:
    # long enough to be unmistakable in a report (a 6-char value could be an id fragment)
    return {p.secret for p in tenant.planted if len(p.secret) >= 10}


def test_failing_sweep_prints_no_secret_and_no_token(runs, tenant):
    failed = runs["failed"].stdout + runs["failed"].stderr
    assert "stopped by an unexpected error: RuntimeError" in failed
    assert TOKEN not in failed and "boom" not in failed
    leaked = [s for s in _secrets(tenant) if s in failed]
    assert leaked == []
    (error,), = db_rows(runs["dir"] / "failed.duckdb", "SELECT error FROM scans")
    assert TOKEN not in error and not [s for s in _secrets(tenant) if s in error]


def test_token_and_secrets_never_in_outputs_or_database_bytes(runs, tenant):
    text = _all_output(runs)
    assert TOKEN not in text
    assert [s for s in _secrets(tenant) if s in text] == []
    for db in runs["dir"].glob("*.duckdb*"):
        data = db.read_bytes()
        assert TOKEN.encode() not in data, db.name
        assert [s for s in _secrets(tenant) if s.encode() in data] == [], db.name
    # and the findings are really there, as previews
    rows = db_rows(runs["dir"] / "scan.duckdb", "SELECT preview, secret_length FROM findings WHERE detector <> 'posture'")
    assert rows and all("…(" in p for p, _ in rows)
