"""The SARIF 2.1.0 builder on its own."""
from __future__ import annotations

import pytest

from scanner.report import sarif
from scanner.posture.rules import RULES


def test_minimal_log_is_valid():
    rules = [sarif.rule_descriptor("FL100", "Secret in run history", "A secret was found.", "Rotate it.",
                                   help_markdown="**Rotate** it.", level="error", name="SecretInRunHistory")]
    res = [sarif.result("FL100", "Secret in 'HTTP' inputs", level="error",
                        uri=sarif.run_uri("Default-1234", "flow-guid", "08586abc"),
                        logical_name="actions.HTTP", fingerprints={"flowleaksSecret/v1": "ab" * 32})]
    log = sarif.sarif_log(rules, res, version="9.9.9")
    assert sarif.validate(log) == []
    r = log["runs"][0]["results"][0]
    assert r["ruleIndex"] == 0
    assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "flowleaks://Default-1234/flows/flow-guid/runs/08586abc"
    assert r["locations"][0]["logicalLocations"][0] == {"fullyQualifiedName": "actions.HTTP", "name": "HTTP",
                                                        "kind": "member"}
    assert log["runs"][0]["tool"]["driver"]["version"] == "9.9.9"
    d = log["runs"][0]["tool"]["driver"]["rules"][0]
    assert d["help"] == {"text": "Rotate it.", "markdown": "**Rotate** it."}


def test_unknown_rule_rejected_and_validate_reports_problems():
    with pytest.raises(ValueError):
        sarif.sarif_log([], [sarif.result("X1", "m", level="error", uri="a.json")])
    bad = {"version": "2.0.0", "runs": [{"tool": {"driver": {"name": "x", "rules": [{"id": "A"}]}},
                                          "results": [{"ruleId": "B", "level": "fatal", "message": {}}]}]}
    problems = sarif.validate(bad)
    assert any("version" in p for p in problems) and any("not in driver rules" in p for p in problems)
    assert any("bad level" in p for p in problems)


def test_posture_rules_as_descriptors():
    log = sarif.sarif_log([sarif.posture_rule_descriptor(r) for r in RULES.values()], [])
    assert sarif.validate(log) == []
    levels = {r["id"]: r["defaultConfiguration"]["level"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert levels["PA001"] == "error" and levels["PA004"] == "warning"


def test_artifact_uri():
    assert sarif.artifact_uri("dir/my flow.json") == "dir/my%20flow.json"
    assert sarif.artifact_uri("/tmp/x.zip") == "file:///tmp/x.zip"
    assert sarif.level_for("high") == "error" and sarif.level_for("low") == "note"
