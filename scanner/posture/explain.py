"""Why a secret seen in run history is there: the posture rule and the action that explain it.

The crawl asks this for every run-history finding (`explain(..., literal=)`); the value itself may
stay in a detection worker: the parent hands it the action's strings (`action_strings`), the worker
finds where the value is typed (`literal_path`) and returns only that path.
"""
from __future__ import annotations

import re

from scanner.posture import model
from scanner.posture.base import Cause
from scanner.posture.rules import PA004, PA005, PA008, RULES
from scanner.posture.taint import PASS_THROUGH, Action, analysed_action, is_literal, side_of, taint_rule


def _action_strings(a: Action) -> list[tuple[str, str, str | None]]:
    # (path, string, the string without its @{…} expressions, or None when it is all literal)
    return [(p, s, None if is_literal(s) else re.sub(r"@\{[^}]*\}", "", s))
            for p, s in model.strings(model.without_nested(a.node), a.path)]


def literal_path(strings: list[tuple[str, str, str | None]], value: str) -> str | None:
    """The first of an action's strings (`action_strings`) that holds `value` as typed text: what makes
    a leaked value PA005 (or PA004 in a URI). Runs where the value is, e.g. in a detection worker."""
    for p, s, stripped in strings:
        if value in s and (stripped is None or value in stripped):
            return p
    return None


def action_strings(definition: dict, action: str) -> list[tuple[str, str, str | None]]:
    """The action's strings with their paths, for `literal_path` (empty when the action is unknown)."""
    found = analysed_action(definition, action)
    return _action_strings(found[0].actions[found[1]]) if found is not None else []


def explain(definition: dict, action: str, side: str, value: str | None = None,
            literal: str | None = None) -> Cause | None:
    """The posture rule and action that explain a secret seen in `action`'s run-history `side`.

    PA001 for a source's outputs, PA003 for a Compose/variable, PA006 for a child flow / Response,
    PA002 for other consumers, PA005 when the value is typed into the definition (pass the `value`,
    held in memory only, to check that, or the `literal` path a worker found it at with
    `literal_path`; without either, PA005 is returned when the action has a literal credential and
    no taint explains the side). None when the definition does not explain it.
    """
    s = side_of(side)
    found = analysed_action(definition, action)
    if found is None:
        return None
    m, name = found
    a = m.actions[name]
    # `literal`: where a detection worker found the value typed (literal_path), the value staying there
    p = literal if literal is not None else (literal_path(_action_strings(a), value) if value else None)
    if p is not None:
        rule = "PA004" if p.endswith(".inputs.uri") else "PA005"
        return Cause(rule, a.name, RULES[rule].remediation_for(a))
    if a.is_trigger:
        return PA008.cause(m, a, s)
    if s == "outputs":
        if a.source_kind:
            return Cause("PA001", a.name, RULES["PA001"].remediation_for(a), (a.name,))
        srcs = m.source_of.get(a.name, set()) - {a.name}
        if srcs and a.type in PASS_THROUGH:
            rule = taint_rule(a)
            return Cause(rule, a.name, RULES[rule].remediation_for(a), tuple(sorted(srcs)))
    else:
        srcs = m.tainted_in.get(a.name, set()) - {a.name}
        if srcs:
            rule = taint_rule(a)
            if rule == "PA002" and PA004.in_query_only(m, a):
                rule = "PA004"
            return Cause(rule, a.name, RULES[rule].remediation_for(a), tuple(sorted(srcs)))
        if PA005.literal_findings(a):
            return Cause("PA005", a.name, RULES["PA005"].remediation_for(a))
    return PA008.cause(m, a, s)
