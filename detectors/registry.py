"""The rule registry: every rule id flowleaks reports under, with its metadata and examples (`Rule`).

flowleaks' Power Platform rules (powerplatform.py), the detect-secrets plugins (patterns.py), the
provider catalogue (catalogue.py, detectors/rules/*.toml), the entropy stage and known values, in that
order: `RULES`, the built-in set (tests/detectors/test_rules_examples.py runs every example). A custom
pack's rules are the user's: `custom_rule` gives their registry view, and `Engine.rules()` the set one
engine reports under.
"""
from __future__ import annotations

from . import catalogue as catalogue_mod
from . import entropy
from . import known_values
from .patterns import ds_rules
from .powerplatform import RULES as PP_RULES
from .rules import Rule, ex

# The catalogue (detectors/rules/*.toml) loads at import: a broken built-in rule file is a bug that
# must stop every command (and the tests), not silently shrink the rule set.
CATALOGUE: list[catalogue_mod.CatalogueRule] = catalogue_mod.load()


def _catalogue_rule(r: catalogue_mod.CatalogueRule) -> Rule:
    # the examples sit in a `note` field: free text, as a Compose output or an HTTP body carries them
    return Rule(r.id, r.title, "pattern", r.confidence, r.keywords,
                tuple(ex({"note": t}, secret) for t, secret in r.tp), tuple(ex({"note": t}) for t in r.fp),
                source=f"flowleaks:{r.family}.toml")


RULES: list[Rule] = ([r.rule for r in PP_RULES] + ds_rules() + [_catalogue_rule(r) for r in CATALOGUE]
                     + [entropy.RULE, known_values.RULE])


def rules_by_id() -> dict[str, Rule]:
    return {r.id: r for r in RULES}


def custom_rule(r) -> Rule:
    """Registry view of a custom (gitleaks-format) rule: its source is the pack's path."""
    return Rule(r.id, r.description, "pattern", r.confidence, r.keywords, source=r.origin)
