"""The DuckDB store: contract columns, private files, idempotent findings, watermarks, one writer."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from scanner.store.database import Batch, Store, finding_id, utcnow
from scanner.store.errors import StoreBusy
from scanner.keys import fingerprint_key
from scanner.store.schema import FINDING_COLUMNS

CONTRACT = {
    "scans": {"scan_id", "kind", "started_at", "finished_at", "status", "complete", "params"},
    "environments": {"environment", "display_name"},
    "flows": {"environment", "flow_id", "display_name", "creator", "state", "definition_hash"},
    "runs": {"environment", "flow_id", "run_id", "start_time", "end_time", "status", "scan_id"},
    "findings": {"finding_id", "scan_id", "environment", "flow_id", "run_id", "action", "repetition", "side",
                 "json_path", "rule_id", "detector", "fingerprint", "preview", "secret_length", "visible",
                 "known_secret", "first_seen", "last_seen", "status"},
    "skipped": {"scan_id", "environment", "flow_id", "run_id", "action", "side", "reason", "detail"},
    "watermarks": {"environment", "flow_id", "last_run_start"},
    "suppressions": {"fingerprint", "rule_id", "reason", "created_at", "expires_at"},
}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def finding_row(scan_id: str, fp: str = "ab" * 32, run: str = "r1", seen=None) -> tuple:
    now = seen or utcnow()
    fid = finding_id("env", "flow", run, "HTTP", None, "action_inputs", "$.headers['x-api-key']", "api-key", fp)
    values = dict.fromkeys(FINDING_COLUMNS)
    values.update(finding_id=fid, scan_id=scan_id, environment="env", flow_id="flow", run_id=run, action="HTTP",
                  side="action_inputs", json_path="$.headers['x-api-key']", rule_id="api-key", detector="pattern",
                  fingerprint=fp, preview="abcd…(32)", secret_length=32, visible=True, first_seen=now,
                  last_seen=now, status="open", first_scan_id=scan_id)
    return tuple(values[c] for c in FINDING_COLUMNS)


def test_contract_tables_and_columns_exist(tmp_path):
    s = Store(tmp_path / "f.duckdb")
    for table, cols in CONTRACT.items():
        have = {r[0] for r in s.query(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")}
        assert cols <= have, (table, cols - have)
    s.close()


def test_database_and_key_file_are_private(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWLEAKS_FINGERPRINT_KEY", raising=False)
    db = tmp_path / "f.duckdb"
    Store(db).close()
    key = fingerprint_key(db)
    assert mode(db) == 0o600
    assert mode(str(db) + ".key") == 0o600
    assert fingerprint_key(db) == key  # stable across runs: the same secret, the same fingerprint
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", "k")
    assert fingerprint_key(db) == b"k"


def test_rescan_updates_last_seen_without_duplicates(tmp_path):
    s = Store(tmp_path / "f.duckdb")
    first = s.begin_scan("sweep", {})
    s.add_findings([finding_row(first)])
    second = s.begin_scan("sweep", {})
    s.add_findings([finding_row(second)])
    rows = s.query("SELECT count(*), min(first_scan_id), max(scan_id), min(first_seen) < max(last_seen) FROM findings")
    assert rows == [(1, first, second, True)]
    s.close()


def test_suppressed_stays_suppressed_and_resolved_reopens(tmp_path):
    s = Store(tmp_path / "f.duckdb")
    scan = s.begin_scan("sweep", {})
    s.add_findings([finding_row(scan, fp="11" * 32), finding_row(scan, fp="22" * 32)])
    s.con.execute("UPDATE findings SET status = 'suppressed' WHERE fingerprint = ?", ["11" * 32])
    s.con.execute("UPDATE findings SET status = 'resolved' WHERE fingerprint = ?", ["22" * 32])
    s.add_findings([finding_row(scan, fp="11" * 32), finding_row(scan, fp="22" * 32)])
    assert dict(s.query("SELECT fingerprint, status FROM findings")) == {"11" * 32: "suppressed", "22" * 32: "open"}
    s.close()


def test_watermark_keeps_seven_digits_and_only_moves_forward(tmp_path):
    s = Store(tmp_path / "f.duckdb")
    b = Batch.empty()
    b.watermarks.append(("env", "flow", "2026-11-20T17:00:09.9484194", ["run-a"], "s1"))
    s.write_batch(b)
    b = Batch.empty()
    b.watermarks.append(("env", "flow", "2026-11-01T00:00:00.0000001", [], "s2"))
    s.write_batch(b)
    assert s.watermark("env", "flow") == ("2026-11-20T17:00:09.9484194Z", [])
    s.close()


def test_second_writer_gets_a_clear_message(tmp_path):
    db = tmp_path / "f.duckdb"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys,time; from scanner.store.database import Store; s=Store(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(30)", str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy, match="in use by another flowleaks process"):
            Store(db)
    finally:
        holder.kill()
        holder.wait()
