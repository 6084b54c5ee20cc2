"""`flowleaks rules`: every rule the engine would run, and the `--rules` / `--rules-only` options
(custom packs in gitleaks' format, detectors/custom.py; loaded and checked by scanner/settings.py)
shared by sweep, scan, scan-files and rules.

The listing shows rule metadata and example counts only: examples are fake values, but a listing has
no reason to print a token-shaped string.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import click

from scanner.settings import custom_rules_from


def rules_options(f: Callable) -> Callable:
    f = click.option("--rules-only", is_flag=True, envvar="FLOWLEAKS_RULES_ONLY", show_envvar=True,
                     help="Run only the --rules packs (and known values): no built-in catalogue, Power Platform "
                          "or detect-secrets rules, and no entropy stage.")(f)
    # click.Path splits the variable on os.pathsep (':' on POSIX, ';' on Windows), like PATH
    return click.option("--rules", "rules_files", multiple=True, envvar="FLOWLEAKS_RULES", show_envvar=True,
                        type=click.Path(exists=True, dir_okay=False),
                        help="A custom rule pack in gitleaks' TOML format, run with the built-in rules "
                             "(repeatable; the variable takes a path list).")(f)


def load_rules(kw: dict) -> Any:
    """Pop --rules/--rules-only → CustomRules or None (scanner/settings.py `custom_rules_from`: a pack
    that cannot be used is a usage error, one line, exit 2); the pack's notes (ignored path-only
    rules) go to stderr."""
    custom = custom_rules_from(kw)
    for note in custom.notes if custom is not None else ():
        click.echo(f"flowleaks: {note}", err=True)
    return custom


def _describe(rule: Any, catalogue: dict[str, Any]) -> dict[str, Any]:
    src = rule.source
    if src == "flowleaks":
        provider, family = ("Microsoft", "power-platform") if rule.kind == "pattern" else ("-", rule.kind)
        origin = "flowleaks built-in"
    elif src.startswith("detect-secrets:"):
        # a plugin's description names what it finds ("GitHub token"): the closest to a provider
        provider, family, origin = rule.description, "detect-secrets", f"detect-secrets plugin {src.split(':', 1)[1]}"
    elif src.startswith("flowleaks:"):
        c = catalogue[rule.id]
        provider, family, origin = c.provider, c.family, f"catalogue detectors/rules/{src.split(':', 1)[1]}"
    else:
        provider, family, origin = "custom", "custom", f"custom pack {src}"
    return {"id": rule.id, "description": rule.description, "provider": provider, "family": family,
            "kind": rule.kind, "confidence": rule.confidence, "source": origin,
            "examples": len(rule.positive) + len(rule.negative)}


@click.command("rules")
@rules_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table for people, JSON (a list of rules) for scripts.")
def rules_command(fmt: str, **kw: Any) -> None:
    """List every rule a scan runs: id, provider/family, kind, confidence, source, examples.

    \b
    Examples:
      flowleaks rules
      flowleaks rules --rules acme.toml --format json
    """
    from detectors.engine import Engine
    from detectors.registry import CATALOGUE

    custom = load_rules(kw)
    catalogue = {c.id: c for c in CATALOGUE}
    rows = [_describe(r, catalogue) for r in Engine(custom=custom).rules()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from scanner.report.summary import out_console

    t = Table(title=f"{len(rows)} rules")
    for c in ("id", "provider / family", "kind", "confidence", "source", "examples"):
        t.add_column(c)
    for r in rows:
        t.add_row(escape(r["id"]), escape(f"{r['provider']} / {r['family']}"), r["kind"], r["confidence"],
                  escape(r["source"]), str(r["examples"]))
    out_console.print(t)
