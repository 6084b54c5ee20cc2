"""`flowleaks suppress` and `flowleaks suppressions`: accept a finding (or a secret) so later scans
report it as suppressed, and list what is accepted. What a suppression is and what it matches is
scanner/store/suppressions.py."""
from __future__ import annotations

import difflib
from datetime import date, datetime

import click

from scanner.cli.errors import CommandError
from scanner.cli.query import db_option, format_option, open_read_only, render
from scanner.store.database import Store, utcnow
from scanner.store.query import require_database
from scanner.store.suppressions import NEVER, last_complete_scan, suppress, suppressions_sql


def _parse_expires(value: str | None) -> datetime | None | str:
    """None: not given (an update keeps the old expiry); NEVER: remove it; else the end, 00:00 UTC."""
    if value is None:
        return None
    if value.strip().lower() == NEVER:
        return NEVER
    try:
        d = date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD or 'never', got {value!r}", param_hint="--expires") from None
    at = datetime(d.year, d.month, d.day)
    if at <= utcnow():
        raise click.BadParameter(f"{value} is not in the future (the suppression ends at 00:00 UTC that day)",
                                 param_hint="--expires")
    return at


def known_rule_ids() -> set[str]:
    """Every rule id a finding can carry: the detectors' rules and the posture rules (PA001…)."""
    from detectors.registry import rules_by_id

    from scanner.posture.rules import RULES as POSTURE_RULES

    return set(rules_by_id()) | set(POSTURE_RULES)


def check_rule(rule: str | None) -> str | None:
    """The rule id as the findings spell it, or CommandError (exit 2): a typo would otherwise be stored
    as a suppression that never matches anything, and the finding it was meant for stays open."""
    if rule is None:
        return None
    known = known_rule_ids()
    by_folded = {r.lower(): r for r in known}
    found = by_folded.get(rule.strip().lower())
    if found:
        return found
    close = difflib.get_close_matches(rule.strip().lower(), list(by_folded), n=1)
    hint = f"did you mean {by_folded[close[0]]}? " if close else ""
    raise CommandError(f"--rule: {rule!r} is not a flowleaks rule id; {hint}known: "
                       f"{', '.join(sorted(known, key=lambda r: (r.startswith('PA'), r)))}")


@click.command("suppress")
@click.argument("target", metavar="FINDING_ID|FINGERPRINT")
@click.option("--reason", help="Why this is accepted (kept with the suppression). Required for a new "
                               "suppression; on an existing one, replaces its reason.")
@click.option("--rule", "rule", help="Only findings of this rule id (default: the finding's rule when a "
                                     "finding id is given, else every rule).")
@click.option("--expires", help="YYYY-MM-DD: the suppression stops applying at 00:00 UTC that day; "
                                "'never' removes an expiry. Not given: an existing expiry is kept.")
@db_option
def suppress_command(target: str, reason: str | None, rule: str | None, expires: str | None, db: str) -> None:
    """Accept a finding (or a secret, by fingerprint) so it is reported as suppressed, not open.

    A finding id is resolved to its secret's fingerprint: the suppression covers that secret wherever it
    appears (with the same rule), now and in later scans. Run again on the same secret and rule to
    change it: only what is given (--reason, --expires) changes; the rest is kept.

    \b
    Examples:
      flowleaks suppress 3f2a…c9 --reason "test tenant key, rotated" --expires 2025-12-31
      flowleaks suppress <fingerprint> --reason "public sample key"
      flowleaks suppress 3f2a…c9 --expires 2026-06-30      # extend; the reason stays
    """
    if reason is not None and not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    expires_at = _parse_expires(expires)
    rule = check_rule(rule)
    require_database(db)
    store = Store(db)
    try:
        done = suppress(store, target, reason, rule, expires_at)
    finally:
        store.close()
    scope = f"rule {done.rule_id}" if done.rule_id else "every rule"
    until = f" until {done.expires_at.date()}" if done.expires_at else " with no expiry"
    verb = "updated" if done.updated else "added"
    n = done.now_suppressed
    click.echo(f"suppression {verb} for {done.kind} {done.preview or done.fingerprint[:16] + '…'} ({scope}){until}; "
               f"{n} open finding{'s' if n != 1 else ''} now suppressed")


@click.command("suppressions")
@click.option("--stale", is_flag=True,
              help="Only suppressions that matched no finding in the last complete scan (candidates to remove).")
@db_option
@format_option
def suppressions_command(stale: bool, db: str, fmt: str) -> None:
    """List suppressions with their state and how many findings they cover.

    \b
    Examples:
      flowleaks suppressions
      flowleaks suppressions --stale --format csv
    """
    con = open_read_only(db)
    try:
        if stale:
            last = last_complete_scan(con)
            if last is None:
                raise CommandError("no complete scan yet: staleness is judged against the last complete scan")
            if fmt in (None, "table", "line"):
                click.echo(f"suppressions that matched nothing in scan {last}:", err=True)
        render(con, suppressions_sql(stale), fmt, params={"now": utcnow()},
               title="Stale suppressions" if stale else "Suppressions")
    finally:
        con.close()
