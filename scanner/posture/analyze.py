"""All posture findings of one workflow definition: the definition rules' checks (PA001-PA006, see
rules/), then the detection engine's hits on its literal strings (PA005)."""
from __future__ import annotations

from typing import Any

from scanner.posture import model
from scanner.posture.base import SEVERITY_RANK, PostureFinding
from scanner.posture.rules import PA005, RULES
from scanner.posture.taint import analysis


def analyze_definition(definition: dict, *, flow_name: str = "", engine: Any,
                       key: bytes = b"") -> list[PostureFinding]:
    """All posture findings (PA001–PA006) of one workflow definition.

    `definition` may be bare (`{triggers, actions}`) or wrapped (`{properties:{definition}}`). Parts
    that are not of the documented shape (see scanner/posture/model.py, whose `problems()` lists them) are
    ignored, so an odd definition never raises; ValueError only for a document that is no definition
    at all (no triggers/actions).
    `engine`: a detectors.engine.Engine for generic detector hits on literal strings (PA005), or None
    for the rules' own literal checks alone; the caller builds it (posture has no engine of its own).
    `key`: the fingerprint key for literal credentials (findings carry preview + HMAC only).
    """
    d = model.definition_of(definition)
    if d is None:
        raise ValueError("not a workflow definition (no triggers/actions)")
    m = analysis(d)
    findings: list[PostureFinding] = []
    for rule in RULES.values():
        if rule.check is not None:
            findings.extend(rule.check(m, flow_name, key))
    if engine is not None:
        findings.extend(PA005.detector_findings(m, engine, findings, flow=flow_name, key=key))
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.rule_id, f.json_path))
    return findings
