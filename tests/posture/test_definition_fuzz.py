"""The definition readers are total (issue 9, item 5): whatever JSON value sits at any position of a
definition, scanner/posture/model.py and scanner/posture/ read what they can, ignore the rest, and
never raise; `model.problems()` names every documented container that has the wrong type.

Test names containing "fuzz" are hypothesis fuzzers (`make fuzz` runs them with
FLOWLEAKS_FUZZ_EXAMPLES=5000; the default of 50 examples each keeps `make test` quick).
"""
from __future__ import annotations

import copy
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from scanner.posture import model as defn
from scanner.posture.analyze import analyze_definition
from scanner.posture.canonical import definition_hash
from scanner.posture.explain import explain
from scanner.posture.sources import secret_sources
from scanner.posture.taint import is_visible
from tests.hardening.helpers import fuzz_examples

FUZZ = settings(max_examples=fuzz_examples(), deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
SIDES = ("action_inputs", "action_outputs", "trigger_inputs", "trigger_outputs")

# -- strategies ------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12)
anything = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=8)
NAMES = st.sampled_from(["Get_secret", "HTTP", "Compose", "Scope_1", "manual", "Set_v", "Foreach", "Get item"])
odd_names = NAMES | NAMES | st.text(max_size=5) | st.integers(-3, 3) | st.none()  # JSON names are strings; ours may not be
TYPES = st.sampled_from(["Http", "Compose", "Scope", "If", "Switch", "Foreach", "Until", "OpenApiConnection",
                         "ApiConnection", "InitializeVariable", "SetVariable", "Response", "Workflow", "ParseJson",
                         "Request", "Recurrence"])
# strings that make the taint code, the literal-credential checks and the source detection work
REFS = st.sampled_from(["@body('Get_secret')?['value']", "@{outputs('Compose')}", "@variables('v')",
                        "@{triggerBody()?['x']}", "@{items('Foreach')}", "@result('Scope_1')", "plain text",
                        "https://kv.vault.azure.net/secrets/a?api-version=7.4",
                        "https://partner.example.com/api?api_key=@{body('Get_secret')}&code=Zx81LmQ0pW7rT5vY",
                        "https://login.microsoftonline.com/t/oauth2/v2.0/token", "Fake-Literal-Pa55word-991"])


def maybe(ok):
    """The documented shape, or any JSON value instead."""
    return ok | anything


inputs_ok = st.fixed_dictionaries({}, optional={
    "host": maybe(st.fixed_dictionaries({}, optional={
        "apiId": maybe(st.sampled_from(["/providers/Microsoft.PowerApps/apis/shared_keyvault", "/apis/shared_x"])),
        "operationId": maybe(st.sampled_from(["GetSecret", "PerformUnboundAction"])),
        "connectionName": maybe(st.sampled_from(["shared_keyvault", "keyvault"])),
        "connection": maybe(st.fixed_dictionaries({"name": maybe(st.just("keyvault"))}))})),
    "uri": maybe(REFS), "body": maybe(REFS), "path": maybe(st.just("/secrets/a/value")),
    "headers": maybe(st.dictionaries(st.sampled_from(["x-api-key", "Authorization", "Content-Type"]), maybe(REFS),
                                     max_size=2)),
    "authentication": maybe(st.fixed_dictionaries({"type": maybe(st.sampled_from(["Basic", "Raw"]))},
                                                  optional={"password": maybe(REFS), "value": maybe(REFS)})),
    "queries": maybe(st.dictionaries(st.sampled_from(["code", "page"]), maybe(REFS), max_size=2)),
    "parameters": maybe(st.fixed_dictionaries({}, optional={"actionName": maybe(st.just(
        "RetrieveEnvironmentVariableSecretValue"))})),
    "variables": maybe(st.lists(st.fixed_dictionaries({"name": maybe(st.just("v")), "value": maybe(REFS)}),
                                max_size=2)),
    "name": maybe(st.just("v")), "value": maybe(REFS)})
secure_ok = st.fixed_dictionaries({}, optional={"secureData": maybe(st.fixed_dictionaries({}, optional={
    "properties": maybe(st.lists(st.sampled_from(["inputs", "outputs"]), max_size=2))}))})


def odd_node(children):
    """An action/trigger node with any value at every position (often the documented one)."""
    branch = maybe(st.fixed_dictionaries({}, optional={"actions": children}))
    return st.fixed_dictionaries({}, optional={
        "type": maybe(TYPES), "kind": maybe(st.sampled_from(["Button", "Http"])), "inputs": maybe(inputs_ok | REFS),
        "runAfter": maybe(st.dictionaries(NAMES, maybe(st.lists(st.just("Succeeded"), max_size=1)), max_size=2)),
        "runtimeConfiguration": maybe(secure_ok), "actions": children, "else": branch, "default": branch,
        "cases": maybe(st.dictionaries(odd_names, branch, max_size=2)), "foreach": maybe(REFS)})


# Realistic actions (a Key Vault source, its consumers, structural actions holding them) with some
# of their parts replaced by any value: the taint code and the rules get to run on odd shapes too.
_KV = {"type": "OpenApiConnection", "runAfter": {},
       "inputs": {"host": {"connectionName": "shared_keyvault", "operationId": "GetSecret",
                           "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault"},
                  "parameters": {"secretName": "PartnerApiKey"}}}
_HTTP = {"type": "Http", "runAfter": {"Get_secret": ["Succeeded"]},
         "inputs": {"method": "POST", "uri": "https://partner.example.com/api?code=@{body('Get_secret')?['value']}",
                    "headers": {"x-api-key": "0c5e8f7a9b2d4e6f8a1c3e5b7d9f1a2b"},
                    "authentication": {"type": "Basic", "username": "u", "password": "Fake-Basic-Pa55word-4471"},
                    "body": "@{body('Get_secret')?['value']}"}}
_COMPOSE = {"type": "Compose", "inputs": "@body('Get_secret')?['value']"}
_VAR = {"type": "InitializeVariable", "inputs": {"variables": [{"name": "v", "type": "string",
                                                               "value": "@body('Get_secret')"}]}}
_RESPONSE = {"type": "Response", "kind": "Http", "inputs": {"statusCode": 200, "body": "@variables('v')"}}
_SECURED = {"runtimeConfiguration": {"secureData": {"properties": ["inputs", "outputs"]}}}
REALISTIC = [_KV, _HTTP, _COMPOSE, _VAR, _RESPONSE, {**_KV, **_SECURED}, {**_COMPOSE, **_SECURED},
             {"type": "Scope", "actions": {"Get_secret": _KV, "HTTP": _HTTP}},
             {"type": "If", "expression": {}, "actions": {"Compose": _COMPOSE}, "else": {"actions": {"HTTP": _HTTP}}},
             {"type": "Switch", "cases": {"A": {"actions": {"Set_v": _VAR}}}, "default": {"actions": {"R": _RESPONSE}}},
             {"type": "Foreach", "foreach": "@body('Get_secret')", "actions": {"HTTP": _HTTP}}]
_PARTS = [("type",), ("kind",), ("inputs",), ("runAfter",), ("runtimeConfiguration",), ("actions",), ("else",),
          ("cases",), ("default",), ("foreach",), ("inputs", "host"), ("inputs", "uri"), ("inputs", "headers"),
          ("inputs", "authentication"), ("inputs", "variables"), ("runtimeConfiguration", "secureData"),
          ("runtimeConfiguration", "secureData", "properties"), ("else", "actions"), ("cases", "A"),
          ("actions", "HTTP"), ("actions", "Get_secret", "inputs")]


def _mutate(node: dict, changes: list) -> dict:
    out = copy.deepcopy(node)
    for part, value in changes:
        cur = out
        for key in part[:-1]:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if isinstance(cur, dict):
            cur[part[-1]] = value
    return out


realistic = st.builds(_mutate, st.sampled_from(REALISTIC),
                      st.lists(st.tuples(st.sampled_from(_PARTS), anything), max_size=3))
odd_actions = st.recursive(st.dictionaries(odd_names, realistic | realistic | maybe(odd_node(anything)), max_size=3),
                           lambda ch: st.dictionaries(odd_names, realistic | maybe(odd_node(maybe(ch))), max_size=3),
                           max_leaves=6)
# `actions` always present: a definition-shaped document, whatever its parts
odd_definitions = st.fixed_dictionaries({"actions": st.one_of(odd_actions, odd_actions, odd_actions, anything)}, optional={
    "triggers": maybe(st.dictionaries(odd_names, maybe(odd_node(anything)), max_size=2)),
    "parameters": maybe(st.dictionaries(NAMES, maybe(st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["securestring", "secureobject"]))}, optional={"defaultValue": anything})),
        max_size=2)),
    "$schema": st.text(max_size=4)})


# Well-formed definitions: every documented container has its documented type (the free-form
# contents of `inputs` and `foreach` are still anything).
good_secure = st.fixed_dictionaries({}, optional={"secureData": st.fixed_dictionaries({}, optional={
    "properties": st.lists(st.sampled_from(["inputs", "outputs"]), max_size=2)})})
good_fields = {"kind": st.sampled_from(["Button", "Http"]), "inputs": inputs_ok,
               "runAfter": st.dictionaries(NAMES, st.lists(st.just("Succeeded"), max_size=2), max_size=2),
               "runtimeConfiguration": good_secure}


def good_node(children):
    branch = st.fixed_dictionaries({}, optional={"actions": children})
    return st.fixed_dictionaries({"type": TYPES}, optional={
        **good_fields, "actions": children, "else": branch, "default": branch,
        "cases": st.dictionaries(NAMES, branch, max_size=2), "foreach": anything})


good_actions = st.recursive(st.dictionaries(NAMES, good_node(st.just({})), max_size=3),
                            lambda ch: st.dictionaries(NAMES, good_node(ch), max_size=3), max_leaves=6)
good_triggers = st.dictionaries(NAMES, st.fixed_dictionaries({"type": TYPES}, optional=good_fields), max_size=1)
good_definitions = st.fixed_dictionaries({"triggers": good_triggers, "actions": good_actions})


# -- an independent map of the documented containers (the module docstring's table) -----------------

_KIND = {dict: "object", list: "array", str: "string"}


def _seg(name: str) -> str:
    return "." + name if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name) else f"['{name}']"


def _node_positions(node: dict, path: str, nested: bool = True):
    for key, kind in (("type", str), ("kind", str), ("runAfter", dict), ("runtimeConfiguration", dict),
                      ("actions", dict), ("else", dict), ("default", dict), ("cases", dict)):
        if key in node and (nested or key not in ("actions", "else", "default", "cases")):
            yield f"{path}.{key}", node, key, node[key], kind
    if "inputs" in node and str(node.get("type", "")).lower() != "compose":
        yield f"{path}.inputs", node, "inputs", node["inputs"], dict
    if isinstance(node.get("runAfter"), dict):
        for name, states in node["runAfter"].items():
            if isinstance(name, str):
                yield f"{path}.runAfter{_seg(name)}", node["runAfter"], name, states, list
    rc = node.get("runtimeConfiguration")
    if isinstance(rc, dict) and "secureData" in rc:
        yield f"{path}.runtimeConfiguration.secureData", rc, "secureData", rc["secureData"], dict
        sd = rc["secureData"]
        if isinstance(sd, dict) and "properties" in sd:
            yield f"{path}.runtimeConfiguration.secureData.properties", sd, "properties", sd["properties"], list
    if not nested:  # triggers have no nested actions
        return
    for branch in ("else", "default"):
        if isinstance(node.get(branch), dict) and "actions" in node[branch]:
            yield f"{path}.{branch}.actions", node[branch], "actions", node[branch]["actions"], dict
            yield from _members(node[branch]["actions"], f"{path}.{branch}.actions")
    if isinstance(node.get("cases"), dict):
        for cname, case in node["cases"].items():
            if not isinstance(cname, str):
                continue  # a name that is not a string is a problem of its own (see the explicit tests)
            cpath = f"{path}.cases{_seg(cname)}"
            yield cpath, node["cases"], cname, case, dict
            if isinstance(case, dict) and "actions" in case:
                yield f"{cpath}.actions", case, "actions", case["actions"], dict
                yield from _members(case["actions"], f"{cpath}.actions")
    if isinstance(node.get("actions"), dict):
        yield from _members(node["actions"], f"{path}.actions")


def _members(container, base: str, nested: bool = True):
    if not isinstance(container, dict):
        return
    for name, node in container.items():
        if not isinstance(name, str):
            continue  # a name that is not a string is a problem of its own (see the explicit tests)
        yield f"{base}{_seg(name)}", container, name, node, dict
        if isinstance(node, dict):
            yield from _node_positions(node, f"{base}{_seg(name)}", nested)


def _positions(d: dict):
    """(path, parent, key, value, documented type) of every documented container in a definition."""
    for key in ("triggers", "actions"):
        if key in d:
            yield f"$.{key}", d, key, d[key], dict
            yield from _members(d[key], f"$.{key}", nested=key == "actions")


def _wrong_value(kind: type):
    return anything.filter(lambda v: not isinstance(v, kind))


# -- the readers, all of them --------------------------------------------------------------------------

def read_everything(d) -> dict:
    """Every definition reader's answer (for a definition-shaped `d`, analyze_definition included)."""
    names = [n for n, _node in defn.iter_actions(d)] + ["nope", "Get secret"]
    out = {
        "iter_actions": names, "action_types": defn.action_types(d), "trigger_type": defn.trigger_type(d),
        "connectors": defn.connectors(d), "secured_sides": defn.secured_sides(d),
        "secret_sources": secret_sources(d),
        "nodes": [(n.name, n.path) for n in defn.nodes(d)],
        "findings": analyze_definition(d, engine=None),
        "explain": [explain(d, n, side) for n in names + list(defn.action_types(d)) for side in SIDES],
        "visible": [is_visible(d, n, side) for n in names for side in SIDES],
    }
    assert isinstance(definition_hash(d), str) and len(definition_hash(d)) == 64
    return out


@pytest.mark.fuzz
@FUZZ
@given(d=odd_definitions)
def test_fuzz_definition_readers_never_raise(d):
    read_everything(d)
    problems = defn.problems(d)
    assert isinstance(problems, list) and len(problems) <= defn.MAX_PROBLEMS
    assert all(isinstance(p, str) and p.startswith("$") for p in problems)
    # the documented parts that are not of their type are all among the problems (up to the cap)
    wrong = [path for path, _p, _k, value, kind in _positions(d) if not isinstance(value, kind)]
    if wrong:
        assert problems


@pytest.mark.fuzz
@FUZZ
@given(d=odd_definitions, engine_on=st.booleans())
def test_fuzz_analyze_with_the_engine_and_explain_with_a_value_never_raise(engine, d, engine_on):
    assert isinstance(analyze_definition(d, engine=engine if engine_on else None, key=b"k"), list)
    for name, _node in defn.iter_actions(d):
        explain(d, name, "action_inputs", value="Fake-Literal-Pa55word-991")


@pytest.mark.fuzz
@FUZZ
@given(root=anything)
def test_fuzz_readers_of_any_json_root_never_raise(root):
    """Not even a definition (or one of the odd dicts `anything` draws): the readers never raise; a
    root that is not an object is read as an empty definition, and problems() says why."""
    answers = (defn.action_types(root), defn.trigger_type(root), defn.connectors(root), defn.secured_sides(root),
               secret_sources(root), explain(root, "x", "action_inputs"))
    assert is_visible(root, "x", "action_outputs") is True  # unknown actions are assumed visible
    assert len(definition_hash(root)) == 64
    if not isinstance(root, dict):
        assert answers == ({}, None, [], {}, {}, None)
        assert defn.problems(root) == [f"$ ({'null' if root is None else type(root).__name__}, expected object)"]


@pytest.mark.fuzz
@FUZZ
@given(d=good_definitions, data=st.data())
def test_fuzz_one_wrong_container_is_a_problem_and_is_ignored(d, data):
    assert defn.problems(d) == []
    positions = list(_positions(d))
    path, parent, key, _value, kind = data.draw(st.sampled_from(positions))
    bad = data.draw(_wrong_value(kind))
    corrupted, removed = copy.deepcopy(d), copy.deepcopy(d)
    _locate(corrupted, path, key)[key] = bad
    del _locate(removed, path, key)[key]
    problems = defn.problems(corrupted)
    assert any(p.startswith(f"{path} (") for p in problems), (path, problems)
    # ignored: the readers answer as if the part were not there
    assert read_everything(corrupted) == read_everything(removed)


def _locate(d: dict, path: str, key):
    """The container that holds `key` at `path`, found again in a copy of the definition."""
    for p, parent, k, _v, _kind in _positions(d):
        if p == path and k == key:
            return parent
    raise AssertionError(path)


@pytest.fixture(scope="module")
def engine():
    from detectors.engine import Engine
    e = Engine()
    with e.session():
        yield e
