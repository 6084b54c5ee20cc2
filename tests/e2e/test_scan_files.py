"""`flowleaks scan-files` end to end: the installed CLI on exported payloads, and the non-negotiables
(no secret in any artefact; an unreadable input is never a clean result)."""
from __future__ import annotations

import base64
import gzip
import json
import os
import re
import secrets
import string
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from scanner.files.sources import expand
from scanner.files.worker import batches
from scanner.store.schema import SCHEMA
from tests.e2e.conftest import KEY, assert_nothing_leaks, cli_env, flowleaks, fp, rows
from tests.fakeapi import FakeFlowApi

B62 = string.ascii_letters + string.digits
ENV = "Default-48595cc3-adce-4267-8e99-0c838923dbb9"
FLOW = "396d5ec9-ae2d-4a84-967d-cd7f56cd8f30"
RUN = "08586653536760200319026785874CU62"


def rnd(n: int, alphabet: str = B62) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def fresh() -> dict[str, str]:
    """Secrets of shapes the rules find, new on every run (detectors/powerplatform.py examples)."""
    return {
        "ghp": "ghp_" + rnd(36),
        "ghp2": "ghp_" + rnd(36),
        "aad": rnd(3) + "8Q~" + rnd(34, B62 + "_-"),
        "storage": base64.b64encode(secrets.token_bytes(64)).decode(),
        "apikey": rnd(32, "0123456789abcdef"),
        "password": "Winter" + rnd(6, string.digits) + "!",
        "sig": rnd(43, B62 + "-_"),
    }


def scan(*args: object, db: Path, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None):
    return flowleaks("scan-files", *args, "--db", db, env={"FLOWLEAKS_FINGERPRINT_KEY": KEY, **(env or {})},
                     cwd=cwd or Path.cwd(), stdin=stdin)


def findings(db: Path) -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rel = con.sql("SELECT * FROM findings ORDER BY file, json_path, rule_id")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def link(kind: str, s: str) -> dict:
    return {"uri": f"https://prod-59.westeurope.logic.azure.com:443/workflows/2d8d4d3c94604eeeadc68464ea5fb361/runs/{RUN}"
                   f"/contents/{kind}?api-version=2016-06-01&sp=%2Fruns%2F{RUN}%2Fcontents%2F{kind}%2Fread&sv=1.0&sig={s}",
            "contentVersion": "98GuGIhrxUoG/lKXcXUgaA==", "contentSize": 515,
            "contentHash": {"algorithm": "md5", "value": "98GuGIhrxUoG/lKXcXUgaA=="}}


def m365_run(s: dict[str, str], env: str = ENV, flow: str = FLOW, run: str = RUN, start: str | None = None) -> dict:
    """`m365 flow run get --withActions --withTrigger` output: the run object, plus `actions` whose
    entries are the very objects under `properties.actions` (so each body is printed twice), with
    the fetched content as `input`/`output`, and the trigger's outputs as `triggerInformation`."""
    http = {"inputsLink": link("ActionInputs", s["sig"]), "outputsLink": link("ActionOutputs", rnd(43)),
            "startTime": "2023-11-17T21:06:14.466889Z", "status": "Succeeded", "code": "OK",
            "input": {"method": "GET", "uri": "https://api.contoso.com/v1/items",
                      "headers": {"Ocp-Apim-Subscription-Key": s["apikey"]}},
            "output": {"statusCode": 200, "body": {"note": f"deploy token {s['ghp']} rotated"}}}
    compose = {"inputsLink": link("ActionInputs", rnd(43)), "status": "Succeeded", "input": "nothing here"}
    start = start or "2018-09-06T17:00:09.9484194Z"
    return {"name": run, "id": f"/providers/Microsoft.ProcessSimple/environments/{env}/flows/{flow}/runs/{run}",
            "type": "Microsoft.ProcessSimple/environments/flows/runs",
            "properties": {"startTime": start, "status": "Succeeded",
                           "trigger": {"name": "manual", "outputsLink": link("TriggerOutputs", rnd(43)),
                                       "status": "Succeeded"},
                           "actions": {"HTTP_call_partner": http, "Compose": compose}},
            "startTime": start, "status": "Succeeded", "triggerName": "manual",
            "triggerInformation": {"user": "svc", "password": s["password"]},
            "actions": {"HTTP_call_partner": http, "Compose": compose}}


# -- formats and a directory tree -----------------------------------------------------------------------

def test_a_tree_of_json_jsonl_gz_and_text_is_scanned_and_no_artefact_holds_a_secret(tmp_path):
    s = fresh()
    tree = tmp_path / "in"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "a.json").write_text(json.dumps({"body": {"token": s["ghp"]}}))
    (tree / "sub" / "deeper" / "b.jsonl").write_text("\n".join([
        json.dumps({"x": 1}),
        json.dumps({"headers": {"x-api-key": s["apikey"]}}),
        f"client credential {s['aad']} (pasted from the portal)",  # not JSON: scanned as text
    ]) + "\n")
    with gzip.open(tree / "c.json.gz", "wt") as f:
        f.write(json.dumps({"cs": f"DefaultEndpointsProtocol=https;AccountName=contoso1;AccountKey={s['storage']};"
                                  "EndpointSuffix=core.windows.net"}))
    with gzip.open(tree / "sub" / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"ok": True}) + "\n" + json.dumps({"user": "svc", "password": s["password"]}) + "\n")
    (tree / "notes.txt").write_text(f"Ticket 4411: please use {s['ghp2']} for the deploy.\n")
    db = tmp_path / "f.duckdb"
    summary = tmp_path / "summary.json"

    r = scan("in", "--summary-json", summary, db=db, cwd=tmp_path)
    assert r.code == 1, r.stderr
    got = {(f["file"], f["json_path"], f["rule_id"], f["fingerprint"]) for f in findings(db)}
    assert {("in/a.json", "$.body.token", "github-token", fp(s["ghp"])),
            ("in/sub/deeper/b.jsonl", "$[line 2].headers['x-api-key']", "api-key-header", fp(s["apikey"])),
            ("in/sub/deeper/b.jsonl", "$[line 3]", "azure-ad-client-secret", fp(s["aad"])),
            ("in/c.json.gz", "$.cs", "azure-storage-account-key", fp(s["storage"])),
            ("in/sub/d.jsonl.gz", "$[line 2].password", "secret-keyword", fp(s["password"])),
            ("in/notes.txt", "$", "github-token", fp(s["ghp2"]))} <= got
    assert {f["side"] for f in findings(db)} == {"file"}  # nothing here says more
    assert {f["detector"] for f in findings(db)} <= {"pattern", "entropy", "known_value"}
    # the JSON Lines line that is not JSON is on record, and (its text scanned) leaves the scan complete
    assert rows(db, "SELECT file, reason FROM skipped") == [("in/sub/deeper/b.jsonl", "not json")]
    assert rows(db, "SELECT kind, complete FROM scans") == [("scan-files", True)]
    assert json.loads(summary.read_text())["files"] == {"planned": 5, "scanned": 5}

    env = {"FLOWLEAKS_DB": str(db)}
    exports, texts = [summary], [r.stdout, r.stderr]
    for fmt in ("jsonl", "csv", "sarif", "parquet"):
        out = tmp_path / f"findings.{fmt}"
        e = flowleaks("export", "--format", fmt, "--out", out, env=env)
        assert e.code == 0, e.stderr
        exports.append(out)
        texts += [e.stdout, e.stderr]
    exported = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert {x["file"] for x in exported} == {"in/a.json", "in/sub/deeper/b.jsonl", "in/c.json.gz",
                                             "in/sub/d.jsonl.gz", "in/notes.txt"}
    sarif = json.loads((tmp_path / "findings.sarif").read_text())
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"] for res in sarif["runs"][0]["results"]
            for loc in res["locations"]}
    assert "in/notes.txt" in uris
    q = flowleaks("query", "SELECT * FROM findings", "--format", "json", env=env)
    texts += [q.stdout, q.stderr]
    assert_nothing_leaks(s.values(), db, exports, texts)


def test_an_m365_run_export_is_attributed_and_each_body_scanned_once(tmp_path):
    s = fresh()
    (tmp_path / "run.json").write_text(json.dumps(m365_run(s), indent=2))
    db = tmp_path / "f.duckdb"
    r = scan("run.json", db=db, cwd=tmp_path)
    assert r.code == 1, r.stderr
    by_fp = {}
    for f in findings(db):
        by_fp.setdefault(f["fingerprint"], []).append(f)
    key = [(f["environment"], f["flow_id"], f["run_id"], f["action"], f["side"], f["json_path"], f["visible"])
           for f in by_fp[fp(s["apikey"])]]
    # printed twice by m365 (actions.X and properties.actions.X are one object): one finding
    assert key == [(ENV, FLOW, RUN, "HTTP_call_partner", "action_inputs",
                    "$.actions.HTTP_call_partner.input.headers['Ocp-Apim-Subscription-Key']", True)]
    assert [(f["action"], f["side"], f["json_path"]) for f in by_fp[fp(s["ghp"])]] == [
        ("HTTP_call_partner", "action_outputs", "$.actions.HTTP_call_partner.output.body.note")]
    assert [(f["action"], f["side"], f["json_path"], f["run_start"].isoformat()) for f in by_fp[fp(s["password"])]] == [
        ("manual", "trigger_outputs", "$.triggerInformation.password", "2018-09-06T17:00:09.948419")]
    # the content links' SAS sig is a credential too: found in the run's metadata (side file)
    sig = by_fp[fp(s["sig"])]
    assert {(f["rule_id"], f["run_id"], f["side"]) for f in sig} == {("logic-apps-trigger-url", RUN, "file")}
    assert {f["file"] for f in findings(db)} == {"run.json"}
    assert_nothing_leaks(s.values(), db, [], [r.stdout, r.stderr])


def test_flow_definitions_have_side_definition(tmp_path):
    s = fresh()
    definition = {"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/"
                             "workflowdefinition.json#", "contentVersion": "1.0.0.0",
                  "triggers": {"manual": {"type": "Request", "kind": "Http"}},
                  "actions": {"HTTP": {"type": "Http", "inputs": {"method": "GET", "uri": "https://api.contoso.com",
                                                                  "headers": {"x-api-key": s["apikey"]}}}}}
    flow = {"name": FLOW, "id": f"/providers/Microsoft.ProcessSimple/environments/{ENV}/flows/{FLOW}",
            "properties": {"displayName": "Invoice sync", "definition": definition}}
    (tmp_path / "flow.json").write_text(json.dumps(flow))
    (tmp_path / "Workflows").mkdir()
    (tmp_path / "Workflows" / "bare.json").write_text(json.dumps({**definition, "actions": {
        "Compose": {"type": "Compose", "inputs": f"token {s['ghp']}"}}}))
    db = tmp_path / "f.duckdb"
    r = scan("flow.json", "Workflows", db=db, cwd=tmp_path)
    assert r.code == 1, r.stderr
    got = {(f["file"], f["environment"], f["flow_id"], f["side"], f["json_path"], f["rule_id"]) for f in findings(db)}
    assert got == {("flow.json", ENV, FLOW, "definition",
                    "$.properties.definition.actions.HTTP.inputs.headers['x-api-key']", "api-key-header"),
                   ("Workflows/bare.json", None, None, "definition", "$.actions.Compose.inputs", "github-token")}
    assert_nothing_leaks(s.values(), db, [], [r.stdout, r.stderr])


def test_a_content_body_laid_out_like_its_link_gets_run_action_and_side(tmp_path):
    s = fresh()
    body = tmp_path / "runs" / RUN / "actions" / "Send_mail" / "repetitions" / "000003" / "contents"
    body.mkdir(parents=True)
    (body / "ActionOutputs.json").write_text(json.dumps({"statusCode": 200, "body": {"t": s["ghp"]}}))
    (tmp_path / "trigger_inputs.json").write_text(json.dumps({"headers": {"x-api-key": s["apikey"]}}))
    db = tmp_path / "f.duckdb"
    assert scan(".", db=db, cwd=tmp_path).code == 1
    got = {(f["run_id"], f["action"], f["repetition"], f["side"], f["json_path"]) for f in findings(db)}
    assert got == {(RUN, "Send_mail", "000003", "action_outputs", "$.body.t"),
                   (None, None, None, "trigger_inputs", "$.headers['x-api-key']")}


# -- never a false clean ----------------------------------------------------------------------------------

def test_what_cannot_be_read_is_recorded_and_alone_exits_3(tmp_path):
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "bad.json.gz").write_bytes(b"\x1f\x8b" + secrets.token_bytes(64))  # gzip magic, then garbage
    (tree / "gone.json").symlink_to(tmp_path / "nowhere.json")                # a dangling link
    with zipfile.ZipFile(tree / "solution.zip", "w") as z:                     # an archive is not opened
        z.writestr("Workflows/flow.json", json.dumps({"t": "ghp_" + rnd(36)}))
    (tree / "ok.json").write_text(json.dumps({"status": "Succeeded", "id": "7f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"}))
    db = tmp_path / "f.duckdb"
    summary = tmp_path / "s.json"
    r = scan("in", "--summary-json", summary, db=db, cwd=tmp_path)
    assert r.code == 3, (r.stdout, r.stderr)
    assert sorted(rows(db, "SELECT file, reason FROM skipped")) == [("in/bad.json.gz", "unreadable"),
                                                                    ("in/gone.json", "unreadable"),
                                                                    ("in/solution.zip", "archive")]
    assert rows(db, "SELECT count(*) FROM findings") == [(0,)]
    assert rows(db, "SELECT complete, status FROM scans") == [(False, "incomplete")]
    assert "INCOMPLETE" in r.stdout
    assert json.loads(summary.read_text())["exit_code"] == 3
    assert "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file")
def test_a_file_without_read_permission_is_unreadable(tmp_path):
    f = tmp_path / "locked.json"
    f.write_text("{}")
    f.chmod(0)
    db = tmp_path / "f.duckdb"
    r = scan(f, db=db)
    assert r.code == 3
    assert rows(db, "SELECT reason, detail FROM skipped") == [("unreadable", "Permission denied")]


def test_too_large_files_and_lines_are_recorded_not_read(tmp_path):
    s = fresh()
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"blob": "x" * (1_200_000), "t": s["ghp"]}))
    lines = tmp_path / "h.jsonl"
    lines.write_text(json.dumps({"blob": "y" * 1_200_000}) + "\n" + json.dumps({"t": s["ghp2"]}) + "\n")
    db = tmp_path / "f.duckdb"
    r = scan("--max-mb", 1, big, db=db)
    assert r.code == 3, r.stdout
    assert rows(db, "SELECT reason FROM skipped") == [("too large",)]
    r = scan("--max-mb", 1, lines, db=tmp_path / "g.duckdb")
    assert r.code == 1  # the next line is still read
    assert rows(tmp_path / "g.duckdb", "SELECT json_path FROM findings") == [("$[line 2].t",)]
    assert rows(tmp_path / "g.duckdb", "SELECT reason, detail FROM skipped") == [
        ("too large", "line 1 over the 1 MB cap (--max-mb)")]


def test_no_such_path_is_a_usage_error(tmp_path):
    db = tmp_path / "f.duckdb"
    r = scan(tmp_path / "missing.json", db=db)
    assert r.code == 2
    assert "missing.json" in r.stderr and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not db.exists()


def test_a_clean_directory_exits_0(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "run.json").write_text(json.dumps({
        "statusCode": 200, "headers": {"x-ms-request-id": "7f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
                                       "Date": "Tue, 06 Jan 2026 10:00:00 GMT"},
        "body": {"value": [{"ID": 3, "Title": "Quarterly invoice review", "Modified": "2026-01-06T10:00:00Z"}]}}))
    (tmp_path / "d" / "log.jsonl").write_text('{"step": 1}\nplain words in a log line\n')
    db = tmp_path / "f.duckdb"
    r = scan("d", db=db, cwd=tmp_path)
    assert r.code == 0, (r.stdout, r.stderr)
    assert "No open findings." in r.stdout and "complete" in r.stdout
    assert rows(db, "SELECT complete FROM scans") == [(True,)]
    # what a filter dropped is on record, with its file (the request id is a GUID, not a secret)
    assert rows(db, "SELECT file, json_path, filter FROM filtered") == [
        ("d/run.json", "$.headers['x-ms-request-id']", "guid")]


# -- parallel, stable, known values ------------------------------------------------------------------------

def test_jobs_1_and_jobs_2_give_the_same_finding_ids_and_a_rerun_adds_none(tmp_path):
    for i in range(8):
        s = fresh()
        d = tmp_path / "in" / f"part{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"run{i}.json").write_text(json.dumps(m365_run(s, run=f"0858{i:025d}CU1")))
        # 40 KB a file: several batches of files (worker.BATCH_BYTES), so both workers get some
        (d / f"h{i}.jsonl").write_text("\n".join(json.dumps({"n": n, "t": s["ghp2"] if n == i else "x" * 90})
                                                 for n in range(400)))
    ids = {}
    for jobs in (1, 2):
        db = tmp_path / f"j{jobs}.duckdb"
        r = scan("in", "--jobs", jobs, "--quiet", db=db, cwd=tmp_path)
        assert r.code == 1, r.stderr
        ids[jobs] = rows(db, "SELECT finding_id, file, json_path, fingerprint FROM findings ORDER BY 1")
    assert ids[1] == ids[2] and len(ids[1]) >= 8 * 5
    assert len(list(batches(expand([str(tmp_path / "in")])[0]))) >= 2
    again = scan("in", "--jobs", 2, "--quiet", db=tmp_path / "j1.duckdb", cwd=tmp_path)
    assert again.code == 1
    assert rows(tmp_path / "j1.duckdb", "SELECT finding_id, file, json_path, fingerprint FROM findings ORDER BY 1") \
        == ids[1]
    assert rows(tmp_path / "j1.duckdb", "SELECT count(DISTINCT scan_id) FROM findings") == [(1,)]  # the rerun's


def test_known_values_from_stdin_are_found_by_hash(tmp_path):
    value = f"harbour-{rnd(4, string.ascii_lowercase)}-{rnd(4, string.digits)}-falcon"
    (tmp_path / "ticket.txt").write_text(f"step3 ok conn={value};retry=0\n")
    (tmp_path / "body.json").write_text(json.dumps({"log": [f"connected with {value}"]}))
    db = tmp_path / "f.duckdb"
    assert scan(".", db=db, cwd=tmp_path).code == 0  # no rule finds it: only the known value does
    r = scan(".", "--known-values-stdin", db=tmp_path / "k.duckdb", cwd=tmp_path, stdin=f"{value}\nshort\n")
    assert r.code == 1, r.stderr
    got = rows(tmp_path / "k.duckdb", "SELECT file, json_path, detector, known_secret, fingerprint FROM findings "
                                      "ORDER BY file")
    assert got == [("body.json", "$.log[0]", "known_value", "stdin:1", fp(value)),
                   ("ticket.txt", "$", "known_value", "stdin:1", fp(value))]
    assert "known values: 1 values" in r.stdout
    assert_nothing_leaks([value], tmp_path / "k.duckdb", [], [r.stdout, r.stderr])


def test_known_vault_values_are_found(tenant, tmp_path):
    with FakeFlowApi(tenant) as api:
        name, value = next(iter(tenant.vault_secrets.items()))
        (tmp_path / "attachment.txt").write_text(f"for the record: conn={value};retry=0\n")
        db = tmp_path / "f.duckdb"
        r = scan("attachment.txt", "--known-vault", api.vault_url, db=db, cwd=tmp_path,
                 env={"FLOWLEAKS_ACCESS_TOKEN": api.token})
        token = api.token
    assert r.code == 1, r.stderr
    known = rows(db, "SELECT known_secret FROM findings WHERE detector = 'known_value'")
    assert [k[0].rsplit("/", 1)[-1] for k in known] == [name]
    assert "secrets from" in r.stdout
    assert_nothing_leaks([value, token], db, [], [r.stdout, r.stderr])


# -- the store ---------------------------------------------------------------------------------------------

def test_a_database_from_before_the_file_column_is_upgraded(tmp_path):
    db = tmp_path / "old.duckdb"
    old_schema = re.sub(r"ALTER TABLE[^\n]*\n", "", re.sub(r",\n\s*file VARCHAR[^\n]*", "", SCHEMA))
    assert "file VARCHAR" not in old_schema
    con = duckdb.connect(str(db))
    con.execute(old_schema)
    con.execute("INSERT INTO findings(finding_id, rule_id, status) VALUES ('old', 'github-token', 'open')")
    con.close()
    s = fresh()
    (tmp_path / "a.json").write_text(json.dumps({"t": s["ghp"]}))
    r = scan("a.json", db=db, cwd=tmp_path)
    assert r.code == 1, r.stderr
    assert rows(db, "SELECT finding_id = 'old', file FROM findings ORDER BY 1") == [(False, "a.json"), (True, None)]


def test_a_sweep_does_not_resolve_what_an_exported_file_holds(tenant, tmp_path):
    """A run no longer served by the API is gone from run history, not from the export on disk."""
    plant = next(p for p in tenant.iter_plants() if not p.secured)
    s = fresh()
    start = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    (tmp_path / "run.json").write_text(json.dumps(m365_run(s, env=plant.environment, flow=plant.flow_id,
                                                           run="08580000000000000000000000000CU99", start=start)))
    db = tmp_path / "f.duckdb"
    assert scan("run.json", db=db, cwd=tmp_path).code == 1
    with FakeFlowApi(tenant) as api:
        sweep = flowleaks("sweep", "--as-admin", "--quiet", "--env", plant.environment, "--flow", plant.flow_id,
                          env=cli_env(api, db))
    assert sweep.code == 1, sweep.stderr
    assert rows(db, "SELECT DISTINCT status FROM findings WHERE file IS NOT NULL") == [("open",)]


def test_the_same_secret_in_two_files_is_two_findings(tmp_path):
    s = fresh()
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps({"t": s["ghp"]}))
    db = tmp_path / "f.duckdb"
    assert scan("a.json", "b.json", db=db, cwd=tmp_path).code == 1
    assert rows(db, "SELECT file, json_path, count(DISTINCT finding_id) FROM findings GROUP BY ALL ORDER BY 1") == [
        ("a.json", "$.t", 1), ("b.json", "$.t", 1)]
    assert rows(db, "SELECT count(DISTINCT finding_id) FROM findings") == [(2,)]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_min_confidence_low_brings_back_low_confidence_hits_in_workers_too(tmp_path, jobs):
    """The confidence floor reaches the worker processes: default medium hides a short random token
    under a neutral key (a `low confidence` row in filtered); --min-confidence low reports it."""
    data = tmp_path / "in"
    data.mkdir()
    # a fixed token: about 2% of random 24-character tokens fall to another filter
    # (natural-language, entropy-threshold), which made a random one flaky in CI
    token = "q7Rz2Lm9Xc4Vb8Nk3Jt6Hp1W"
    for i in range(70):  # enough files for more than one batch, so --jobs 2 really uses workers
        (data / f"{i}.json").write_text(json.dumps({"value": token if i == 0 else f"note {i}", "pad": "x" * 4096}))
    default_db, low_db = tmp_path / "default.duckdb", tmp_path / "low.duckdb"
    scan(data, "--jobs", jobs, db=default_db)
    scan(data, "--jobs", jobs, "--min-confidence", "low", db=low_db)
    assert fp(token) not in {f["fingerprint"] for f in findings(default_db)}
    assert rows(default_db, "SELECT count(*) FROM filtered WHERE filter = 'low confidence'")[0][0] >= 1
    assert fp(token) in {f["fingerprint"] for f in findings(low_db)}


def test_an_empty_directory_is_an_empty_scan_not_a_clean_one(tmp_path):
    (tmp_path / "in").mkdir()
    db = tmp_path / "f.duckdb"
    r = scan(tmp_path / "in", db=db)
    assert r.code == 3, r.stdout + r.stderr
    assert "empty scan is not a clean result" in r.stdout + r.stderr
    assert rows(db, "SELECT complete FROM scans") == [(False,)]


@pytest.mark.skipif(not __import__("detectors.prefilter", fromlist=["x"]).hyperscan_available(),
                    reason="hyperscan is x86-64 only")
def test_the_compiled_matcher_is_cached_privately_and_a_corrupt_cache_is_recompiled(tmp_path):
    s = fresh()
    (tmp_path / "a.json").write_text(json.dumps({"t": s["ghp"]}))
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache), "FLOWLEAKS_MATCHER": "hyperscan"}
    assert scan(tmp_path / "a.json", db=tmp_path / "1.duckdb", env=env).code == 1
    files = list((cache / "flowleaks").glob("hyperscan-*.db"))
    assert len(files) == 1
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert oct((cache / "flowleaks").stat().st_mode & 0o777) == "0o700"
    files[0].write_bytes(b"not a database")
    r = scan(tmp_path / "a.json", db=tmp_path / "2.duckdb", env=env)
    assert r.code == 1, r.stderr
    assert fp(s["ghp"]) in {f["fingerprint"] for f in findings(tmp_path / "2.duckdb")}
    assert files[0].read_bytes() != b"not a database"  # compiled again and rewritten


def test_an_unknown_matcher_is_a_usage_error_before_any_work(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    r = scan(tmp_path / "a.json", db=tmp_path / "f.duckdb", env={"FLOWLEAKS_MATCHER": "fastest"})
    assert r.code == 2
    assert "FLOWLEAKS_MATCHER must be one of hyperscan, portable, auto" in r.stderr
    assert not (tmp_path / "f.duckdb").exists()
