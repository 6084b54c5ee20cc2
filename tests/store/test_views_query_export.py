"""Views, `flowleaks query`, `flowleaks export`, suppressions and the lifecycle helper, on a small store."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from scanner.cli.main import cli  # the group: commands run as a user runs them (its error mapping too)
from scanner.report.sarif import validate
from scanner.store import lifecycle
from scanner.store.database import Store, utcnow
from scanner.store.export import export_sql
from scanner.store.schema import FILTERED_COLUMNS, FINDING_COLUMNS
from scanner.store.suppressions import apply_suppressions, suppression_rows
from scanner.store.views import VIEWS

QUERIES_MD = Path(__file__).resolve().parents[2] / "docs" / "queries.md"

NOW = utcnow()
ENV1, ENV2 = "Default-11111111-2222-3333-4444-555555555555", "6f1c0a52-9a4e-4d3b-8c77-0d2c1e6b9a10"
F1, F2, F3 = "0b7d2f0e-1a2b-4c3d-9e8f-000000000001", "0b7d2f0e-1a2b-4c3d-9e8f-000000000002", \
    "0b7d2f0e-1a2b-4c3d-9e8f-000000000003"
R1, R2, R3 = "08584620000000000001CU62", "08584620000000000002CU62", "08584620000000000003CU62"
FP1, FP2, FP3, FP4 = ("a1" * 32), ("b2" * 32), ("c3" * 32), ("d4" * 32)
S1, S2 = "20250101T000000-aaaaaaaa", "20250102T000000-bbbbbbbb"


def _finding(fid, **kw):
    row = {c: None for c in FINDING_COLUMNS}
    row.update(finding_id=fid, status="open", visible=True, first_seen=NOW - timedelta(days=1), last_seen=NOW,
               secret_length=32, confidence="medium")
    row.update(kw)
    return tuple(row[c] for c in FINDING_COLUMNS)


FINDINGS = {
    # one secret (FP1) in two flows, one of its runs aged out
    "fa": dict(scan_id=S2, first_scan_id=S1, environment=ENV1, flow_id=F1, run_id=R1, action="HTTP",
               side="action_inputs", json_path="$.headers['x-api-key']", rule_id="api-key-header",
               detector="pattern", fingerprint=FP1, preview="abcd…(32)", confidence="high",
               cause="secure-inputs-off on 'HTTP'", remediation="Turn on Secure Inputs for 'HTTP'",
               run_start=NOW - timedelta(days=2)),
    "fb": dict(scan_id=S1, first_scan_id=S1, environment=ENV1, flow_id=F1, run_id=R2, action="HTTP",
               side="action_inputs", json_path="$.headers['x-api-key']", rule_id="api-key-header",
               detector="pattern", fingerprint=FP1, preview="abcd…(32)", run_start=None),  # start from runs
    "fe": dict(scan_id=S2, first_scan_id=S2, environment=ENV2, flow_id=F2, run_id=R3, action="Compose",
               side="action_outputs", json_path="$.body", rule_id="high-entropy-string", detector="entropy",
               fingerprint=FP1, preview="abcd…(32)", status="suppressed", confidence="low",
               run_start=NOW - timedelta(days=1)),
    # a Key Vault secret, hidden from viewers
    "fc": dict(scan_id=S2, first_scan_id=S2, environment=ENV2, flow_id=F2, run_id=R3, action="Send_mail",
               side="action_inputs", json_path="$.body<json>.password", rule_id="known-value",
               detector="known_value", fingerprint=FP2, preview="…(12)", secret_length=12, visible=False,
               known_secret="kv-payroll/sql-password", confidence="high", run_start=NOW - timedelta(days=1)),
    # a posture finding: no run
    "fd": dict(scan_id=S2, first_scan_id=S2, environment=ENV2, flow_id=F2, run_id=None, action="HTTP_2",
               side="definition", json_path="$.inputs.headers.Authorization", rule_id="PA-LITERAL-SECRET",
               detector="posture", fingerprint=FP3, preview="Basi…(30)", severity="high", visible=False,
               message="literal credential in the definition", remediation="Move it to Key Vault"),
    "fg": dict(scan_id=S1, first_scan_id=S1, environment=ENV1, flow_id=F1, run_id=R1, action="Init",
               side="action_inputs", json_path="$.value", rule_id="azure-storage-key", detector="pattern",
               fingerprint=FP4, preview="Zm9v…(88)", status="resolved", run_start=NOW - timedelta(days=2)),
}


@pytest.fixture()
def db(_built_db, tmp_path, monkeypatch):
    """A private copy of the module's database per test (building it takes longer than copying)."""
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", "test-key")
    path = tmp_path / "t.duckdb"
    shutil.copyfile(_built_db, path)
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture(scope="module")
def _built_db(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("store") / "t.duckdb")
    old = os.environ.get("FLOWLEAKS_FINGERPRINT_KEY")
    os.environ["FLOWLEAKS_FINGERPRINT_KEY"] = "test-key"
    try:
        _build(path)
    finally:
        if old is None:
            os.environ.pop("FLOWLEAKS_FINGERPRINT_KEY", None)
        else:
            os.environ["FLOWLEAKS_FINGERPRINT_KEY"] = old
    return path


def _build(path: str) -> None:
    store = Store(path)
    con = store.con
    con.execute("INSERT INTO scans(scan_id, kind, started_at, finished_at, status, complete, environments_planned,"
                " environments_scanned, flows_planned, flows_scanned, runs_planned, runs_scanned, content_fetched,"
                " content_reused, bytes_downloaded, requests, throttled, retries, skipped, findings) VALUES "
                "(?, 'sweep', ?, ?, 'complete', true, 1, 1, 2, 2, 2, 2, 10, 1, 12345, 40, 0, 0, 0, 3),"
                "(?, 'scan', ?, NULL, 'incomplete', false, 2, 2, 3, 2, 3, 2, 8, 0, 999, 30, 4, 2, 5, 4)",
                [S1, NOW - timedelta(days=1, hours=1), NOW - timedelta(days=1), S2, NOW - timedelta(hours=1)])
    store.upsert_environments([(ENV1, "Contoso (default)", "europe", True, None, S2)])  # ENV2 not listed
    store.upsert_flows([
        dict(environment=ENV1, flow_id=F1, display_name="Sync orders", creator="u-1", state="Started",
             connectors=["shared_sql", "shared_office365"], scan_id=S2),
        dict(environment=ENV2, flow_id=F2, display_name="Payroll export", creator="u-2", state="Started",
             connectors=["shared_keyvault", "shared_sql"], scan_id=S2),
        dict(environment=ENV2, flow_id=F3, display_name="Quiet flow", creator="u-2", state="Stopped",
             connectors=["shared_teams"], scan_id=S2),
    ])
    con.executemany("INSERT INTO runs(environment, flow_id, run_id, start_time, status, scan_id) VALUES (?,?,?,?,?,?)",
                    [(ENV1, F1, R1, NOW - timedelta(days=2), "Succeeded", S2),
                     (ENV1, F1, R2, NOW - timedelta(days=40), "Failed", S1),
                     (ENV2, F2, R3, NOW - timedelta(days=1), "Succeeded", S2)])
    store.add_findings([_finding(fid, **kw) for fid, kw in FINDINGS.items()])
    store.add_skipped([(S2, ENV1, F1, R1, "Get_secret", "action_outputs", "secured", "secure outputs", None, NOW)] * 3
                      + [(S2, ENV1, F1, R1, "HTTP", "action_outputs", "expired", "link expired", None, NOW),
                         (S2, ENV2, F3, None, None, None, "HTTP error", "listing runs: 500", None, NOW)])
    con.executemany(f"INSERT INTO filtered({', '.join(FILTERED_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [(S2, ENV1, F1, R1, "Compose", "action_outputs", "$.id", "high-entropy-string", "uuid", NOW),
                     (S2, ENV1, F1, R1, "Compose", "action_outputs", "$.etag", "high-entropy-string", "uuid", NOW),
                     (S2, ENV2, F2, R3, "HTTP", "action_inputs", "$.body.pw", "keyword", "placeholder", NOW)])
    store.close()


def _rows(con, sql, params=None):
    rel = con.sql(sql, params=params) if params else con.sql(sql)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def _ro(path):
    return duckdb.connect(path, read_only=True)


def _status(path):
    with _ro(path) as con:
        return dict(con.execute("SELECT finding_id, status FROM findings").fetchall())


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- views --------------------------------------------------------------------------------------------

def test_views_work_on_empty_database(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", "k")
    store = Store(str(tmp_path / "empty.duckdb"))
    try:
        for name in VIEWS:
            assert store.query(f"SELECT * FROM {name}") == [], name
    finally:
        store.close()


def test_open_findings(db):
    with _ro(db) as con:
        rows = {r["finding_id"]: r for r in _rows(con, "SELECT * FROM open_findings")}
    assert set(rows) == {"fa", "fb", "fc", "fd"}
    assert rows["fa"]["flow_name"] == "Sync orders" and rows["fa"]["creator"] == "u-1"
    assert rows["fa"]["environment_name"] == "Contoso (default)"
    assert rows["fb"]["run_start_time"] is not None  # from runs.start_time (finding has no run_start)
    assert rows["fd"]["run_start_time"] is None and rows["fd"]["run_id"] is None
    assert rows["fc"]["environment_name"] is None  # environment row missing: still listed


def test_findings_by_flow(db):
    with _ro(db) as con:
        rows = {r["flow_id"]: r for r in _rows(con, "SELECT * FROM findings_by_flow")}
    assert set(rows) == {F1, F2}
    f1, f2 = rows[F1], rows[F2]
    assert (f1["open_findings"], f1["distinct_secrets"], f1["resolved_findings"]) == (2, 1, 1)
    assert f1["rules"] == ["api-key-header"] and f1["visible"] is True
    assert f1["causes"] == ["secure-inputs-off on 'HTTP'"]
    assert f1["remediation"] == ["Turn on Secure Inputs for 'HTTP'"]
    assert f1["flow_name"] == "Sync orders" and f1["creator"] == "u-1" and f1["runs_affected"] == 2
    assert (f2["open_findings"], f2["suppressed_findings"], f2["open_posture_findings"]) == (2, 1, 1)
    assert f2["visible"] is False and f2["rules"] == ["PA-LITERAL-SECRET", "known-value"]
    assert f2["causes"] == [] and f2["remediation"] == ["Move it to Key Vault"]


def test_exposure(db):
    with _ro(db) as con:
        rows = {r["fingerprint"]: r for r in _rows(con, "SELECT * FROM exposure")}
    e1 = rows[FP1]
    assert e1["preview"] == "abcd…(32)" and e1["rules"] == ["api-key-header", "high-entropy-string"]
    assert (e1["environments"], e1["flows"], e1["runs"], e1["occurrences"], e1["open_occurrences"]) == (2, 2, 3, 3, 2)
    assert e1["flow_names"] == ["Payroll export", "Sync orders"] and e1["known_secret"] is None
    assert rows[FP2]["known_secret"] == "kv-payroll/sql-password" and rows[FP2]["visible_occurrences"] == 0
    assert rows[FP3]["runs"] == 0  # posture: no run
    assert set(rows) == {FP1, FP2, FP3, FP4}


def test_coverage_skipped_filtered(db):
    with _ro(db) as con:
        cov = {r["scan_id"]: r for r in _rows(con, "SELECT * FROM coverage")}
        skipped = _rows(con, "SELECT * FROM skipped_by_reason")
        filt = _rows(con, "SELECT * FROM filtered_by_rule")
    s1, s2 = cov[S1], cov[S2]
    assert s1["complete"] is True and s1["skipped_total"] == 0 and s1["skipped_by_reason"] == {}
    assert s2["complete"] is False and s2["finished_at"] is None and s2["duration_s"] is None
    assert (s2["skipped_total"], s2["skipped_blocking"]) == (5, 2)
    assert s2["skipped_by_reason"] == {"secured": 3, "expired": 1, "HTTP error": 1}
    assert (s2["runs_planned"], s2["runs_scanned"], s2["throttled"], s2["filtered"]) == (3, 2, 4, 3)
    assert (s1["new_findings"], s2["new_findings"]) == (3, 3)
    by_reason = {r["reason"]: r for r in skipped}
    assert by_reason["secured"]["skipped"] == 3 and by_reason["secured"]["blocking"] is False
    assert by_reason["HTTP error"]["blocking"] is True and by_reason["HTTP error"]["runs"] == 0
    assert {(r["rule_id"], r["filter"], r["dropped"]) for r in filt} == {
        ("high-entropy-string", "uuid", 2), ("keyword", "placeholder", 1)}


def test_connectors_involved(db):
    with _ro(db) as con:
        rows = {r["connector"]: r for r in _rows(con, "SELECT * FROM connectors_involved")}
    assert set(rows) == {"shared_sql", "shared_office365", "shared_keyvault"}  # not the quiet flow's teams
    assert rows["shared_sql"]["flows_with_open_findings"] == 2 and rows["shared_sql"]["open_findings"] == 4
    assert rows["shared_keyvault"]["flows_with_visible_findings"] == 0


# -- ready SQL ----------------------------------------------------------------------------------------

def _doc_queries():
    return re.findall(r"```sql\n(.*?)```", QUERIES_MD.read_text(encoding="utf-8"), flags=re.S)


def test_every_ready_query_runs(db):
    queries = _doc_queries()
    assert len(queries) >= 8
    subst = {"'<fingerprint>'": f"'{FP1}'", "'<preview, e.g. ghp_…(40)>'": "'abcd…(32)'",
             "'<rule-id>'": "'api-key-header'"}
    with _ro(db) as con:
        results = []
        for q in queries:
            for k, v in subst.items():
                q = q.replace(k, v)
            assert "<" not in q.replace("<json>", "").replace("<>", ""), q  # every placeholder replaced
            results.append(con.execute(q).fetchall())
    assert len(results[0]) == 3 and len(results[1]) == 2  # by fingerprint / by preview + rule
    assert results[7][0][0] == "kv-payroll/sql-password"  # Key Vault secrets
    assert [r[0] for r in results[9]] == [S2]  # incomplete scans


# -- query ----------------------------------------------------------------------------------------------

def test_query_formats(db):
    runner = CliRunner()
    sql = "SELECT finding_id, flow_name, preview, run_start_time FROM open_findings ORDER BY finding_id"
    r = runner.invoke(cli, ["query", sql, "--db", db])
    assert r.exit_code == 0, r.output
    assert "Sync orders" in r.output and "abcd…(32)" in r.output
    r = runner.invoke(cli, ["query", sql, "--db", db, "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [x["finding_id"] for x in rows] == ["fa", "fb", "fc", "fd"] and rows[0]["preview"] == "abcd…(32)"
    r = runner.invoke(cli, ["query", sql + ";", "--db", db, "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [x["finding_id"] for x in data] == ["fa", "fb", "fc", "fd"] and data[2]["flow_name"] == "Payroll export"
    # statements COPY cannot wrap still work (fallback writers)
    r = runner.invoke(cli, ["query", "SHOW TABLES", "--db", db, "--format", "json"])
    assert r.exit_code == 0 and "findings" in {x["name"] for x in json.loads(r.stdout)}
    r = runner.invoke(cli, ["query", "DESCRIBE findings", "--db", db, "--format", "csv"])
    assert r.exit_code == 0 and "fingerprint" in r.stdout


def test_query_is_read_only_and_reports_errors(db, tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["query", "DELETE FROM findings", "--db", db])
    assert r.exit_code == 2 and "read-only" in r.output
    r = runner.invoke(cli, ["query", "INSERT INTO suppressions(fingerprint, reason) VALUES ('x', 'y')",
                                      "--db", db, "--format", "csv"])
    assert r.exit_code == 2 and "read-only" in r.output
    assert len(_status(db)) == len(FINDINGS)
    r = runner.invoke(cli, ["query", "SELEC 1", "--db", db])
    assert r.exit_code == 2 and "SQL error" in r.output
    r = runner.invoke(cli, ["query", "SELECT * FROM nope", "--db", db, "--format", "json"])
    assert r.exit_code == 2 and "SQL error" in r.output
    missing = str(tmp_path / "missing.duckdb")
    r = runner.invoke(cli, ["query", "SELECT 1", "--db", missing])
    assert r.exit_code == 2 and "no database" in r.output and not os.path.exists(missing)
    r = CliRunner(env={"FLOWLEAKS_DB": db}).invoke(cli, ["query", "SELECT count(*) AS n FROM findings",
                                                                    "--format", "csv"])
    assert r.exit_code == 0 and r.stdout.split() == ["n", str(len(FINDINGS))]


# -- export --------------------------------------------------------------------------------------------

EXPORT_COLUMNS = {
    "finding_id", "status", "environment", "environment_name", "flow_id", "flow_name", "creator", "run_id",
    "run_start", "action", "repetition", "side", "json_path", "decoding", "file", "rule_id", "detector", "confidence",
    "severity", "preview", "secret_length", "fingerprint", "visible", "known_secret", "message", "cause",
    "remediation", "first_seen", "last_seen", "first_scan_id", "last_scan_id", "suppression_reason"}


def test_export_columns_are_the_redacted_list(db):
    with _ro(db) as con:
        assert set(con.sql(export_sql("all")).columns) == EXPORT_COLUMNS


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "sarif"])
def test_export_formats_private(db, tmp_path, fmt):
    out = tmp_path / f"findings.{fmt}"
    out.write_text("old")
    os.chmod(out, 0o644)  # a pre-existing, readable file ends 0600 too
    r = CliRunner().invoke(cli, ["export", "--format", fmt, "--out", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    assert _mode(out) == 0o600
    expected = {"fa", "fb", "fc", "fd", "fe"}  # default: open + suppressed
    if fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert {x["finding_id"] for x in rows} == expected
        assert {x["status"] for x in rows} == {"open", "suppressed"} and set(rows[0]) == EXPORT_COLUMNS
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
        assert {x["finding_id"] for x in rows} == expected
    elif fmt == "parquet":
        with duckdb.connect() as con:
            rows = _rows(con, f"SELECT * FROM read_parquet('{out}')")
        assert {x["finding_id"] for x in rows} == expected
        assert next(x for x in rows if x["finding_id"] == "fa")["preview"] == "abcd…(32)"
    else:
        log = json.loads(out.read_text(encoding="utf-8"))
        assert validate(log) == [] and log["version"] == "2.1.0"
        run = log["runs"][0]
        rule_ids = [x["id"] for x in run["tool"]["driver"]["rules"]]
        assert len(rule_ids) == len(set(rule_ids)) == 4  # fg is resolved: not exported
        results = run["results"]
        assert {x["properties"]["finding_id"] for x in results} == expected
        fa = next(x for x in results if x["properties"]["finding_id"] == "fa")
        assert fa["ruleId"] == "api-key-header" and fa["level"] == "error"  # no severity: confidence high
        assert fa["partialFingerprints"]["flowleaks/v1"] == FP1
        assert fa["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == f"{ENV1}/{F1}/{R1}/HTTP"
        assert "Sync orders" in fa["message"]["text"] and "abcd…(32)" in fa["message"]["text"]
        assert R1 in fa["message"]["text"] and "'HTTP'" in fa["message"]["text"]
        fd = next(x for x in results if x["properties"]["finding_id"] == "fd")
        assert fd["level"] == "error"  # severity high
        fe = next(x for x in results if x["properties"]["finding_id"] == "fe")
        assert fe["level"] == "note" and fe["suppressions"][0]["kind"] == "external"


def test_export_status_filters(db, tmp_path):
    runner = CliRunner()
    for status, n in (("open", 4), ("all", 6)):
        out = tmp_path / f"{status}.jsonl"
        r = runner.invoke(cli, ["export", "--format", "jsonl", "--out", str(out), "--db", db, "--status", status])
        assert r.exit_code == 0, r.output
        assert len(out.read_text(encoding="utf-8").splitlines()) == n
        assert f"exported {n} findings" in r.output


# -- suppressions ---------------------------------------------------------------------------------------

def test_suppress_by_finding_id_stores_fingerprint_and_rule(db):
    r = CliRunner().invoke(cli, ["suppress", "fc", "--reason", "test vault", "--db", db])
    assert r.exit_code == 0, r.output
    assert "…(12)" in r.output and "1 open finding now suppressed" in r.output
    with _ro(db) as con:
        assert con.execute("SELECT fingerprint, rule_id, reason, expires_at FROM suppressions").fetchall() == [
            (FP2, "known-value", "test vault", None)]
    assert _status(db)["fc"] == "suppressed"


def test_suppress_by_fingerprint_with_expiry(db):
    future = (NOW + timedelta(days=30)).date().isoformat()
    runner = CliRunner()
    r = runner.invoke(cli, ["suppress", FP1, "--reason", "rotated", "--expires", future, "--db", db])
    assert r.exit_code == 0, r.output
    st = _status(db)
    assert (st["fa"], st["fb"], st["fe"], st["fc"]) == ("suppressed", "suppressed", "suppressed", "open")
    with _ro(db) as con:
        (fp, rule, exp), = con.execute("SELECT fingerprint, rule_id, expires_at FROM suppressions").fetchall()
    assert fp == FP1 and rule is None and exp.date().isoformat() == future
    # the same target again updates instead of duplicating
    r = runner.invoke(cli, ["suppress", FP1, "--reason", "rotated twice", "--db", db])
    assert r.exit_code == 0 and "updated" in r.output
    with _ro(db) as con:
        assert con.execute("SELECT count(*), min(reason) FROM suppressions").fetchone() == (1, "rotated twice")
    # bad inputs
    assert runner.invoke(cli, ["suppress", "nope", "--reason", "x", "--db", db]).exit_code == 2
    assert runner.invoke(cli, ["suppress", FP1, "--reason", "x", "--expires", "2001-01-01", "--db", db]).exit_code == 2
    assert runner.invoke(cli, ["suppress", FP1, "--reason", "x", "--expires", "tomorrow", "--db", db]).exit_code == 2


def test_suppressions_list_and_stale(db):
    runner = CliRunner()
    for target in ("fb", "fc", "e5" * 32):  # fb: FP1 seen by S1; fc: FP2 only in S2; e5…: never seen
        r = runner.invoke(cli, ["suppress", target, "--reason", "accepted", "--db", db])
        assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["suppressions", "--db", db, "--format", "json"])
    assert r.exit_code == 0, r.output
    listing = {x["fingerprint"]: x for x in json.loads(r.stdout)}
    assert set(listing) == {FP1, FP2, "e5" * 32} and listing[FP1]["state"] == "active"
    assert listing[FP1]["preview"] == "abcd…(32)" and listing[FP1]["suppressed_findings"] == 2
    # last complete scan is S1 (S2 is incomplete): only the FP1 suppression matched something there
    r = runner.invoke(cli, ["suppressions", "--db", db, "--stale", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert {x["fingerprint"] for x in json.loads(r.stdout)} == {FP2, "e5" * 32}
    r = runner.invoke(cli, ["suppressions", "--db", db, "--stale"])
    assert r.exit_code == 0 and "Stale suppressions" in r.output


def test_apply_suppressions_with_expired_suppression(db):
    store = Store(db)
    try:
        con = store.con
        con.execute("INSERT INTO suppressions(fingerprint, rule_id, reason, created_at, expires_at) VALUES "
                    "(?, NULL, 'old exception', ?, ?), (?, 'known-value', 'vault test', ?, NULL)",
                    [FP1, NOW - timedelta(days=60), NOW - timedelta(days=1), FP2, NOW])
        counts = apply_suppressions(con, S2)
        rows = suppression_rows(con)
    finally:
        store.close()
    st = _status(db)
    assert st["fe"] == "open"  # its suppression expired
    assert st["fc"] == "suppressed" and st["fa"] == "open" and st["fg"] == "resolved"
    assert counts == {"suppressed": 1, "reopened": 1, "matched_suppressions": 1}
    by_fp = {r["fingerprint"]: r for r in rows}
    assert by_fp[FP2]["last_matched_scan"] == S2 and by_fp[FP1]["last_matched_scan"] is None
    assert by_fp[FP1]["state"] == "expired"


def test_the_clock_alone_resolves_nothing_a_listing_or_a_404_does(db):
    store = Store(db)
    try:
        # a complete listing of F1's last 30 days lists R1 only: R2 (40 days old) is outside that
        # window, so its finding stays open however old it is
        n = lifecycle.resolve_unlisted(store.con, ENV1, F1, NOW - timedelta(days=30), None, [R1])
        assert n == 0
        # the same listing over 50 days no longer lists R2: resolved; idempotent
        assert lifecycle.resolve_unlisted(store.con, ENV1, F1, NOW - timedelta(days=50), None, [R1]) == 1
        assert lifecycle.resolve_unlisted(store.con, ENV1, F1, NOW - timedelta(days=50), None, [R1]) == 0
    finally:
        store.close()
    st = _status(db)
    assert st["fb"] == "resolved"  # run R2's start comes from the runs table
    assert st["fa"] == "open" and st["fd"] == "open"  # listed run; posture untouched


def test_runs_worth_a_404_probe_and_resolving_them(db):
    store = Store(db)
    try:
        assert lifecycle.runs_to_probe(store.con, ENV1, F1, NOW - timedelta(days=30)) == [R2]
        assert lifecycle.runs_to_probe(store.con, ENV1, F1, NOW - timedelta(days=60)) == []
        assert lifecycle.resolve_runs(store.con, ENV2, F2, [R3]) == 2  # fe (suppressed) and fc (open)
    finally:
        store.close()
    st = _status(db)
    assert st["fc"] == "resolved" and st["fe"] == "resolved" and st["fb"] == "open" and st["fd"] == "open"


def test_query_on_database_without_views_and_empty_results(db):
    with duckdb.connect(db) as con:  # a database written before the views existed
        for name in VIEWS:
            con.execute(f"DROP VIEW {name}")
    runner = CliRunner()
    r = runner.invoke(cli, ["query", "SELECT count(*) AS n FROM open_findings", "--db", db, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"n": 4}]
    r = runner.invoke(cli, ["query", "SELECT * FROM exposure WHERE false", "--db", db, "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    r = runner.invoke(cli, ["query", "SELECT scan_id, skipped_by_reason FROM coverage ORDER BY scan_id",
                                      "--db", db, "--format", "json"])
    assert json.loads(r.stdout)[1]["skipped_by_reason"] == {"secured": 3, "expired": 1, "HTTP error": 1}
