"""Where a secret flows in a definition, and who can see it: workflow expressions and the references
in them, the taint analysis over them, and run-history visibility.

Propagation model (AZDOCS `articles/logic-apps/logic-apps-securing-a-logic-app.md`, "Secure data in run
history by using obfuscation", read for this module):

* An action's own `runtimeConfiguration.secureData.properties` hides its inputs / outputs.
* If an action *explicitly references* (`body('X')`, `outputs('X')`, `actions('X')`, `triggerBody()`…)
  the outputs of an action X whose Secure Inputs or Secure Outputs is turned on, its inputs are hidden
  too, but its outputs are not, and its own setting stays off: the next hop is visible again.
* Compose, Parse JSON and Response have only Secure Inputs, which also hides their outputs; when such an
  action is hidden by propagation, both its inputs and outputs are hidden. Their hidden outputs do not
  propagate: an action referencing a secured Compose is visible.
* Variable actions cannot be secured, and `variables('v')` is not an explicit reference to the action
  that set it, so nothing propagates through a variable.
* `Authorization` headers are never shown in run history, so a secret referenced only there does not
  make an HTTP action's inputs leak.

This is a taint analysis: sources are the PA001 actions (sources.py); taint flows through references
(`body/outputs/actions/result`, `variables`, `items`) to a fixpoint; a leak is a tainted side that is
visible, reported by the rule that owns that kind of action (`taint_rule`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from scanner.posture import model
from scanner.posture.sources import source_kind

_SPECIAL = {"compose", "parsejson", "response"}  # only Secure Inputs, which hides outputs too
VARIABLE = {"initializevariable", "setvariable", "appendtostringvariable", "appendtoarrayvariable",
            "incrementvariable", "decrementvariable"}
_DATA_OPS = {"compose", "parsejson", "select", "query", "join", "table", "expression"}
# Actions whose outputs are (a function of) their inputs: taint passes through them.
PASS_THROUGH = _DATA_OPS | {"setvariable", "appendtostringvariable", "appendtoarrayvariable", "response"}
_CHILD = {"workflow"}


# ---------------------------------------------------------------------------------------------------
# Expressions

_FUNC_REF = re.compile(
    r"\b(body|outputs|actions|result|variables|items|iterationIndexes)\s*\(\s*(?:'((?:[^']|'')*)'|\"([^\"]*)\")\s*\)",
    re.IGNORECASE)
_TRIGGER_REF = re.compile(r"\btrigger(?:Body|Outputs|FormDataValue|FormDataMultiValues|MultipartBody)?\s*\(",
                          re.IGNORECASE)


def expression_parts(s: str) -> list[str]:
    """The workflow-language expression text inside a string: the whole string for `@expr`, the
    `@{…}` segments of an interpolated string; `@@` escapes a literal `@`."""
    if not s or "@" not in s:
        return []
    if s.startswith("@@"):
        return []
    if s.startswith("@") and not s.startswith("@{"):
        return [s[1:]]
    parts: list[str] = []
    i = 0
    n = len(s)
    while True:
        j = s.find("@{", i)
        if j < 0:
            break
        depth = 0
        k = j + 1
        quote = False
        while k < n:
            c = s[k]
            if c == "'":
                quote = not quote
            elif not quote and c == "{":
                depth += 1
            elif not quote and c == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        parts.append(s[j + 2:k])
        i = k + 1
    return parts


def is_literal(v: Any) -> bool:
    """A non-empty string that is not (and does not contain) a workflow expression."""
    if not isinstance(v, str) or not v.strip():
        return False
    if v.startswith("@@"):
        return True
    return not expression_parts(v)


def refs_in(s: str, trigger_name: str | None) -> list[tuple[str, str]]:
    """(kind, target) of each reference in the string's expressions: kind `action` (body/outputs/
    actions, and trigger…() as the trigger), `result`, `var` or `items`."""
    out: list[tuple[str, str]] = []
    for expr in expression_parts(s):
        for m in _FUNC_REF.finditer(expr):
            fn = m.group(1).lower()
            target = m.group(2) if m.group(2) is not None else m.group(3)
            target = target.replace("''", "'")
            kind = {"body": "action", "outputs": "action", "actions": "action", "result": "result",
                    "variables": "var", "items": "items", "iterationindexes": "items"}[fn]
            out.append((kind, target))
        if trigger_name and _TRIGGER_REF.search(expr):
            out.append(("action", trigger_name))
    return out


# ---------------------------------------------------------------------------------------------------
# The analysed definition: actions, taint, visibility


@dataclass(slots=True)
class Action:
    name: str
    node: dict
    path: str  # JSONPath of the action node
    type: str  # lowercased
    is_trigger: bool = False
    parent: str | None = None
    secure: frozenset[str] = frozenset()
    # references: (json_path of the string, kind, target)
    sites: list[tuple[str, str, str]] = field(default_factory=list)
    loop_sites: list[tuple[str, str, str]] = field(default_factory=list)  # Foreach `foreach` expression
    source_kind: str | None = None
    var_name: str | None = None
    children: list[str] = field(default_factory=list)

    @property
    def explicit_refs(self) -> set[str]:
        return {t for _, k, t in self.sites if k == "action"}


@dataclass(slots=True)
class Analysis:
    definition: dict  # the bare definition analysed
    actions: dict[str, Action]
    trigger: str | None
    tainted_out: set[str] = field(default_factory=set)
    tainted_in: dict[str, set[str]] = field(default_factory=dict)  # action -> sources reaching inputs
    source_of: dict[str, set[str]] = field(default_factory=dict)  # taint: action out -> sources
    tainted_vars: dict[str, set[str]] = field(default_factory=dict)
    tainted_loops: dict[str, set[str]] = field(default_factory=dict)
    var_setters: dict[str, list[str]] = field(default_factory=dict)

    # -- visibility (documented rules) ------------------------------------------------------------
    def propagates(self, x: str) -> bool:
        """True if an explicit reference to x's outputs hides the referencing action's inputs."""
        a = self.actions.get(x)
        if a is None or a.type in _SPECIAL:
            return False
        return bool(a.secure & {"inputs", "outputs"})

    def inputs_hidden(self, name: str) -> bool:
        a = self.actions[name]
        if "inputs" in a.secure:
            return True
        return any(self.propagates(x) for x in a.explicit_refs if x != name)

    def outputs_hidden(self, name: str) -> bool:
        a = self.actions[name]
        if a.type in _SPECIAL:
            return self.inputs_hidden(name)
        if a.type in VARIABLE:
            return False
        return "outputs" in a.secure

    def visible(self, name: str, side: str, json_path: str | None = None) -> bool:
        """is_visible for an action of this analysis (`side` as normalised by `side_of()`)."""
        a = self.actions[name]
        if a.is_trigger:
            return side not in a.secure
        if side == "inputs":
            if json_path and a.type == "http" and re.match(r"^\$\.headers(\.|\[')authorization\b", json_path,
                                                           re.IGNORECASE):
                return False
            return not self.inputs_hidden(name)
        return not self.outputs_hidden(name)


def _children(found: list[model.Node], i: int) -> list[str]:
    """Names of the actions nested (at any depth) in found[i]: the nodes after it, in document order,
    until the next one that is not deeper."""
    depth = found[i].depth
    out: list[str] = []
    for n in found[i + 1:]:
        if n.is_trigger or n.depth <= depth:
            break
        out.append(n.name)
    return out


def analysis(definition: Any) -> Analysis:
    """The analysed model of a bare definition; the parts model.py cannot read are left out."""
    found = model.nodes(definition)
    acts = [Action(name=n.name, node=n.node, path=n.path, type=model.node_type(n.node).lower(),
                   is_trigger=n.is_trigger, parent=n.parent, secure=model.secure_props(n.node),
                   children=[] if n.is_trigger else _children(found, i))
            for i, n in enumerate(found)]
    trig_name = next((a.name for a in acts if a.is_trigger), None)
    m = Analysis(definition=definition, actions={a.name: a for a in acts}, trigger=trig_name)
    for a in acts:
        if a.is_trigger:
            continue
        for p, s in model.strings(model.inputs(a.node), a.path + ".inputs"):
            for kind, target in refs_in(s, trig_name):
                a.sites.append((p, kind, target))
        if a.type == "foreach":
            for p, s in model.strings(a.node.get("foreach"), a.path + ".foreach"):
                for kind, target in refs_in(s, trig_name):
                    a.loop_sites.append((p, kind, target))
        a.source_kind = source_kind(a.node, a.is_trigger)
        if a.type in VARIABLE:
            inp = a.node.get("inputs") if isinstance(a.node.get("inputs"), dict) else {}
            if a.type == "initializevariable":
                vs = inp.get("variables")
                if isinstance(vs, list) and vs and isinstance(vs[0], dict):
                    a.var_name = model.text(vs[0].get("name"))
            else:
                a.var_name = model.text(inp.get("name")) or None
            if a.var_name:
                m.var_setters.setdefault(a.var_name, []).append(a.name)
    _taint(m)
    return m


def resolve(m: Analysis, target: str) -> str | None:
    """The action a reference or a run-history record names (spaces in names read as `_`)."""
    if target in m.actions:
        return target
    alt = target.replace(" ", "_")
    return alt if alt in m.actions else None


def analysed_action(definition: Any, action: Any) -> tuple[Analysis, str] | None:
    """The definition's analysis and the name `action` (a run-history action name) resolves to in
    it; None when the definition is unreadable or has no such action."""
    d = model.definition_of(definition)
    if d is None or not isinstance(action, str):
        return None
    m = analysis(d)
    name = resolve(m, action)
    return None if name is None else (m, name)


def site_sources(m: Analysis, kind: str, target: str) -> set[str]:
    """The sources whose data a reference (refs_in) carries."""
    if kind == "action":
        t = resolve(m, target)
        return set(m.source_of.get(t, ())) if t else set()
    if kind == "var":
        return set(m.tainted_vars.get(target, ()))
    if kind == "items":
        t = resolve(m, target)
        return set(m.tainted_loops.get(t, ())) if t else set()
    if kind == "result":
        t = resolve(m, target)
        if not t:
            return set()
        out: set[str] = set()
        for c in m.actions[t].children:
            out |= m.source_of.get(c, set())
        return out
    return set()


def _taint(m: Analysis) -> None:
    for a in m.actions.values():
        if a.source_kind:
            m.source_of[a.name] = {a.name}
    for _ in range(len(m.actions) + 2):
        changed = False
        for a in m.actions.values():
            if a.is_trigger:
                continue
            srcs: set[str] = set()
            for _p, kind, target in a.sites:
                srcs |= site_sources(m, kind, target)
            if srcs != m.tainted_in.get(a.name, set()):
                m.tainted_in[a.name] = srcs
                changed = True
            if srcs and a.type in PASS_THROUGH:
                cur = m.source_of.setdefault(a.name, set())
                if not srcs <= cur:
                    cur |= srcs
                    changed = True
            if srcs and a.var_name:
                cur = m.tainted_vars.setdefault(a.var_name, set())
                if not srcs <= cur:
                    cur |= srcs
                    changed = True
            if a.type == "foreach":
                ls: set[str] = set()
                for _p, kind, target in a.loop_sites:
                    ls |= site_sources(m, kind, target)
                if ls:
                    cur = m.tainted_loops.setdefault(a.name, set())
                    if not ls <= cur:
                        cur |= ls
                        changed = True
        if not changed:
            break
    m.tainted_out = {k for k, v in m.source_of.items() if v}


def _sanitized_site(a: Action, path: str) -> bool:
    """Authorization headers are never shown in run history (AZDOCS)."""
    if a.type != "http":
        return False
    return bool(re.match(re.escape(a.path) + r"\.inputs\.headers(\.|\[')authorization('\])?$", path,
                         re.IGNORECASE))


def _visible_taint(m: Analysis, a: Action) -> set[str]:
    """Sources whose data reaches the visible part of a's inputs (Authorization header excluded)."""
    out: set[str] = set()
    for p, kind, target in a.sites:
        if _sanitized_site(a, p):
            continue
        out |= site_sources(m, kind, target)
    return out


# ---------------------------------------------------------------------------------------------------
# Leaks: tainted sides that are visible


def taint_rule(a: Action) -> str:
    """The rule that reports secret data reaching this kind of action: PA003 for a Compose / data
    operation / variable, PA006 for a child flow or Response, PA002 for any other consumer."""
    if a.type in _DATA_OPS or a.type in VARIABLE:
        return "PA003"
    if a.type in _CHILD or a.type == "response":
        return "PA006"
    return "PA002"


@dataclass(frozen=True, slots=True)
class Leak:
    """Secret data from `sources` that run history shows in an action's inputs and/or outputs."""

    sources: set[str]
    inputs: bool
    outputs: bool


def leaks(m: Analysis, rule_id: str) -> Iterator[tuple[Action, Leak]]:
    """The actions (in document order) whose visible tainted sides `rule_id` (see taint_rule) reports."""
    for a in m.actions.values():
        if a.is_trigger or taint_rule(a) != rule_id:
            continue
        vis = _visible_taint(m, a) - {a.name}
        leak_in = bool(vis) and not m.inputs_hidden(a.name)
        all_in = m.tainted_in.get(a.name, set()) - {a.name}
        leak_out = (bool(all_in) and a.type in PASS_THROUGH and not m.outputs_hidden(a.name)
                    and a.type != "response")
        if leak_in or leak_out:
            yield a, Leak(vis if leak_in else all_in, leak_in, leak_out)


# ---------------------------------------------------------------------------------------------------
# Visibility, asked from outside


def side_of(side: str) -> str:
    """`inputs` or `outputs` from a run-history side (`action_inputs`, `trigger_outputs`, `inputs`…)."""
    s = side.lower()
    if s.endswith("inputs"):
        return "inputs"
    if s.endswith("outputs"):
        return "outputs"
    raise ValueError(f"side must be inputs/outputs (or action_/trigger_ prefixed), not {side!r}")


def is_visible(definition: dict, action: str, side: str, json_path: str | None = None) -> bool:
    """True when viewers of run history can see that side of the action (Secure Inputs/Outputs off,
    and not hidden by propagation). Unknown actions are assumed visible. With `json_path` (a path in
    the run-history body, e.g. `$.headers.Authorization`), an HTTP Authorization header is never visible.
    """
    s = side_of(side)
    found = analysed_action(definition, action)
    if found is None:
        return True
    m, name = found
    return m.visible(name, s, json_path)
