"""`flowleaks sweep` (a time window, for incident response) and `flowleaks scan` (the incremental
nightly job): the same crawl (scanner/pipeline/sweep.py `run_scan`) with different scopes, reported
the same way."""
from __future__ import annotations

import sys

import click

from scanner.cli.options import (connection_options, dataverse_options, jobs_option, known_sources_from,
                                 known_value_options, output_options, scope_options, shard_from, shard_option)
from scanner.cli.rules import load_rules, rules_options
from scanner.pipeline.crawl import CrawlOptions
from scanner.pipeline.detection import POOL_AFTER, WORK_BYTES
from scanner.pipeline.sweep import run_scan, write_summary_json
from scanner.settings import settings_from, window

content_jobs_option = jobs_option(
    "content bodies go to them in batches; results leave them redacted",
    note=f" The workers start in the background once the crawl has detected about {POOL_AFTER:,} bodies "
         f"(or {POOL_AFTER * WORK_BYTES // 10**6} MB) in the scanning process, which detects until they "
         f"are up; a smaller crawl never starts them (a worker takes about a second to start).")


def crawl_options(f):
    """What sweep and scan share after their scope: shards, workers, known values, Dataverse, outputs
    and rule packs (applied in this order, so --help lists them alike)."""
    for option in reversed((shard_option, content_jobs_option, known_value_options, dataverse_options,
                            output_options, rules_options)):
        f = option(f)
    return f


@click.command()
@connection_options
@scope_options
@crawl_options
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


@click.command()
@connection_options
@click.option("--env", "environments", multiple=True, help="Only these environments (default: all).")
@click.option("--flow", "flows", multiple=True, help="Only these flows (id or display name).")
@crawl_options
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

    settings.custom_rules = load_rules(kw)  # a bad pack stops here, before sign-in
    known = known_sources_from(kw)
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
