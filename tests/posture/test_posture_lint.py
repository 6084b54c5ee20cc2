"""`flowleaks lint` as users run it (the installed console script, in a subprocess), and the SARIF it writes."""
from __future__ import annotations

import json
import os
import stat

import pytest

from scanner.report import sarif
from scanner.posture.lint import lint_paths
from tests.cli import flowleaks

from posture_fixtures import (DEPLOYMENT_SETTINGS, ENV_DEF_SECRET_XML, ENV_DEF_XML, MEDIUM_ONLY, PLANTED, RISKY,
                              SAFE, legacy_package_zip, solution_zip)


@pytest.fixture(autouse=True)
def _fingerprint_key(monkeypatch):
    monkeypatch.setenv("FLOWLEAKS_FINGERPRINT_KEY", "test-key")


class Run:
    """The subprocess result under the names these tests use."""

    def __init__(self, *args):
        r = flowleaks("lint", *args, env={"FLOWLEAKS_FINGERPRINT_KEY": "test-key"})
        self.exit_code, self.stdout, self.stderr = r.code, r.stdout, r.stderr
        self.output = r.stdout + r.stderr


run = Run


def assert_no_secrets(text: str):
    for name, v in PLANTED.items():
        assert v not in text, f"planted secret {name} printed"


@pytest.fixture()
def risky_json(tmp_path):
    p = tmp_path / "risky.json"
    p.write_text(json.dumps({"name": "f1", "properties": {"displayName": "Risky flow", "definition": RISKY}}, indent=2))
    return p


@pytest.fixture()
def solution(tmp_path):
    p = tmp_path / "Ops_1_0_0_1.zip"
    p.write_bytes(solution_zip(
        {"RiskyFlow": RISKY, "SafeFlow": SAFE},
        env_xml={"cr6e_ApiPassword": ENV_DEF_XML.format(value=PLANTED["env_password"]),
                 "cr6e_PartnerKey": ENV_DEF_SECRET_XML},
        env_values={"cr6e_ApiPassword": PLANTED["env_password"]}))
    s = tmp_path / "deploymentsettings.json"
    s.write_text(json.dumps(DEPLOYMENT_SETTINGS, indent=2))
    return p, s


def test_lint_definition_json(risky_json):
    r = run(risky_json, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    got = {(f["rule_id"], f["action"]) for f in doc["findings"]}
    assert {("PA001", "Get_secret"), ("PA002", "HTTP_call_partner"), ("PA003", "Keep_key"),
            ("PA004", "Call_function"), ("PA005", "Call_basic"), ("PA005", "Call_apim")} <= got
    assert all(f["flow"] == "Risky flow" and f["path"] == str(risky_json) for f in doc["findings"])
    pa1 = next(f for f in doc["findings"] if f["rule_id"] == "PA001")
    assert pa1["line"] == next(i for i, l in enumerate(risky_json.read_text().splitlines(), 1)
                               if '"Get_secret": {' in l)
    assert doc["summary"]["high"] >= 4 and doc["errors"] == []
    assert_no_secrets(r.output)


def test_lint_solution_zip_and_settings(solution):
    zpath, settings = solution
    r = run(zpath, settings, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    got = {(f["rule_id"], f["action"]) for f in doc["findings"]}
    assert ("PA001", "Get_secret") in got and ("PA005", "Call_basic") in got
    assert ("PA007", "cr6e_ApiPassword") in got  # String-typed, secret name, literal value
    assert ("PA007", "cr6e_ClientSecret") in got  # literal secret in deployment settings
    assert not any(a == "cr6e_PartnerKey" for _r, a in got)  # Secret type + Key Vault reference: fine
    assert not any(a == "cr6e_SiteUrl" for _r, a in got)
    flows = {f["flow"] for f in doc["findings"] if f["rule_id"] != "PA007"}
    assert flows == {"RiskyFlow"}  # SafeFlow is clean; name from the file name minus the GUID
    members = {f["member"] for f in doc["findings"] if f["path"] == str(zpath)}
    assert any(m and m.startswith("Workflows/RiskyFlow") for m in members)
    assert any(m and m.startswith("environmentvariabledefinitions/cr6e_ApiPassword/") for m in members)
    env = next(f for f in doc["findings"] if f["action"] == "cr6e_ApiPassword")
    assert env["preview"] == "EnvV…(28)" and env["fingerprint"]
    settings_f = next(f for f in doc["findings"] if f["action"] == "cr6e_ClientSecret")
    assert settings_f["path"] == str(settings) and settings_f["line"] and settings_f["json_path"] == "$.EnvironmentVariables[2].Value"
    assert doc["summary"]["flows"] == 2 and doc["errors"] == []
    for fmt in ("table", "sarif"):
        out = run(zpath, settings, "--format", fmt)
        assert out.exit_code == 1
        assert_no_secrets(out.output)
    assert_no_secrets(r.output)


def test_lint_safe_definition_exits_0(tmp_path):
    p = tmp_path / "safe.json"
    p.write_text(json.dumps(SAFE))
    r = run(p)
    assert r.exit_code == 0, r.output
    assert "0 finding(s)" in r.stdout


def test_fail_on_threshold(tmp_path):
    p = tmp_path / "medium.json"
    p.write_text(json.dumps(MEDIUM_ONLY))
    assert run(p, "--format", "json").exit_code == 0
    assert run(p, "--fail-on", "medium").exit_code == 1
    assert run(p, "--fail-on", "low").exit_code == 1
    assert run(p, "--fail-on", "never").exit_code == 0


def test_usage_and_input_errors(tmp_path):
    assert run().exit_code == 2
    missing = run(tmp_path / "missing.json")
    assert missing.exit_code == 2
    assert missing.stderr == f"flowleaks lint: {tmp_path / 'missing.json'}: no such file or directory\n"
    assert missing.stdout == ""  # no "0 finding(s) … 0 input(s)" line, as if a lint had run
    bad = tmp_path / "bad.json"
    bad.write_text('{"triggers": {,}}')
    r = run(bad)
    assert r.exit_code == 2
    assert r.stderr == (f"flowleaks lint: {bad}: not valid JSON: Expecting property name enclosed in double "
                        "quotes at line 1, column 15\n")
    assert r.stdout == ""
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    assert run(other).exit_code == 2
    assert run(bad, "--format", "yaml").exit_code == 2


def test_an_unreadable_input_beside_a_readable_one_marks_the_summary_incomplete(risky_json, tmp_path):
    r = run(risky_json, tmp_path / "missing.json")
    assert r.exit_code == 2  # an incomplete lint fails as an input error, whatever it found
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.endswith("in 1 flow(s), 1 input(s); INCOMPLETE: 1 input error(s), see stderr"), summary
    assert "PA001" in r.stdout


def test_an_unwritable_output_is_a_usage_error(risky_json, tmp_path):
    r = run(risky_json, "--output", tmp_path / "no-such-dir" / "report.txt")
    assert r.exit_code == 2, r.stderr
    assert "Could not open file" in r.stderr and "Traceback" not in r.stderr


def test_arm_export_legacy_package_and_directory(tmp_path):
    arm = tmp_path / "template.json"
    arm.write_text(json.dumps({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                               "resources": [{"type": "Microsoft.Logic/workflows", "name": "la-orders",
                                              "properties": {"definition": RISKY}}]}))
    pkg = tmp_path / "legacy.zip"
    pkg.write_bytes(legacy_package_zip(RISKY))
    unpacked = tmp_path / "unpacked"
    (unpacked / "Workflows").mkdir(parents=True)
    (unpacked / "Workflows" / "Flow-1.json").write_text(json.dumps({"properties": {"definition": RISKY}}))
    # in process without an engine: the literal checks must find the planted credentials on their own
    rep = lint_paths([arm, pkg, unpacked], engine=None, key=b"k")
    assert rep.errors == []
    by_path = {}
    for r in rep.results:
        by_path.setdefault(r.path, set()).add(r.finding.flow)
    assert by_path[str(arm)] == {"la-orders"}
    assert by_path[str(pkg)] == {"Legacy flow"}
    assert by_path[str(unpacked)] == {"Flow-1"}


def test_sarif_output_structure(solution, tmp_path):
    zpath, settings = solution
    out = tmp_path / "report.sarif"
    r = run(zpath, settings, "--format", "sarif", "--output", out)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    assert_no_secrets(text)
    log = json.loads(text)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert sarif.validate(log) == []
    run0 = log["runs"][0]
    rule_ids = {x["id"] for x in run0["tool"]["driver"]["rules"]}
    assert {res["ruleId"] for res in run0["results"]} <= rule_ids
    assert run0["tool"]["driver"]["name"] == "flowleaks"
    for res in run0["results"]:
        assert res["level"] in ("error", "warning", "note")
        loc = res["locations"][0]
        assert loc["physicalLocation"]["artifactLocation"]["uri"]
        assert loc["logicalLocations"][0]["kind"] == "member"
        assert res["partialFingerprints"]["flowleaksLocation/v1"]
    names = {res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] for res in run0["results"]}
    assert "actions.Get_secret" in names
    settings_res = [res for res in run0["results"]
                    if res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("deploymentsettings.json")]
    assert settings_res and settings_res[0]["locations"][0]["physicalLocation"]["region"]["startLine"] > 1
    assert settings_res[0]["partialFingerprints"]["flowleaksSecret/v1"]


def test_table_output_to_file(risky_json, tmp_path):
    out = tmp_path / "report.txt"
    r = run(risky_json, "--output", out)
    assert r.exit_code == 1
    text = out.read_text()
    assert "PA001" in text and "Get_secret" in text
    assert_no_secrets(text)


def test_fingerprints_stable_with_key(risky_json):
    a = json.loads(run(risky_json, "--format", "json").stdout)
    b = json.loads(run(risky_json, "--format", "json").stdout)
    fa = sorted(f["fingerprint"] for f in a["findings"] if f["fingerprint"])
    assert fa and fa == sorted(f["fingerprint"] for f in b["findings"] if f["fingerprint"])


def test_lint_with_the_detection_engine(solution):
    """The command runs the real detection engine (scanner/cli/lint.py builds it): nothing leaks either."""
    zpath, settings = solution
    for fmt in ("json", "sarif", "table"):
        r = run(zpath, settings, "--format", fmt)
        assert r.exit_code == 1
        assert_no_secrets(r.output)
