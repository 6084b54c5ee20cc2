"""`flowleaks lint PATH…`: the command. The linting itself (reading files, zips and folders, the
report and its exit status) is scanner/posture/lint.py, the report's formats scanner/report/lint_report.py;
this module parses the options, builds the detection engine, prints the report and its errors, and
exits with the report's status.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from scanner.posture.lint import exit_code, lint_paths
from scanner.report.lint_report import to_json, to_sarif, write_report, write_table


@click.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--fail-on", type=click.Choice(["high", "medium", "low", "never"]), default="high",
              show_default=True, help="Exit 1 when a finding is at or above this severity.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE instead of stdout.")
def lint_command(paths: tuple[Path, ...], fail_on: str, fmt: str, output: Path | None) -> None:
    """Check flow definitions, flow packages, solutions and deployment settings for settings that
    leak secrets into run history (rules PA001-PA007), without calling any API.

    PATH can be a definition JSON (bare, {properties:{definition}} or an ARM export), a flow package
    or solution .zip, an unpacked solution directory, a deployment settings JSON or an
    environmentvariabledefinition.xml.

    Exit status: 0 no finding at/above --fail-on, 1 findings at/above it, 2 usage error or unreadable
    input. Secret values are never printed: literal credentials show as a short preview.
    """
    from detectors.engine import Engine  # when the command runs: `flowleaks --help` loads no detectors

    report = lint_paths(list(paths), engine=Engine(known=None))
    if fmt == "json":
        text = json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "sarif":
        text = json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
    else:
        text = None
    if output is not None:
        write_report(output, report, text)  # an InputError (exit 2) when the file cannot be opened
    elif text is None:
        write_table(report, sys.stdout)
    else:
        click.echo(text, nl=False)
    for e in report.errors:
        click.echo(f"flowleaks lint: {e}", err=True)
    click.get_current_context().exit(exit_code(report, fail_on))
