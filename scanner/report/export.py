"""`flowleaks export`: findings as JSON Lines, CSV, Parquet (DuckDB COPY) or SARIF 2.1.0.

Exported columns are an explicit list of redacted fields (preview, keyed fingerprint, location,
rule, lifecycle); no column that could hold a value is ever selected. Files are mode 0600 from
creation, through scanner.private (also when the file existed, and when DuckDB writes it).
"""
from __future__ import annotations

import json
from typing import Any

import click
import duckdb

# The one private-file writer of the project: COPY output and SARIF alike are 0600 from creation.
from scanner.private import private_output as private_file
from scanner.private import check_output_path, write_private_text
from scanner.store.query import CommandError, _one_line, _sql_literal, connect_read_only, db_option

EXPORT_FORMATS = ("jsonl", "csv", "sarif", "parquet")
STATUS_FILTERS = {
    "unresolved": "f.status IN ('open', 'suppressed')",
    "open": "f.status = 'open'",
    "all": "TRUE",
}

# The only columns an export ever carries (all redacted by construction).
EXPORT_SELECT = """
SELECT f.finding_id, f.status, f.environment, e.display_name AS environment_name,
       f.flow_id, fl.display_name AS flow_name, fl.creator,
       f.run_id, coalesce(r.start_time, f.run_start) AS run_start,
       f.action, f.repetition, f.side, f.json_path, f.decoding, f.file,
       f.rule_id, f.detector, f.confidence, f.severity,
       f.preview, f.secret_length, f.fingerprint, f.visible, f.known_secret,
       f.message, f.cause, f.remediation,
       f.first_seen, f.last_seen, f.first_scan_id, f.scan_id AS last_scan_id,
       (SELECT s.reason FROM suppressions s
         WHERE (s.fingerprint = f.fingerprint OR s.fingerprint = f.finding_id)
           AND (s.rule_id IS NULL OR s.rule_id = f.rule_id)
         ORDER BY (s.expires_at IS NULL OR s.expires_at > {now}) DESC, s.created_at DESC
         LIMIT 1) AS suppression_reason
FROM findings f
LEFT JOIN flows fl ON fl.environment = f.environment AND fl.flow_id = f.flow_id
LEFT JOIN environments e ON e.environment = f.environment
LEFT JOIN runs r ON r.environment = f.environment AND r.flow_id = f.flow_id AND r.run_id = f.run_id
WHERE {where}
ORDER BY f.environment, f.flow_id, f.run_id NULLS FIRST, f.action, f.side, f.json_path, f.rule_id, f.finding_id
"""


def export_sql(status: str) -> str:
    from scanner.store.database import utcnow

    # a literal, not a parameter: COPY takes no parameters; naive UTC like every stored timestamp
    now = "TIMESTAMP '" + utcnow().isoformat(sep=" ") + "'"
    return EXPORT_SELECT.format(where=STATUS_FILTERS[status], now=now)


def copy_findings(con: duckdb.DuckDBPyConnection, fmt: str, out: str, status: str = "unresolved") -> int:
    """jsonl / csv / parquet through DuckDB's COPY; returns the number of rows written."""
    options = {"jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER true",
               "parquet": "FORMAT parquet, COMPRESSION zstd"}[fmt]
    sql = export_sql(status)
    with private_file(out):
        res = con.execute(f"COPY ({sql}) TO {_sql_literal(out)} ({options})").fetchall()
    return int(res[0][0]) if res and res[0][0] is not None else 0


# -- SARIF ------------------------------------------------------------------------------------------

_RANK = {"high": 3, "medium": 2, "low": 1}


def _level(severity: str | None, confidence: str | None) -> str:
    from scanner.report.sarif import level_for

    return level_for((severity or confidence or "medium").lower())


def _known_rule_descriptors() -> dict[str, dict[str, Any]]:
    """Descriptions of our own rules when their modules load; export works without them."""
    out: dict[str, dict[str, Any]] = {}
    try:
        from scanner.posture import RULES as POSTURE_RULES

        for rid, r in POSTURE_RULES.items():
            out[rid] = r.to_sarif()
    except Exception:  # noqa: BLE001 - descriptions are optional
        pass
    try:
        from detectors.powerplatform import rules as pp_rules

        from scanner.report.sarif import rule_descriptor

        for r in pp_rules():
            out.setdefault(r.id, rule_descriptor(
                r.id, r.description, r.description, r.description,
                level={"high": "error", "medium": "warning", "low": "note"}.get(r.confidence, "warning"),
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
    from scanner.report.sarif import artifact_uri, flow_uri, rule_descriptor, sarif_log
    from scanner.report.sarif import result as sarif_result

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


def export_sarif(con: duckdb.DuckDBPyConnection, out: str, status: str = "unresolved") -> int:
    rel = con.sql(export_sql(status))
    cols = rel.columns
    rows = [dict(zip(cols, r)) for r in rel.fetchall()]
    log = sarif_from_rows(rows)
    write_private_text(out, json.dumps(log, indent=2, default=str, ensure_ascii=False) + "\n")
    return len(rows)


def export_findings(con: duckdb.DuckDBPyConnection, fmt: str, out: str, status: str = "unresolved") -> int:
    if fmt == "sarif":
        return export_sarif(con, out, status)
    return copy_findings(con, fmt, out, status)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="jsonl (one finding per line), csv, parquet, or sarif (2.1.0, for code-scanning dashboards).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write (created mode 0600, missing folders too; replaced if it exists).")
@click.option("--status", type=click.Choice(tuple(STATUS_FILTERS)), default="unresolved", show_default=True,
              help="unresolved = open + suppressed (with a status column), open, or all (resolved too).")
@db_option
def export_command(fmt: str, out: str, status: str, db: str) -> None:
    """Export findings: previews, keyed fingerprints and locations only (never a secret value).

    \b
    Examples:
      flowleaks export --format sarif --out flowleaks.sarif
      flowleaks export --format parquet --status all --out findings.parquet
    """
    check_output_path(out, "--out")  # missing folders are created, as for every output path
    con = connect_read_only(db)
    try:
        try:
            n = export_findings(con, fmt, out, status)
        except duckdb.Error as exc:
            raise CommandError(f"export failed: {_one_line(exc)}") from None
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        con.close()
    click.echo(f"exported {n} finding{'s' if n != 1 else ''} ({status}) to {out} as {fmt}", err=True)
