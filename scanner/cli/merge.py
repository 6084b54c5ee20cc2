"""`flowleaks merge OUT.duckdb SHARD.duckdb…`: the command, its summary and its exit status
(scanner/store/merge.py merges; scanner/store/merge_plan.py says what may be merged)."""
from __future__ import annotations

import click

from scanner.cli.errors import CommandError
from scanner.pipeline.sweep import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE
from scanner.store.errors import StoreOpenError
from scanner.store.merge import merge
from scanner.store.merge_plan import Plan


def exit_code(plan: Plan, open_findings: int) -> int:
    """Incomplete first: a missing or unfinished shard is what the scheduler must see, and a merged
    database that lacks part of the tenant is never reported as clean."""
    if not plan.complete:
        return EXIT_INCOMPLETE
    return EXIT_FINDINGS if open_findings else EXIT_CLEAN


def print_summary(out: str, plan: Plan, counts: dict[str, int], open_findings: int) -> None:
    click.echo(f"flowleaks merge {plan.scan_id}: {len(plan.shards)} of {plan.count} shards into {out}")
    for db in plan.shards:
        state = "complete" if db.latest["complete"] is True else f"INCOMPLETE ({db.latest['status']})"
        click.echo(f"  shard {db.shard[0]}/{db.shard[1]}  {db.path}  scan {db.latest['scan_id']}  {state}")
    for i in plan.missing:
        click.echo(f"  shard {i}/{plan.count}  MISSING")
    click.echo("rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    click.echo(f"{open_findings} open finding{'s' if open_findings != 1 else ''}"
               + (f": flowleaks query \"SELECT * FROM open_findings\" --db {out}" if open_findings else ""))
    if plan.missing:
        names = ", ".join(f"{i}/{plan.count}" for i in plan.missing)
        click.echo(f"flowleaks: missing shard{'s' if len(plan.missing) != 1 else ''} {names}: merge "
                   f"{'their databases' if len(plan.missing) != 1 else 'its database'} too; the merged "
                   "result does not cover the whole tenant", err=True)
    if plan.complete:
        click.echo("Merge complete." + ("" if open_findings else " No open findings."))
    else:
        bad = [f"shard {i}/{plan.count} missing" for i in plan.missing]
        bad += [f"shard {db.shard[0]}/{plan.count} {db.latest['status']}" for db in plan.shards
                if db.latest["complete"] is not True]
        click.echo(f"Merge INCOMPLETE ({'; '.join(bad)}): part of the tenant was not scanned; not a clean result.")


@click.command("merge")
@click.argument("out", metavar="OUT.duckdb", type=click.Path(dir_okay=True))
@click.argument("shards", metavar="SHARD.duckdb…", nargs=-1, required=True, type=click.Path(dir_okay=True))
def merge_command(out: str, shards: tuple[str, ...]) -> int:
    """Merge the shard databases of `scan --shard K/N` (or `sweep --shard K/N`) into OUT.

    OUT then holds what one process scanning the whole tenant would have written; query it as any
    database. OUT may be a new path (created 0600) or an earlier merge: the shard databases grow
    night after night, and merging them into last night's OUT brings it up to date. Merging the same
    shards again changes nothing.

    Refused (exit 2, OUT untouched): a file that is not a flowleaks database, another schema version,
    another fingerprint key or tenant, a database without a shard (only OUT may be one), a shard index
    given twice, different shard counts N. A missing shard is merged without: the result is incomplete.

    \b
    Example (an Indexed Job of 3 pods, then one merge):
      flowleaks scan --as-admin --shard 0/3 --db shard0.duckdb      # ... 1/3, 2/3
      flowleaks merge tenant.duckdb shard0.duckdb shard1.duckdb shard2.duckdb

    \b
    Exit status:
      0  merged, every shard present and complete, no open findings
      1  merged, open findings (flowleaks query "SELECT * FROM open_findings" --db OUT)
      2  refused (nothing written), or a usage error
      3  merged but INCOMPLETE: a shard missing, or its latest scan incomplete (even with open
         findings: the part not merged is the news; never reported clean)
      4  unexpected error, or a database in use by a running scan
    """
    try:
        plan, counts, open_findings = merge(out, shards)
    except StoreOpenError as exc:  # a database in use (4), or OUT not one this flowleaks can write (2)
        raise CommandError(str(exc), exit_code=exc.exit_code) from None
    print_summary(out, plan, counts, open_findings)
    return exit_code(plan, open_findings)
