"""`flowleaks export`: findings as JSON Lines, CSV, Parquet or SARIF 2.1.0.

The findings and their columns are scanner/store/export.py (SQL; JSON Lines, CSV and Parquet written
there by DuckDB's COPY); this module shapes SARIF from the same rows. Every file is mode 0600 from
creation, through scanner.private. The command is scanner/cli/export.py.
"""
from __future__ import annotations

import json
from typing import Any

from scanner.private import write_private_text
from scanner.report.sarif import artifact_uri, flow_uri, level_for, posture_rule_descriptor, rule_descriptor, sarif_log
from scanner.report.sarif import result as sarif_result
from scanner.store.export import copy_findings, export_rows
from scanner.store.query import Connection

EXPORT_FORMATS = ("jsonl", "csv", "sarif", "parquet")


def _level(severity: str | None, confidence: str | None) -> str:
    return level_for((severity or confidence or "medium").lower())


def _known_rule_descriptors() -> dict[str, dict[str, Any]]:
    """Descriptions of our own rules when their modules load; export works without them."""
    out: dict[str, dict[str, Any]] = {}
    try:
        from scanner.posture.rules import RULES as POSTURE_RULES

        for rid, r in POSTURE_RULES.items():
            out[rid] = posture_rule_descriptor(r)
    except Exception:  # noqa: BLE001 - descriptions are optional
        pass
    try:
        from detectors.powerplatform import rules as pp_rules

        for r in pp_rules():
            out.setdefault(r.id, rule_descriptor(
                r.id, r.description, r.description, r.description, level=level_for(r.confidence),
                properties={"tags": ["security", "secrets", "power-automate"], "detector": r.kind}))
    except Exception:  # noqa: BLE001
        pass
    return out


def _where(row: dict[str, Any]) -> str:
    flow = row.get("flow_name") or row.get("flow_id")
    parts = [f"file '{row['file']}'"] if row.get("file") else []
    if flow or not parts:
        parts.append(f"flow '{flow or '?'}'")
    if row.get("run_id"):
        parts.append(f"run {row['run_id']}")
    if row.get("action"):
        a = f"action '{row['action']}'"
        if row.get("repetition"):
            a += f" repetition {row['repetition']}"
        parts.append(a)
    if row.get("side"):
        parts.append(str(row["side"]))
    if row.get("json_path"):
        parts.append(f"at {row['json_path']}")
    text = ", ".join(parts)
    env = row.get("environment_name") or row.get("environment")
    return f"{text} (environment {env})" if env else text


def sarif_from_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    known = _known_rule_descriptors()
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for row in rows:
        rid = row["rule_id"] or "unknown"
        lvl = _level(row.get("severity"), row.get("confidence"))
        if rid not in rules:
            if rid in known:
                rules[rid] = known[rid]
            else:
                det = row.get("detector") or "pattern"
                text = f"Secret matched by flowleaks rule {rid} ({det} detector) in Power Automate run history"
                if det == "posture":
                    text = f"Flow definition issue {rid} (posture)"
                rules[rid] = rule_descriptor(rid, text, text, text, level=lvl,
                                             properties={"tags": ["security", "secrets", "power-automate"],
                                                         "detector": det})
        if row.get("preview"):
            what = "known secret" if row.get("detector") == "known_value" else "secret"
            if row.get("known_secret"):
                what += f" {row['known_secret']}"
            msg = f"{rid}: {what} {row['preview']} in {_where(row)}."
            if row.get("message"):
                msg += f" {row['message'].rstrip('.')}."
        else:
            msg = f"{rid}: {row.get('message') or 'finding'} in {_where(row)}."
        if row.get("remediation"):
            msg += f" Remediation: {row['remediation']}"
        # a scan-files finding is in a file; a run-history or posture one in its flow's stable
        # pseudo-file (dashboards drop non-relative URIs), with run, action and path in the message;
        # line 1 because code scanning places an alert by region.startLine
        if row.get("file"):
            uri, region = artifact_uri(row["file"]), None
        else:
            uri, region = flow_uri(row.get("environment") or "-", row.get("flow_id") or "-"), {"startLine": 1}
        res = sarif_result(rid, " ".join(msg.split()), level=lvl, uri=uri, region=region,
                           location_message=_where(row),
                           fingerprints={"flowleaks/v1": row["fingerprint"]} if row.get("fingerprint") else None,
                           properties={k: (str(v) if v is not None and not isinstance(v, (bool, int)) else v)
                                       for k, v in row.items()
                                       if k in ("finding_id", "status", "detector", "confidence", "severity",
                                                "preview", "secret_length", "visible", "side", "json_path",
                                                "first_seen", "last_seen", "run_start", "creator", "cause")
                                       and v is not None})
        segs = [row.get("environment"), row.get("flow_id"), row.get("run_id"), row.get("action")]
        fqn = "/".join(str(s) for s in segs if s)
        if fqn:
            res["locations"][0]["logicalLocations"] = [
                {"fullyQualifiedName": fqn, "name": str(row.get("action") or row.get("flow_id")),
                 "kind": "member" if row.get("action") else "module"}]
        if row.get("status") == "suppressed":
            res["suppressions"] = [{"kind": "external", "status": "accepted",
                                    "justification": row.get("suppression_reason") or "suppressed in flowleaks"}]
        results.append(res)
    return sarif_log(list(rules.values()), results)


def export_sarif(con: Connection, out: str, status: str = "unresolved") -> int:
    rows = export_rows(con, status)
    log = sarif_from_rows(rows)
    write_private_text(out, json.dumps(log, indent=2, default=str, ensure_ascii=False) + "\n")
    return len(rows)


def export_findings(con: Connection, fmt: str, out: str, status: str = "unresolved") -> int:
    """Write the findings of `status` to `out` in `fmt`; returns how many. InputError when the database
    cannot give them (exit 2), OSError when `out` cannot be written."""
    if fmt == "sarif":
        return export_sarif(con, out, status)
    return copy_findings(con, fmt, out, status)
