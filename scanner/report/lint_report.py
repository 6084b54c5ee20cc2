"""`flowleaks lint`'s report as a person or a tool reads it: JSON, SARIF 2.1.0, or a table with a count
line, on stdout or in a private file. The linting that makes the report (reading files, zips and
folders; the exit status) is scanner/posture/lint.py; the command is scanner/cli/lint.py.

Nothing here sees a secret value: a finding carries a preview (`Pr0d…(32)`) and a keyed fingerprint only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from scanner import __version__
from scanner.errors import InputError
from scanner.posture.lint import LintReport
from scanner.posture.rules import RULES
from scanner.private import open_private
from scanner.report import sarif


def to_json(report: LintReport) -> dict[str, Any]:
    """The report as `--format json` writes it: a summary of counts, the findings, the input errors."""
    return {"tool": "flowleaks", "version": __version__, "command": "lint",
            "summary": {**report.counts(), "files": report.files, "flows": report.flows,
                        "errors": len(report.errors)},
            "findings": [r.to_dict() for r in report.results], "errors": list(report.errors)}


def to_sarif(report: LintReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log for code scanning; input errors are tool execution notifications,
    so an incomplete lint does not upload as a clean one."""
    rules = [sarif.posture_rule_descriptor(RULES[rid]) for rid in RULES]  # all rules, so ids are stable
    results = []
    for r in report.results:
        f = r.finding
        msg = f"{f.message}. {f.remediation}."
        if f.preview:
            msg += f" (value {f.preview})"
        fps = {"flowleaksLocation/v1": sarif.location_fingerprint(f.rule_id, r.display, f.json_path)}
        if f.fingerprint:
            fps["flowleaksSecret/v1"] = f.fingerprint
        props: dict[str, Any] = {"severity": f.severity, "remediation": f.remediation, "jsonPath": f.json_path}
        if f.flow:
            props["flow"] = f.flow
        if r.member:
            props["member"] = r.member
        if f.preview:
            props["preview"] = f.preview
        if f.sources:
            props["sources"] = list(f.sources)
        # the file and the line of the action, which code scanning shows; a zip member has no line a
        # dashboard could show (the lines are the member's), so the member goes in the message
        region = {"startLine": r.line} if (r.line and not r.member) else None
        where = ", ".join(p for p in (r.member and f"in {r.member}", f.action and f"action '{f.action}'",
                                      f.json_path and f"at {f.json_path}") if p)
        results.append(sarif.result(f.rule_id, msg, level=sarif.level_for(f.severity), uri=sarif.artifact_uri(r.path),
                                    region=region, logical_name=f.logical_name or f.action,
                                    fingerprints=fps, properties=props, location_message=where or None))
    inv = {"executionSuccessful": not report.errors}
    if report.errors:
        inv["toolExecutionNotifications"] = [{"level": "error", "message": {"text": e}} for e in report.errors]
    return sarif.sarif_log(rules, results, invocation=inv)


def write_table(report: LintReport, out: IO[str]) -> None:
    """The report as a table and a count line (what `flowleaks lint` prints by default)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=max(100, min(200, _term_width())), highlight=False,
                      force_terminal=out.isatty() if hasattr(out, "isatty") else False)
    if report.results:
        t = Table(show_lines=False, expand=False)
        for col in ("Severity", "Rule", "Where", "Action", "Message", "Fix", "Value"):
            t.add_column(col, overflow="fold")
        for r in report.results:
            f = r.finding
            where = r.display + (f":{r.line}" if r.line else "")
            t.add_row(f.severity, f.rule_id, where, f.action, f.message, f.remediation, f.preview or "")
        console.print(t)
    summary = _summary_line(report)
    if summary:
        console.print(summary, markup=False)


def _summary_line(report: LintReport) -> str | None:
    """The count line, or None when every input failed: then the errors on stderr are the whole story,
    and a "0 finding(s)" line would read as a clean lint that never ran."""
    if report.errors and not (report.results or report.flows):
        return None
    c = report.counts()
    line = (f"{len(report.results)} finding(s): {c['high']} high, {c['medium']} medium, {c['low']} low "
            f"in {report.flows} flow(s), {report.files} input(s)")
    if report.errors:
        line += f"; INCOMPLETE: {len(report.errors)} input error(s), see stderr"
    return line


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 160


def write_report(output: Path, report: LintReport, text: str | None) -> None:
    """The report (`text`, or the table when None) to a file created private (scanner/private.py).
    A file that cannot be opened is an InputError in click's words for it (exit 2, never "findings")."""
    try:
        fh = open_private(output, "w")
    except OSError as e:
        raise InputError(f"Could not open file {str(output)!r}: {e.strerror or type(e).__name__}") from None
    with fh:
        if text is None:
            write_table(report, fh)
        else:
            fh.write(text)
