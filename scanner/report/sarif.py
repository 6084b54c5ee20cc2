"""A small SARIF 2.1.0 builder, shared by `flowleaks lint` and the export command; it also describes
the posture rules (scanner/posture/) as SARIF rules, so posture itself knows nothing of SARIF.

Only what code-scanning consumers need: tool.driver with rules (id, name, short/full description,
help text + markdown, defaultConfiguration.level), results with ruleId/ruleIndex, level, message,
a physical location (file URI; for run findings a relative pseudo-path per flow, see flow_uri; plus a
region when the line is known), logical locations (the action's JSON location, kind `member`) and
partialFingerprints. tests/report/test_sarif.py validates both exports against the official schema.

Nothing here ever receives a secret: callers pass previews and keyed fingerprints only.
"""
from __future__ import annotations

import hashlib
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import quote

from scanner import __version__

if TYPE_CHECKING:
    from scanner.posture.base import PostureRule

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"high": "error", "medium": "warning", "low": "note"}
INFORMATION_URI = "https://github.com/flowleaks/flowleaks"
# GitHub code scanning ranks security alerts by a rule's `security-severity` (a CVSS-like score)
SECURITY_SEVERITY = {"high": "8.0", "medium": "5.0", "low": "3.0"}


def level_for(severity: str) -> str:
    """flowleaks severity (high|medium|low) → SARIF level (error|warning|note)."""
    return LEVELS.get(severity, "warning")


def rule_descriptor(rule_id: str, short: str, full: str = "", help_text: str = "", *,
                    help_markdown: str | None = None, level: str = "warning", name: str | None = None,
                    properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A reportingDescriptor for `runs[0].tool.driver.rules`."""
    d: dict[str, Any] = {
        "id": rule_id,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full or short},
        "help": {"text": help_text or full or short, "markdown": help_markdown or help_text or full or short},
        "defaultConfiguration": {"level": level},
    }
    if name:
        d["name"] = name
    if properties:
        d["properties"] = dict(properties)
    return d


def posture_rule_descriptor(rule: PostureRule) -> dict[str, Any]:
    """A posture rule (scanner/posture/base.py) as a reportingDescriptor. Not rule_descriptor: this one
    adds the remediation to the help and a `security-severity`, and its keys keep the order SARIF files
    written so far have (`name` second), so a re-run's file is the same byte for byte."""
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.help},
        "help": {
            "text": f"{rule.help}\nRemediation: {rule.remediation}",
            "markdown": f"**{rule.title}**\n\n{rule.help}\n\n**Remediation:** {rule.remediation}",
        },
        "defaultConfiguration": {"level": level_for(rule.severity)},
        "properties": {"security-severity": SECURITY_SEVERITY[rule.severity],
                       "tags": ["security", "secrets", "power-automate"]},
    }


def artifact_uri(path: str) -> str:
    """A relative or absolute file path as a SARIF URI (forward slashes, percent-encoded)."""
    p = PurePath(path).as_posix()
    if PurePath(path).is_absolute():
        return "file://" + quote(p)
    return quote(p)


def flow_uri(environment: str, flow_id: str) -> str:
    """The artifact URI of a run-history finding: `flowleaks/<environment>/<flow_id>.json`.

    Code-scanning UIs (GitHub, Azure DevOps) show only results whose location is a relative path
    (a `flowleaks://` URI is dropped or shown without a place); one stable pseudo-file per flow
    groups a flow's findings and survives new runs. The run, action and JSON path go in the
    location's message, not the URI, so the alert's place does not change with every run."""
    return f"flowleaks/{quote(environment or '-', safe='')}/{quote(flow_id or '-', safe='')}.json"


def run_uri(environment: str, flow_id: str, run_id: str | None = None) -> str:
    """The logical URI for a run-history finding: flowleaks://<env>/flows/<flow>[/runs/<run>]."""
    u = f"flowleaks://{quote(environment, safe='')}/flows/{quote(flow_id, safe='')}"
    if run_id:
        u += f"/runs/{quote(run_id, safe='')}"
    return u


def result(rule_id: str, message: str, *, level: str, uri: str, region: Mapping[str, Any] | None = None,
           logical_name: str | None = None, logical_kind: str = "member",
           fingerprints: Mapping[str, str] | None = None,
           properties: Mapping[str, Any] | None = None,
           location_message: str | None = None) -> dict[str, Any]:
    """One SARIF result. `uri` is used as given (see artifact_uri / flow_uri); `location_message`
    says where inside the artifact (run, action, JSON path) when no line can."""
    phys: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if region:
        phys["region"] = dict(region)
    loc: dict[str, Any] = {"physicalLocation": phys}
    if location_message:
        loc["message"] = {"text": location_message}
    if logical_name:
        loc["logicalLocations"] = [{"fullyQualifiedName": logical_name, "name": logical_name.rsplit(".", 1)[-1],
                                    "kind": logical_kind}]
    r: dict[str, Any] = {"ruleId": rule_id, "level": level, "message": {"text": message}, "locations": [loc]}
    if fingerprints:
        r["partialFingerprints"] = dict(fingerprints)
    if properties:
        r["properties"] = dict(properties)
    return r


def location_fingerprint(*parts: str) -> str:
    """A stable fingerprint of a location (rule + file + JSON location): sha256 hex of the parts."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def sarif_log(rules: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]],
              tool_name: str = "flowleaks", version: str = __version__, *,
              information_uri: str | None = INFORMATION_URI,
              invocation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete SARIF log with one run. Results get `ruleIndex` pointing into `rules`; a result
    whose ruleId is not among `rules` raises ValueError (code scanning would reject it)."""
    rules = [dict(r) for r in rules]
    index = {r["id"]: i for i, r in enumerate(rules)}
    out_results = []
    for r in results:
        r = dict(r)
        if r.get("ruleId") not in index:
            raise ValueError(f"result for unknown rule {r.get('ruleId')!r}")
        r["ruleIndex"] = index[r["ruleId"]]
        out_results.append(r)
    driver: dict[str, Any] = {"name": tool_name, "version": version, "semanticVersion": version, "rules": rules}
    if information_uri:
        driver["informationUri"] = information_uri
    run: dict[str, Any] = {"tool": {"driver": driver}, "results": out_results,
                           "columnKind": "unicodeCodePoints"}
    if invocation is not None:
        run["invocations"] = [dict(invocation)]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def validate(log: Mapping[str, Any]) -> list[str]:
    """Structural checks (not the full JSON schema): returns a list of problems, empty when fine."""
    problems: list[str] = []
    if log.get("version") != SARIF_VERSION:
        problems.append("version is not 2.1.0")
    if not str(log.get("$schema", "")).endswith("sarif-schema-2.1.0.json"):
        problems.append("$schema missing or not SARIF 2.1.0")
    runs = log.get("runs")
    if not isinstance(runs, list) or not runs:
        return problems + ["runs missing"]
    for ri, run in enumerate(runs):
        driver = (run.get("tool") or {}).get("driver") or {}
        if not driver.get("name"):
            problems.append(f"runs[{ri}].tool.driver.name missing")
        rules = driver.get("rules") or []
        ids = [r.get("id") for r in rules]
        if len(set(ids)) != len(ids):
            problems.append(f"runs[{ri}] duplicate rule ids")
        for r in rules:
            for k in ("id", "shortDescription", "fullDescription", "help", "defaultConfiguration"):
                if k not in r:
                    problems.append(f"rule {r.get('id')}: {k} missing")
            if r.get("defaultConfiguration", {}).get("level") not in ("error", "warning", "note", "none"):
                problems.append(f"rule {r.get('id')}: bad level")
        for i, res in enumerate(run.get("results") or []):
            where = f"runs[{ri}].results[{i}]"
            if res.get("ruleId") not in ids:
                problems.append(f"{where}: ruleId {res.get('ruleId')!r} not in driver rules")
            elif "ruleIndex" in res and ids[res["ruleIndex"]] != res["ruleId"]:
                problems.append(f"{where}: ruleIndex does not match ruleId")
            if res.get("level") not in ("error", "warning", "note", "none"):
                problems.append(f"{where}: bad level")
            if not (res.get("message") or {}).get("text"):
                problems.append(f"{where}: message.text missing")
            for loc in res.get("locations") or []:
                if "physicalLocation" in loc and not loc["physicalLocation"].get("artifactLocation", {}).get("uri"):
                    problems.append(f"{where}: artifactLocation.uri missing")
                reg = (loc.get("physicalLocation") or {}).get("region")
                if reg is not None and not (isinstance(reg.get("startLine"), int) and reg["startLine"] >= 1):
                    problems.append(f"{where}: region.startLine must be an integer >= 1")
    return problems
