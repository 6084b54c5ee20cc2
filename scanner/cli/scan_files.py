"""`flowleaks scan-files PATH…`: the command (its options, the progress bar, the summary, the exit
status); the scanning itself is scanner/files/ (scan.py runs it), what it shows is
scanner/report/files_summary.py."""
from __future__ import annotations

from typing import Any

import click

from scanner.cli.options import (db_and_vault_options, jobs_option, known_sources_from, known_value_options,
                                 output_options, settings_with_defaults)
from scanner.cli.rules import load_rules, rules_options
from scanner.files.scan import run_files
from scanner.report.files_summary import FilesProgress, print_files_summary, write_files_summary_json


@click.command("scan-files")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@jobs_option("files are scanned in parallel, a group of files each")
@click.option("--max-mb", type=click.IntRange(1, 1 << 20), default=64, show_default=True,
              envvar="FLOWLEAKS_MAX_MB", show_envvar=True, help="Largest file (decompressed), or JSON Lines line, read; a bigger one is recorded as 'too large'.")
@db_and_vault_options
@known_value_options
@output_options
@rules_options
def scan_files_command(paths: tuple[str, ...], jobs: int, max_mb: int, **kw: Any) -> None:
    """Scan exported payloads for secrets: files and directories (recursively); JSON, JSON Lines,
    .json.gz/.jsonl.gz, anything else as text. Findings land in the database like a sweep's
    (`file` names the file, `json_path` the place in it), for `flowleaks query` and `export`.

    Recognised and attributed (environment, flow, run, action, side): `m365 flow run get
    --withActions [--withTrigger]` output, run and action objects from the Flow/Logic Apps APIs,
    content-link bodies (side from the file name, e.g. ActionOutputs.json), flow definitions
    (side `definition`). Anything else gets side `file`.

    \b
    Examples:
      m365 flow run get -e Default-<tenant> --flowName <flow> -n <run> --withActions > run.json
      flowleaks scan-files run.json
      flowleaks scan-files exports/ tickets/attachment.txt --db ir.duckdb
      printf '%s\\n' "$LEAKED_KEY" | flowleaks scan-files --known-values-stdin history.jsonl.gz

    Exit status: 0 clean, 1 open findings, 2 usage error, 3 something could not be scanned (and
    nothing was found), 4 unexpected error.
    """
    settings = settings_with_defaults(kw)
    settings.custom_rules = load_rules(kw)
    known = known_sources_from(kw)
    progress = FilesProgress(enabled=not kw.pop("quiet", False))
    outcome = run_files(settings, paths, jobs, max_mb, known, progress=progress)
    print_files_summary(settings.db, outcome)
    summary_path = kw.pop("summary_json", None)
    if summary_path:
        write_files_summary_json(summary_path, outcome)
    click.get_current_context().exit(outcome.exit_code)
