"""Both SARIF exports (`flowleaks lint` and `flowleaks export --format sarif`) validate against the
official SARIF 2.1.0 JSON schema, and point at something a code-scanning UI can show.

tests/data/sarif-schema-2.1.0.json is the SARIF 2.1.0 schema (rtm.5, the one SchemaStore and
Microsoft's SARIF SDKs validate with) as shipped by the npm package @microsoft/jest-sarif 1.0.0-beta.0
(MIT, Microsoft Corporation); see tests/data/README.md.
"""
from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.cli import ROOT, flowleaks
from tests.fakeapi import FakeFlowApi, Tenant
from tests.posture.posture_fixtures import DEPLOYMENT_SETTINGS, RISKY, solution_zip

SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
FAKE = "ghp_" + hashlib.sha256(b"flowleaks SARIF test").hexdigest()[:36]  # valid nowhere


def validate(log: dict) -> None:
    # every format jsonschema knows (the schema says draft-04 but uses draft-06's uri-reference);
    # uri / uri-reference are checked only with rfc3986-validator installed (the `test` extra)
    checker = jsonschema.FormatChecker()
    assert "uri-reference" in checker.checkers, "install the test extra: format 'uri-reference' is unchecked"
    jsonschema.Draft4Validator(SCHEMA, format_checker=checker).validate(log)


def locations(log: dict) -> list[dict]:
    return [loc for run in log["runs"] for res in run["results"] for loc in res["locations"]]


def test_the_schema_rejects_what_dashboards_reject():
    """The validator is live: a bad level, a missing message and a non-URI are errors."""
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"ruleId": "A", "level": "fatal", "message": {"text": "m"}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        validate(log)
    log["runs"][0]["results"][0] = {"ruleId": "A", "level": "error"}
    with pytest.raises(jsonschema.ValidationError):
        validate(log)
    log["runs"][0]["results"][0] = {"ruleId": "A", "message": {"text": "m"}, "locations": [
        {"physicalLocation": {"artifactLocation": {"uri": "flowleaks://env with space/flows/x"}}}]}
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_lint_sarif_is_valid_and_points_at_the_action_line(tmp_path):
    definition = tmp_path / "flow-definition.json"
    text = json.dumps({"properties": {"definition": RISKY}}, indent=2)
    definition.write_text(text)
    (tmp_path / "deploymentSettings.json").write_text(json.dumps(DEPLOYMENT_SETTINGS, indent=2))
    (tmp_path / "MySolution_managed.zip").write_bytes(solution_zip({"Invoice": RISKY}))
    r = flowleaks("lint", "flow-definition.json", "deploymentSettings.json", "MySolution_managed.zip",
                  "--format", "sarif", "-o", "lint.sarif", cwd=tmp_path)
    assert r.code == 1, r.stderr
    log = json.loads((tmp_path / "lint.sarif").read_text())
    validate(log)
    results = log["runs"][0]["results"]
    assert results
    lines = text.splitlines()
    in_definition = [res for res in results
                     if res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "flow-definition.json"]
    assert in_definition
    for res in in_definition:
        loc = res["locations"][0]
        line = loc["physicalLocation"]["region"]["startLine"]
        # the line is the action's own key in the file (what a dashboard highlights)
        key = re.match(r'^\s*"([^"]+)": \{', lines[line - 1])
        assert key and key.group(1) in loc["logicalLocations"][0]["fullyQualifiedName"].split("."), \
            (res["ruleId"], loc["logicalLocations"], lines[line - 1])
        assert f"'{key.group(1)}'" in loc["message"]["text"]
    zipped = [loc for loc in locations(log) if loc["physicalLocation"]["artifactLocation"]["uri"].endswith(".zip")]
    assert zipped and all("Workflows/" in loc["message"]["text"] for loc in zipped)


def test_export_sarif_is_valid_with_a_stable_uri_per_flow(tmp_path):
    # run-history and posture findings from a sweep of the loopback fake (fresh content links,
    # whatever the clock), file findings from scan-files, in one database
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(Tenant.generate(seed=5, environments=1, flows_per_env=6, runs_per_flow=1)) as api:
        swept = flowleaks("sweep", "--as-admin", "--quiet", env={**api.env_vars(), "FLOWLEAKS_DB": str(db)})
    assert swept.code == 1, swept.stderr
    (tmp_path / "run.json").write_text(json.dumps({"body": {"token": FAKE}}))
    assert flowleaks("scan-files", "run.json", "--db", db, "--quiet", cwd=tmp_path).code == 1
    r = flowleaks("export", "--db", db, "--format", "sarif", "--status", "all", "--out", "out.sarif", cwd=tmp_path)
    assert r.code == 0, r.stderr
    raw = (tmp_path / "out.sarif").read_text()
    log = json.loads(raw)
    validate(log)
    assert FAKE not in raw and FAKE[4:] not in raw  # previews only
    locs = locations(log)
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"] for loc in locs]
    assert "run.json" in uris  # a scan-files finding points at its file
    run_locs = [loc for loc in locs if loc["physicalLocation"]["artifactLocation"]["uri"] != "run.json"]
    assert run_locs
    for loc in run_locs:
        uri = loc["physicalLocation"]["artifactLocation"]["uri"]
        parts = urlsplit(uri)
        # relative, no scheme, no query (no SAS sig could ever ride along), one pseudo-file per flow
        assert not parts.scheme and not parts.query and not parts.netloc, uri
        assert uri.startswith("flowleaks/") and uri.endswith(".json") and uri.count("/") == 2, uri
        assert loc["physicalLocation"]["region"]["startLine"] == 1
    by_run = [(loc, res) for run in log["runs"] for res in run["results"] for loc in res["locations"]
              if res["properties"].get("json_path") and "run_start" in res["properties"]]
    assert by_run
    for loc, res in by_run:
        # where inside the flow: the JSON path (and the run) are in the location's message
        assert res["properties"]["json_path"] in loc["message"]["text"]
        env, flow = loc["physicalLocation"]["artifactLocation"]["uri"][len("flowleaks/"):-len(".json")].split("/")
        assert flow in res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
