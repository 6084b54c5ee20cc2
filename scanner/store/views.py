"""Analyst views over the store (created with the schema; plain SQL so users can read them).

Every view works on an empty database and tolerates NULL in the optional columns (a posture
finding has no run, a flow may have no connectors, a scan that died has no finished_at).
Views only ever expose what the tables hold: previews and keyed fingerprints, never a value.

    open_findings        open findings with flow name / creator and the run's start time
    findings_by_flow     per environment + flow: counts, rules, visibility, causes, remediation
    exposure             per secret fingerprint: where and when it appeared
    coverage             per scan: planned vs scanned, content, HTTP, skipped (total and by reason)
    skipped_by_reason    per scan + reason: what was not scanned
    filtered_by_rule     per scan + rule + filter: candidates dropped by a filter
    connectors_involved  connectors used by flows with open findings
"""
from __future__ import annotations

import duckdb

from scanner.skip_reasons import sql_list

# Skip reasons that do not make a scan incomplete (scanner/skip_reasons.py).
_NON_BLOCKING = sql_list()

VIEWS: dict[str, str] = {
    "open_findings": """
SELECT f.finding_id, f.scan_id, f.environment, e.display_name AS environment_name,
       f.flow_id, fl.display_name AS flow_name, fl.creator, fl.state AS flow_state,
       f.run_id, coalesce(r.start_time, f.run_start) AS run_start_time, r.status AS run_status,
       f.action, f.repetition, f.side, f.json_path, f.rule_id, f.detector, f.confidence, f.severity,
       f.preview, f.secret_length, f.fingerprint, f.visible, f.known_secret, f.decoding,
       f.message, f.cause, f.remediation, f.first_seen, f.last_seen, f.first_scan_id, f.status
FROM findings f
LEFT JOIN flows fl ON fl.environment = f.environment AND fl.flow_id = f.flow_id
LEFT JOIN environments e ON e.environment = f.environment
LEFT JOIN runs r ON r.environment = f.environment AND r.flow_id = f.flow_id AND r.run_id = f.run_id
WHERE f.status = 'open'
ORDER BY f.last_seen DESC, f.environment, f.flow_id, f.run_id, f.action, f.finding_id
""",
    "findings_by_flow": """
SELECT f.environment, any_value(e.display_name) AS environment_name,
       f.flow_id, any_value(fl.display_name) AS flow_name, any_value(fl.creator) AS creator,
       any_value(fl.state) AS flow_state,
       count(*) FILTER (WHERE f.status = 'open') AS open_findings,
       count(*) FILTER (WHERE f.status = 'open' AND f.run_id IS NOT NULL) AS open_run_findings,
       count(*) FILTER (WHERE f.status = 'open' AND f.detector = 'posture') AS open_posture_findings,
       count(*) FILTER (WHERE f.status = 'suppressed') AS suppressed_findings,
       count(*) FILTER (WHERE f.status = 'resolved') AS resolved_findings,
       count(DISTINCT f.fingerprint) FILTER (WHERE f.status = 'open') AS distinct_secrets,
       count(DISTINCT f.run_id) FILTER (WHERE f.status = 'open') AS runs_affected,
       coalesce(list_sort(list(DISTINCT f.rule_id) FILTER (WHERE f.status = 'open' AND f.rule_id IS NOT NULL)),
                []::VARCHAR[]) AS rules,
       coalesce(bool_or(f.visible) FILTER (WHERE f.status = 'open'), false) AS visible,
       coalesce(list_sort(list(DISTINCT f.cause) FILTER (WHERE f.status = 'open' AND f.cause IS NOT NULL)),
                []::VARCHAR[]) AS causes,
       coalesce(list_sort(list(DISTINCT f.remediation)
                          FILTER (WHERE f.status = 'open' AND f.remediation IS NOT NULL)),
                []::VARCHAR[]) AS remediation,
       min(f.first_seen) AS first_seen, max(f.last_seen) AS last_seen
FROM findings f
LEFT JOIN flows fl ON fl.environment = f.environment AND fl.flow_id = f.flow_id
LEFT JOIN environments e ON e.environment = f.environment
GROUP BY f.environment, f.flow_id
ORDER BY open_findings DESC, distinct_secrets DESC, f.environment, f.flow_id
""",
    "exposure": """
SELECT f.fingerprint, min(f.preview) AS preview,
       list_sort(list(DISTINCT f.rule_id) FILTER (WHERE f.rule_id IS NOT NULL)) AS rules,
       string_agg(DISTINCT f.known_secret, ', ') FILTER (WHERE f.known_secret IS NOT NULL) AS known_secret,
       count(DISTINCT f.environment) AS environments,
       count(DISTINCT f.environment || '/' || f.flow_id) AS flows,
       count(DISTINCT f.environment || '/' || f.flow_id || '/' || f.run_id) AS runs,
       count(*) AS occurrences,
       count(*) FILTER (WHERE f.status = 'open') AS open_occurrences,
       count(*) FILTER (WHERE f.visible) AS visible_occurrences,
       min(f.first_seen) AS first_seen, max(f.last_seen) AS last_seen,
       min(f.run_start) AS first_run_start, max(f.run_start) AS last_run_start,
       list_sort(list(DISTINCT coalesce(fl.display_name, f.flow_id)) FILTER (WHERE f.flow_id IS NOT NULL))
           AS flow_names
FROM findings f
LEFT JOIN flows fl ON fl.environment = f.environment AND fl.flow_id = f.flow_id
WHERE f.fingerprint IS NOT NULL
GROUP BY f.fingerprint
ORDER BY open_occurrences DESC, occurrences DESC, f.fingerprint
""",
    "coverage": f"""
WITH sk AS (
  SELECT scan_id, coalesce(reason, 'unknown') AS reason, count(*) AS n FROM skipped GROUP BY ALL
), skm AS (
  SELECT scan_id, sum(n)::BIGINT AS skipped_total,
         sum(n) FILTER (WHERE reason NOT IN {_NON_BLOCKING})::BIGINT AS skipped_blocking,
         map_from_entries(list(struct_pack(k := reason, v := n) ORDER BY n DESC, reason)) AS skipped_by_reason
  FROM sk GROUP BY scan_id
), fi AS (
  SELECT first_scan_id AS scan_id, count(*) AS new_findings FROM findings GROUP BY ALL
), flt AS (
  SELECT scan_id, count(*) AS filtered FROM filtered GROUP BY ALL
)
SELECT s.scan_id, s.kind, s.status, coalesce(s.complete, false) AS complete,
       s.started_at, s.finished_at, date_diff('second', s.started_at, s.finished_at) AS duration_s,
       s.environments_planned, s.environments_scanned, s.flows_planned, s.flows_scanned,
       s.runs_planned, s.runs_scanned, s.content_fetched, s.content_reused, s.bytes_downloaded,
       s.requests, s.throttled, s.retries, s.findings AS findings_seen,
       coalesce(fi.new_findings, 0) AS new_findings, coalesce(flt.filtered, 0) AS filtered,
       coalesce(skm.skipped_total, 0) AS skipped_total,
       coalesce(skm.skipped_blocking, 0) AS skipped_blocking,
       coalesce(skm.skipped_by_reason, MAP {{}}::MAP(VARCHAR, BIGINT)) AS skipped_by_reason,
       s.error
FROM scans s
LEFT JOIN skm USING (scan_id)
LEFT JOIN fi USING (scan_id)
LEFT JOIN flt USING (scan_id)
ORDER BY s.started_at DESC NULLS LAST, s.scan_id DESC
""",
    "skipped_by_reason": f"""
SELECT k.scan_id, s.started_at AS scan_started_at, coalesce(k.reason, 'unknown') AS reason,
       coalesce(k.reason, 'unknown') NOT IN {_NON_BLOCKING} AS blocking,
       count(*) AS skipped,
       count(DISTINCT k.environment) AS environments,
       count(DISTINCT k.environment || '/' || k.flow_id) AS flows,
       count(DISTINCT k.environment || '/' || k.flow_id || '/' || k.run_id) AS runs,
       list_sort(list(DISTINCT k.side) FILTER (WHERE k.side IS NOT NULL)) AS sides,
       min(k.detail) AS example_detail
FROM skipped k
LEFT JOIN scans s USING (scan_id)
GROUP BY k.scan_id, s.started_at, coalesce(k.reason, 'unknown')
ORDER BY s.started_at DESC NULLS LAST, k.scan_id DESC, skipped DESC, reason
""",
    "filtered_by_rule": """
SELECT x.scan_id, s.started_at AS scan_started_at, x.rule_id, coalesce(x.filter, 'unknown') AS filter,
       count(*) AS dropped,
       count(DISTINCT x.environment || '/' || x.flow_id) AS flows,
       count(DISTINCT x.environment || '/' || x.flow_id || '/' || x.run_id) AS runs
FROM filtered x
LEFT JOIN scans s USING (scan_id)
GROUP BY x.scan_id, s.started_at, x.rule_id, coalesce(x.filter, 'unknown')
ORDER BY s.started_at DESC NULLS LAST, x.scan_id DESC, dropped DESC, x.rule_id, filter
""",
    "connectors_involved": """
WITH per_flow AS (
  SELECT environment, flow_id, count(*) AS open_findings, count(DISTINCT fingerprint) AS secrets,
         bool_or(coalesce(visible, false)) AS visible
  FROM findings WHERE status = 'open' GROUP BY ALL
), fc AS (
  SELECT p.*, unnest(fl.connectors) AS connector
  FROM per_flow p JOIN flows fl ON fl.environment = p.environment AND fl.flow_id = p.flow_id
)
SELECT connector,
       count(DISTINCT environment) AS environments,
       count(*) AS flows_with_open_findings,
       sum(open_findings)::BIGINT AS open_findings,
       sum(secrets)::BIGINT AS secrets_in_those_flows,
       count(*) FILTER (WHERE visible) AS flows_with_visible_findings
FROM fc
WHERE connector IS NOT NULL
GROUP BY connector
ORDER BY flows_with_open_findings DESC, open_findings DESC, connector
""",
}


def create_views(con: duckdb.DuckDBPyConnection, temporary: bool = False) -> None:
    kind = "TEMP VIEW" if temporary else "VIEW"
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE {kind} {name} AS {sql}")


def ensure_views(con: duckdb.DuckDBPyConnection) -> None:
    """For a read-only connection: add any missing view as a TEMP view (a database written by an
    older flowleaks may lack some); a view that cannot be built on an old schema is left out."""
    have = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    for name, sql in VIEWS.items():
        if name in have:
            continue
        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        except duckdb.Error:
            pass
