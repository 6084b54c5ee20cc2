"""One odd definition no longer aborts a scan (issue 9, item 5): each malformed shape seen from the API
is read around — the rest of the definition still gives its facts and findings — and named by
`definition.problems()` with its JSON path."""
from __future__ import annotations

import copy
import hashlib
import json

import pytest

from scanner.posture import model as defn
from scanner.posture.analyze import analyze_definition
from scanner.posture.canonical import canonical_json, definition_hash
from scanner.posture.explain import explain
from scanner.posture.rules import RULES
from scanner.posture.sources import secret_sources
from scanner.posture.taint import analysis
from tests.posture.posture_fixtures import KV_OPENAPI

TRIGGER = {"manual": {"type": "Request", "kind": "Button", "inputs": {}}}


def flow(**actions) -> dict:
    """A definition whose Key Vault source `Get_secret` is unsecured (PA001), plus `actions`."""
    return {"triggers": copy.deepcopy(TRIGGER), "actions": {"Get_secret": copy.deepcopy(KV_OPENAPI), **actions}}


def read_all(d) -> dict:
    """Every reader; none of them may raise."""
    names = [n for n, _ in defn.iter_actions(d)]
    return {"types": defn.action_types(d), "trigger": defn.trigger_type(d), "connectors": defn.connectors(d),
            "secured": defn.secured_sides(d), "sources": secret_sources(d),
            "findings": analyze_definition(d, engine=None),
            "explained": {n: explain(d, n, "action_outputs") for n in names},
            "hash": definition_hash(d), "names": names}


def pa001_still_found(d) -> bool:
    return any(f.rule_id == "PA001" and f.action == "Get_secret" for f in analyze_definition(d, engine=None))


# (name, definition, the problem reported) — the shapes named in issue 9
SHAPES = [
    ("triggers as a list", {**flow(), "triggers": [TRIGGER["manual"]]}, "$.triggers (list, expected object)"),
    ("else as a string", flow(Cond={"type": "If", "expression": {}, "actions": {}, "else": "oops"}),
     "$.actions.Cond.else (str, expected object)"),
    ("runtimeConfiguration as a string", flow(HTTP={"type": "Http", "inputs": {"uri": "https://x"},
                                                   "runtimeConfiguration": "secure"}),
     "$.actions.HTTP.runtimeConfiguration (str, expected object)"),
    ("cases as a list", flow(Sw={"type": "Switch", "cases": [{"actions": {}}]}),
     "$.actions.Sw.cases (list, expected object)"),
    ("inputs as a string", flow(HTTP={"type": "Http", "inputs": "@body('Get_secret')"}),
     "$.actions.HTTP.inputs (str, expected object)"),
    ("runAfter as a list", flow(HTTP={"type": "Http", "inputs": {}, "runAfter": ["Get_secret"]}),
     "$.actions.HTTP.runAfter (list, expected object)"),
    ("secureData as a string", flow(HTTP={"type": "Http", "inputs": {},
                                         "runtimeConfiguration": {"secureData": "inputs"}}),
     "$.actions.HTTP.runtimeConfiguration.secureData (str, expected object)"),
    ("properties as a dict", flow(HTTP={"type": "Http", "inputs": {}, "runtimeConfiguration": {
        "secureData": {"properties": {"inputs": True}}}}),
     "$.actions.HTTP.runtimeConfiguration.secureData.properties (dict, expected array)"),
    ("nested actions as a list", flow(Scope_1={"type": "Scope", "actions": [{"type": "Http"}]}),
     "$.actions.Scope_1.actions (list, expected object)"),
    ("an action that is not an object", flow(Broken="Http"), "$.actions.Broken (str, expected object)"),
    ("type as a number", flow(HTTP={"type": 7, "inputs": {}}), "$.actions.HTTP.type (int, expected string)"),
    ("a case that is not an object", flow(Sw={"type": "Switch", "cases": {"A": None}}),
     "$.actions.Sw.cases.A (null, expected object)"),
]
# JSON names are strings; a definition built in Python may have others
SHAPES.append(("a name that is not a string",
               {"triggers": copy.deepcopy(TRIGGER), "actions": {"Get_secret": copy.deepcopy(KV_OPENAPI), 3: {"type": "Http"}}},
               "$.actions (a name is int, expected string)"))


@pytest.mark.parametrize("name, d, problem", SHAPES, ids=[s[0] for s in SHAPES])
def test_odd_shape_is_reported_and_the_rest_is_still_read(name, d, problem):
    assert problem in defn.problems(d)
    read_all(d)
    # the readable rest of the definition is analysed as before: the unsecured source is still found
    assert pa001_still_found(d), name
    assert secret_sources(d) == {"Get_secret": "keyvault"}


def test_actions_null_is_reported_and_the_triggers_are_still_read():
    d = {"triggers": copy.deepcopy(TRIGGER), "actions": None}
    assert defn.problems(d) == ["$.actions (null, expected object)"]
    r = read_all(d)
    assert (r["types"], r["trigger"], r["findings"], r["sources"]) == ({"manual": "Request"}, "Request/Button", [], {})


def test_triggers_as_a_list_and_actions_null_are_analysed_not_rejected():
    """Before: unwrap_definition found no definition and analyze_definition raised ValueError."""
    d = {"triggers": [TRIGGER["manual"]], "actions": None}
    assert analyze_definition(d, engine=None) == []
    assert defn.problems(d) == ["$.triggers (list, expected object)", "$.actions (null, expected object)"]


def test_not_a_definition_is_still_a_value_error():
    """A document with neither triggers nor actions is not a definition: the documented error stays."""
    with pytest.raises(ValueError):
        analyze_definition({"foo": 1}, engine=None)
    assert defn.problems({"foo": 1}) == []  # nothing documented is of the wrong type
    assert defn.problems([1]) == ["$ (list, expected object)"]


def test_secure_data_as_a_string_secures_nothing():
    """An unreadable secureData is ignored: the action counts as unsecured (the safe reading)."""
    d = flow(HTTP={"type": "Http", "inputs": {"body": "@body('Get_secret')"},
                   "runtimeConfiguration": {"secureData": {"properties": "inputs"}}})
    assert defn.secured_sides(d) == {}
    assert "$.actions.HTTP.runtimeConfiguration.secureData.properties (str, expected array)" in defn.problems(d)
    assert any(f.rule_id == "PA002" and f.action == "HTTP" for f in analyze_definition(d, engine=None))


def test_well_formed_fixtures_have_no_problems():
    from tests.posture.posture_fixtures import MEDIUM_ONLY, RISKY, SAFE
    for d in (RISKY, SAFE, MEDIUM_ONLY, *[e for r in RULES.values() for k in ("positive", "negative")
                                          for e in r.examples[k] if "triggers" in e]):
        assert defn.problems(d) == [], d


def _nested_scopes(depth: int) -> dict:
    inner: dict = {"Get_secret": copy.deepcopy(KV_OPENAPI)}
    for i in range(depth):
        inner = {f"Scope_{i}": {"type": "Scope", "actions": inner}}
    return {"triggers": copy.deepcopy(TRIGGER), "actions": inner}


def test_deeply_nested_scopes_are_cut_and_reported():
    d = _nested_scopes(3000)  # deeper than json.dumps and any recursive walk can go
    problems = defn.problems(d)
    assert len(problems) == 1 and problems[0].endswith(f"(actions nested deeper than {defn.MAX_NESTING} levels, not read)")
    r = read_all(d)
    assert len(r["names"]) == defn.MAX_NESTING and r["sources"] == {}
    assert len(r["hash"]) == 64


def test_nesting_within_the_limit_is_read():
    d = _nested_scopes(defn.MAX_NESTING - 1)
    assert defn.problems(d) == [] and secret_sources(d) == {"Get_secret": "keyvault"}
    c = explain(d, "Get_secret", "action_outputs")
    assert c is not None and c.rule_id == "PA001"
    assert "Get_secret" in analysis(d).actions["Scope_0"].children  # result('Scope_0') sees it


def test_problems_are_capped():
    d = {"actions": {f"A{i}": {"type": i} for i in range(100)}}
    problems = defn.problems(d)
    assert len(problems) == defn.MAX_PROBLEMS
    assert problems[0] == "$.actions.A0.type (int, expected string)"
    assert problems[-1] == f"$ ({100 - defn.MAX_PROBLEMS + 1} more problems not listed)"
    assert len(defn.problems(d, limit=5)) == 5


def test_definition_hash_is_unchanged_for_json_and_total_for_the_rest():
    d = flow()
    canonical = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert definition_hash(d) == hashlib.sha256(canonical.encode()).hexdigest()
    assert canonical_json(d) == canonical  # the fallback writes the same text
    mixed = {"actions": {1: "a", "b": 2, None: [1.5, True]}}  # names json.dumps cannot sort
    assert definition_hash(mixed) == definition_hash(copy.deepcopy(mixed))
    assert definition_hash(mixed) != definition_hash({"actions": {1: "a", "b": 3, None: [1.5, True]}})


def test_secure_object_default_of_mixed_names_is_still_reported():
    d = flow()
    d["parameters"] = {"conn": {"type": "secureobject", "defaultValue": {1: "x", "k": "Fake-Default-Secret-77"}}}
    fs = [f for f in analyze_definition(d, engine=None, key=b"k") if f.action == "parameters.conn"]
    assert [f.rule_id for f in fs] == ["PA005"] and fs[0].fingerprint
    assert "Fake-Default-Secret-77" not in repr(fs)


def test_odd_type_does_not_reach_a_message():
    """A field that is not text is read as absent, never str()-ed into a message."""
    d = flow(Keep={"type": "Compose", "inputs": "@body('Get_secret')"})
    odd = copy.deepcopy(d)
    odd["actions"]["Keep"]["type"] = {"leak": "Fake-Type-Secret-123"}
    odd["actions"]["Get_secret"]["inputs"]["host"]["operationId"] = ["GetSecret"]
    out = repr(analyze_definition(odd, engine=None)) + repr(defn.problems(odd))
    assert "Fake-Type-Secret-123" not in out
    assert secret_sources(odd) == {}  # an operationId that is not text is no Key Vault call
