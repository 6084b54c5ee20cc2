"""`flowleaks` command line. Exit codes: 0 complete and clean, 1 open findings, 2 usage error,
3 incomplete (something planned was not scanned), 4 unexpected error."""
from __future__ import annotations

import logging
import sys

import click

from . import __version__
from .config import (connection_options, output_options, dataverse_options, known_value_options, scope_options, settings_from,
                     window)
from .crawl import CrawlOptions
from .sweep import EXIT_ERROR, KnownSources, read_stdin_lines, run_scan, write_summary_json


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flowleaks")
@click.option("-v", "--verbose", count=True, help="More log detail on stderr (never secrets or tokens).")
def cli(verbose: int) -> None:
    """Find secrets leaked into Microsoft Power Automate run history.

    Start with `flowleaks sweep` (incident response over a time window) or `flowleaks scan` (the
    incremental nightly job); findings land in DuckDB for `flowleaks query`.
    """
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@connection_options
@scope_options
@known_value_options
@dataverse_options
@output_options
def sweep(**kw) -> None:
    """Scan every run in a time window (default: the 30-day retention window) for secrets.

    \b
    Example:
      FLOWLEAKS_ACCESS_TOKEN=... flowleaks sweep --as-admin --days 7 --env Default-<tenant>
    """
    settings = settings_from(kw)
    since, until = window(kw.pop("since"), kw.pop("until"), kw.pop("days"))
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), since=since,
                           until=until, status=kw.pop("status"), kind="sweep")
    _run(settings, options, kw, params={"since": since, "until": until, "status": options.status,
                                        "environments": options.environments, "flows": options.flows,
                                        "as_admin": settings.as_admin, "cloud": settings.cloud.name})


@cli.command()
@connection_options
@scope_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Cassette file to write (VCR.py-style YAML).")
@click.option("--keep-secrets", is_flag=True, hidden=True,
              help="Do not scrub detected secrets (only for cassettes recorded from a fake tenant).")
@click.option("--map-origin", multiple=True, hidden=True,
              help="OLD=NEW origin rewrite applied to the cassette (fake hosts -> real host names).")
def record(**kw) -> None:
    """Record a sweep's API interactions as a scrubbed cassette, for bug reports and the demo.

    Authorization headers are never written, SAS `sig` values are replaced, and every secret the
    detectors find in a body is replaced by a marker with its redacted preview.

    \b
    Example:
      flowleaks record --env Default-<tenant> --flow <flow-id> --days 2 --out repro.yaml
    """
    import os
    import tempfile

    import httpx

    from detectors.engine import Engine
    from detectors.known_values import KnownValues

    from .cassette import RecordingTransport, leaf_scrubber

    settings = settings_from(kw)
    since, until = window(kw.pop("since"), kw.pop("until"), kw.pop("days"))
    keep = kw.pop("keep_secrets")
    # Every secret the sweep finds is remembered as keyed hashes of its encodings (never plaintext),
    # so the cassette can be scrubbed of it wherever and however it appears.
    found = KnownValues(key=os.urandom(32))
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), since=since,
                           until=until, status=kw.pop("status"), kind="record",
                           secret_sink=None if keep else (lambda secret: found.add_value(secret, "found")))
    origin_map = dict(m.split("=", 1) for m in kw.pop("map_origin"))
    recorder = RecordingTransport(httpx.AsyncHTTPTransport(), origin_map)

    with tempfile.TemporaryDirectory() as tmp:
        settings.db = f"{tmp}/record.duckdb"
        outcome = run_scan(settings, options, None, params={"record": True}, transport=lambda engine: recorder)
    if keep:
        cassette = recorder.cassette(None)
    else:
        engine = Engine(known=found)
        with engine.session():
            cassette = recorder.cassette(leaf_scrubber(engine))
    cassette.save(kw.pop("out"))
    click.echo(f"recorded {len(cassette.interactions)} interactions "
               f"({outcome.stats.runs_scanned} runs, complete={outcome.complete})", err=True)


@cli.command()
@connection_options
@click.option("--env", "environments", multiple=True, help="Only these environments (default: all).")
@click.option("--flow", "flows", multiple=True, help="Only these flows (id or display name).")
@known_value_options
@dataverse_options
@output_options
def scan(**kw) -> None:
    """The nightly job: only runs newer than the last scan (per-flow watermark), resumable.

    Runs still Running last time are read again; content already scanned (same md5 contentHash and
    size) is not downloaded again; a flow's watermark moves only when the flow was fully scanned.

    \b
    Example (cron, 02:30 every night):
      30 2 * * *  flowleaks scan --as-admin --db /var/lib/flowleaks/tenant.duckdb --summary-json /var/log/flowleaks.json
    """
    settings = settings_from(kw)
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), kind="scan",
                           incremental=True, reuse_content=True)
    _run(settings, options, kw, params={"environments": options.environments, "flows": options.flows,
                                        "as_admin": settings.as_admin, "cloud": settings.cloud.name})


def _run(settings, options, kw, params) -> None:
    from .report import Progress, print_summary

    known = KnownSources(vaults=kw.pop("known_vaults"), vault_versions=kw.pop("known_vault_versions"),
                         stdin_lines=read_stdin_lines() if kw.pop("known_values_stdin") else None,
                         hashes_file=kw.pop("known_hashes"))
    dataverse = kw.pop("dataverse_urls", ())
    if dataverse:
        params = {**params, "dataverse": [f"{t.environment}={t.url}" for t in dataverse]}
    progress = Progress(enabled=not kw.pop("quiet", False))
    try:
        outcome = run_scan(settings, options, known, progress=progress, params=params, dataverse=dataverse)
    finally:
        progress.stop()
    print_summary(settings.db, outcome)
    summary_path = kw.pop("summary_json", None)
    if summary_path:
        write_summary_json(summary_path, outcome)
    sys.exit(outcome.exit_code)


def _register() -> None:
    """Commands that live in their own modules (one module per concept)."""
    from .export import export_command
    from .lint import lint_command
    from .query import query_command
    from .suppress import suppress_command, suppressions_command

    for command in (lint_command, query_command, export_command, suppress_command, suppressions_command):
        cli.add_command(command)


_register()


def main() -> None:
    """Console entry point: an unexpected error exits 4 with one line, never 1 ('findings')."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_ERROR)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("flowleaks: interrupted; rerun to resume (findings so far are stored)", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # noqa: BLE001
        from .errors import describe
        from .store import StoreBusy

        if isinstance(exc, StoreBusy):
            click.echo(f"flowleaks: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        what = describe(exc)
        click.echo(f"flowleaks: stopped by an unexpected error: {what}", err=True)
        sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
