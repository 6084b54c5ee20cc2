"""`flowleaks` command line. Exit codes: 0 complete and clean, 1 open findings, 2 usage error,
3 incomplete (something planned was not scanned), 4 error (a rejected token, an unreachable sign-in
host, or a bug)."""
from __future__ import annotations

import sys

import click

from scanner import __version__
from scanner.settings import (connection_options, output_options, dataverse_options, known_value_options, scope_options, settings_from,
                     shard_option, shard_from, jobs_option,
                     window)
from scanner.pipeline.crawl import CrawlOptions
from scanner.logs import setup_logging
from scanner.private import restrict_umask
from scanner.cli.rules import custom_rules_from, rules_options
from scanner.pipeline.sweep import (EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, EXIT_USAGE, KnownSources, read_stdin_lines, run_scan,
                    write_summary_json)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flowleaks")
@click.option("-v", "--verbose", count=True,
              help="More log detail on stderr: -v progress, -vv each request (never secrets or tokens).")
def cli(verbose: int) -> None:
    """Find secrets leaked into Microsoft Power Automate run history.

    Start with `flowleaks sweep` (incident response over a time window) or `flowleaks scan` (the
    incremental nightly job); findings land in DuckDB for `flowleaks query`.
    """
    # Every line goes through the redacting filter: -v must never print a sig, token or secret.
    setup_logging(verbose)


@cli.command()
@connection_options
@scope_options
@shard_option
@jobs_option("content bodies are detected in parallel, results leave them redacted", default=1,
             note=" Default 1: with bodies of a few KB, sending each to a worker costs more than it "
                  "saves (measured 43 runs/s with 2 workers, 61 with 1).")
@known_value_options
@dataverse_options
@output_options
@rules_options
def sweep(**kw) -> None:
    """Scan every run in a time window (default: the 30-day retention window) for secrets.

    \b
    Example:
      FLOWLEAKS_ACCESS_TOKEN=... flowleaks sweep --as-admin --days 7 --env Default-<tenant>
    """
    settings = settings_from(kw)
    shard = shard_from(kw, settings.db)
    since, until = window(kw.pop("since"), kw.pop("until"), kw.pop("days"))
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), since=since,
                           until=until, status=kw.pop("status"), kind="sweep", shard=shard, jobs=kw.pop("jobs"))
    _run(settings, options, kw, params={"since": since, "until": until, "status": options.status,
                                        "environments": options.environments, "flows": options.flows,
                                        "as_admin": settings.as_admin, "cloud": settings.cloud.name,
                                        **({"shard": shard.as_param()} if shard else {})})


@cli.command()
@connection_options
@scope_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Cassette file to write (VCR.py-style YAML); missing folders are created.")
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

    from scanner.replay.cassette import FoundSecrets, RecordingTransport, leaf_scrubber

    settings = settings_from(kw)
    since, until = window(kw.pop("since"), kw.pop("until"), kw.pop("days"))
    keep = kw.pop("keep_secrets")
    # Every secret the sweep finds is remembered as keyed hashes of its encodings (never plaintext),
    # so the cassette can be scrubbed of it wherever and however it appears, however short.
    found = FoundSecrets(key=os.urandom(32))
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), since=since,
                           until=until, status=kw.pop("status"), kind="record",
                           secret_sink=None if keep else (lambda secret: found.add_value(secret, "found")))
    origin_map = dict(m.split("=", 1) for m in kw.pop("map_origin"))
    recorder = RecordingTransport(httpx.AsyncHTTPTransport(), origin_map)

    with tempfile.TemporaryDirectory() as tmp:
        settings.db = f"{tmp}/record.duckdb"
        outcome = run_scan(settings, options, None, params={"record": True}, transport=lambda engine: recorder,
                           outputs={"--out": kw["out"]})
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
@shard_option
@jobs_option("content bodies are detected in parallel, results leave them redacted", default=1,
             note=" Default 1: with bodies of a few KB, sending each to a worker costs more than it "
                  "saves (measured 43 runs/s with 2 workers, 61 with 1).")
@known_value_options
@dataverse_options
@output_options
@rules_options
def scan(**kw) -> None:
    """The nightly job: only runs newer than the last scan (per-flow watermark), resumable.

    Runs still Running last time are read again; content already scanned (same md5 contentHash and
    size) is not downloaded again; a flow's watermark moves only when the flow was fully scanned.

    \b
    Example (cron, 02:30 every night):
      30 2 * * *  flowleaks scan --as-admin --db /var/lib/flowleaks/tenant.duckdb --summary-json /var/log/flowleaks.json
    """
    settings = settings_from(kw)
    shard = shard_from(kw, settings.db)
    options = CrawlOptions(environments=kw.pop("environments"), flows=kw.pop("flows"), kind="scan",
                           incremental=True, reuse_content=True, shard=shard, jobs=kw.pop("jobs"))
    _run(settings, options, kw, params={"environments": options.environments, "flows": options.flows,
                                        "as_admin": settings.as_admin, "cloud": settings.cloud.name,
                                        **({"shard": shard.as_param()} if shard else {})})


def _run(settings, options, kw, params) -> None:
    from scanner.report.summary import Progress, print_summary

    settings.custom_rules = custom_rules_from(kw)  # a bad pack stops here, before sign-in
    known = KnownSources(vaults=kw.pop("known_vaults"), vault_versions=kw.pop("known_vault_versions"),
                         stdin_lines=read_stdin_lines() if kw.pop("known_values_stdin") else None,
                         hashes_file=kw.pop("known_hashes"))
    dataverse = kw.pop("dataverse_urls", ())
    if dataverse:
        params = {**params, "dataverse": [f"{t.environment}={t.url}" for t in dataverse]}
    progress = Progress(enabled=not kw.pop("quiet", False))
    try:
        outcome = run_scan(settings, options, known, progress=progress, params=params, dataverse=dataverse,
                           outputs={"--summary-json": kw.get("summary_json")})
    finally:
        progress.stop()
    print_summary(settings.db, outcome)
    summary_path = kw.pop("summary_json", None)
    if summary_path:
        write_summary_json(summary_path, outcome)
    scope_error = outcome.scope_error()
    if scope_error:
        click.echo(f"flowleaks: {scope_error}", err=True)
    sys.exit(outcome.exit_code)


def _register() -> None:
    """Commands that live in their own modules (one module per concept)."""
    from scanner.report.export import export_command
    from scanner.posture.lint import lint_command
    from scanner.store.merge import merge_command
    from scanner.store.query import query_command
    from scanner.cli.rules import rules_command
    from scanner.files.scan import scan_files_command
    from scanner.store.suppressions import suppress_command, suppressions_command

    for command in (lint_command, query_command, export_command, suppress_command, suppressions_command,
                    scan_files_command, rules_command, merge_command):
        cli.add_command(command)


_register()


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader closed the pipe


def main() -> None:
    """Console entry point: every command's code becomes the process exit status; an error never
    exits 1 ('findings'); an unexpected error exits 4 with one line."""
    restrict_umask()  # everything this process creates (DB, WAL, spill, exports) is owner-only
    sys.exit(_invoke())


def _invoke() -> int:
    try:
        # standalone_mode=False hands errors to us instead of exiting, and in exchange click *returns*
        # what the command returned (or the code of its ctx.exit): that value is the exit status.
        return _status(cli.main(standalone_mode=False))
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit:
        # click turns a closed stdout (`flowleaks query … | head -1`) into exit 1, which here means
        # "open findings"; the shell's convention for a reader that went away is 128 + SIGPIPE
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):  # click's wrapper after EPIPE
            return EXIT_BROKEN_PIPE
        raise
    except click.ClickException as exc:
        exc.show()
        # click's default ClickException code is 1, which here means "open findings": an error must
        # never read as findings, so it becomes a usage error (UsageError/BadParameter are 2 already).
        return EXIT_USAGE if exc.exit_code == EXIT_FINDINGS else exc.exit_code
    except click.exceptions.Abort as exc:
        # with standalone_mode=False click turns Ctrl-C (and EOF at a prompt) into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("flowleaks: interrupted; rerun to resume (findings so far are stored)", err=True)
        else:
            click.echo("aborted", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:  # outside a command's invocation (e.g. while the group parses)
        click.echo("flowleaks: interrupted; rerun to resume (findings so far are stored)", err=True)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001
        return _unexpected(exc)


def _status(rv: object) -> int:
    """A command that returns an int exits with it; one that returns nothing (or anything else) exits
    0, as in click's standalone mode. bool is not a code."""
    return rv if type(rv) is int else EXIT_CLEAN


def _unexpected(exc: Exception) -> int:
    """An expected failure (credentials, config, a file, the network, an HTTP answer) prints its own
    one-line message; only a bug says "unexpected", by type and place, with where to report it."""
    from scanner.net.auth import AuthConfigError
    from scanner.errors import ISSUES_URL, describe, is_expected
    from scanner.store.database import StoreOpenError

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if is_expected(exc):
        click.echo(f"flowleaks: {describe(exc)}", err=True)
        # a wrong --db or missing credentials is bad input (2); a refused token or a dead host is an error (4)
        if isinstance(cause, StoreOpenError):
            return cause.exit_code
        return EXIT_USAGE if isinstance(cause, AuthConfigError) else EXIT_ERROR
    click.echo(f"flowleaks: stopped by an unexpected error: {describe(exc)} "
               f"(a bug in flowleaks: please report it at {ISSUES_URL})", err=True)
    return EXIT_ERROR
