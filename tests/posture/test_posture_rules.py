"""Posture rules: every rule's own examples, the propagation model, explain / is_visible."""
from __future__ import annotations

import json

import pytest

from detectors.base import Hit, ScanResult
from detectors.engine import Engine
from scanner.posture import model
from scanner.posture.analyze import analyze_definition
from scanner.posture.base import SEVERITIES
from scanner.posture.canonical import definition_hash
from scanner.posture.explain import explain
from scanner.posture.rules import RULES
from scanner.posture.rules.PA007 import analyze_environment, secret_like_name
from scanner.posture.solution import ENV_TYPE_SECRET, parse_env_var_definition_xml, parse_env_var_values_json
from scanner.posture.taint import is_visible
from scanner.report.sarif import posture_rule_descriptor

from posture_fixtures import KV_OPENAPI, PLANTED, RISKY, SAFE, compose, defn, http, secured

CASES = [(rid, kind, i) for rid, r in RULES.items() for kind in ("positive", "negative")
         for i in range(len(r.examples.get(kind, [])))]


def run_example(rule_id: str, example: dict) -> list[tuple[str, str]]:
    """(rule id, message or remediation) of what one of a rule's examples yields: PA008's examples are
    questions to explain(), PA007's the arguments of analyze_environment, the others definitions."""
    if "explain" in example:
        e = example["explain"]
        cause = explain(e["definition"], e["action"], e["side"])
        return [] if cause is None else [(cause.rule_id, cause.remediation)]
    if rule_id == "PA007":
        found = analyze_environment(example.get("definitions", ()), example.get("values"), example.get("settings"),
                                    engine=None)
    else:
        found = analyze_definition(example, engine=None)
    return [(f.rule_id, f.message) for f in found]


@pytest.mark.parametrize("rule_id,kind,index", CASES, ids=[f"{r}-{k}-{i}" for r, k, i in CASES])
def test_rule_examples(rule_id, kind, index):
    """Each rule file's examples (scanner/posture/rules/PA00x.py): every positive one yields that rule's
    finding, no negative one does."""
    example = RULES[rule_id].examples[kind][index]
    hits = [msg for rid, msg in run_example(rule_id, example) if rid == rule_id]
    if kind == "positive":
        assert hits, f"{rule_id} positive example {index} not detected"
    else:
        assert not hits, f"{rule_id} negative example {index} flagged: {hits}"


def test_rules_metadata():
    assert sorted(RULES) == [f"PA00{i}" for i in range(1, 9)]
    for rid, r in RULES.items():
        assert r.id == rid and r.severity in SEVERITIES
        assert r.title and r.help and r.remediation and r.name
        assert r.examples.get("positive") and r.examples.get("negative"), rid
        sd = posture_rule_descriptor(r)
        assert sd["help"]["text"] and sd["help"]["markdown"] and sd["defaultConfiguration"]["level"]


def _ids(findings, action=None):
    return sorted({f.rule_id for f in findings if action is None or f.action == action})


# --- propagation -----------------------------------------------------------------------------------

def test_secured_source_direct_consumer_hidden_next_hop_visible():
    d = defn({
        "Get_secret": secured(KV_OPENAPI, "outputs"),
        "Build_header": http(headers={"x-api-key": "@{body('Get_secret')?['value']}"}),
        "Keep": compose("@body('Get_secret')?['value']"),
        "Send": http(body="@outputs('Keep')"),
    })
    assert not is_visible(d, "Get_secret", "outputs")
    assert not is_visible(d, "Build_header", "inputs")  # explicit reference to secured outputs
    assert is_visible(d, "Build_header", "outputs")  # propagation hides inputs only
    assert not is_visible(d, "Keep", "inputs") and not is_visible(d, "Keep", "outputs")  # Compose: both
    assert is_visible(d, "Send", "inputs")  # hidden Compose outputs don't propagate
    fs = analyze_definition(d, engine=None)
    assert _ids(fs, "Send") == ["PA002"]
    assert _ids(fs, "Build_header") == [] and _ids(fs, "Keep") == [] and _ids(fs, "Get_secret") == []


def test_compose_secure_inputs_hides_outputs():
    d = defn({"Get_secret": KV_OPENAPI,
              "Keep": secured(compose("@body('Get_secret')?['value']"), "inputs"),
              "Use": http(body="@{outputs('Keep')}")})
    assert not is_visible(d, "Keep", "inputs") and not is_visible(d, "Keep", "outputs")
    assert is_visible(d, "Use", "inputs")
    fs = analyze_definition(d, engine=None)
    assert _ids(fs, "Keep") == [] and _ids(fs, "Use") == ["PA002"] and _ids(fs, "Get_secret") == ["PA001"]


def test_secure_inputs_on_ordinary_action_propagates_one_hop():
    d = defn({"Get_secret": KV_OPENAPI,
              "Call": secured(http(body="@{body('Get_secret')?['value']}"), "inputs"),
              "Next": http(body="@{body('Call')}")})
    assert not is_visible(d, "Call", "inputs") and is_visible(d, "Call", "outputs")
    assert not is_visible(d, "Next", "inputs")  # explicit use of an action with Secure Inputs on


def test_variables_cannot_be_secured():
    init = {"type": "InitializeVariable", "runAfter": {},
            "inputs": {"variables": [{"name": "token", "type": "string", "value": "@body('Get_secret')?['value']"}]},
            "runtimeConfiguration": {"secureData": {"properties": ["inputs", "outputs"]}}}
    d = defn({"Get_secret": secured(KV_OPENAPI, "outputs"), "Init_token": init,
              "Set_copy": {"type": "SetVariable", "runAfter": {}, "inputs": {"name": "copy", "value": "@variables('token')"}},
              "Append": {"type": "AppendToStringVariable", "runAfter": {}, "inputs": {"name": "log", "value": "@{variables('copy')}"}},
              "Call": http(headers={"x-api-key": "@{variables('token')}"})})
    assert is_visible(d, "Init_token", "outputs")  # secureData on a variable action has no effect on outputs
    assert is_visible(d, "Set_copy", "inputs") and is_visible(d, "Set_copy", "outputs")
    assert is_visible(d, "Call", "inputs")  # variables('…') is not an explicit reference to the source
    fs = analyze_definition(d, engine=None)
    assert _ids(fs, "Set_copy") == ["PA003"] and _ids(fs, "Append") == ["PA003"]
    assert _ids(fs, "Call") == ["PA002"]
    assert next(f for f in fs if f.action == "Call").sources == ("Get_secret",)


def test_nested_containers_and_loops_and_interpolation():
    d = defn({
        "Get_secret": KV_OPENAPI,
        "Loop": {"type": "Foreach", "foreach": "@body('Get_secret')?['items']", "runAfter": {},
                 "actions": {"Inner": http(body={"v": "@{items('Loop')}"})}},
        "Wait_until": {"type": "Until", "expression": "@equals(1,1)", "runAfter": {}, "limit": {"count": 1},
                       "actions": {"Poll": http(body='@{body("Get_secret")}')}},
        "Scope_2": {"type": "Scope", "runAfter": {}, "actions": {
            "Sw": {"type": "Switch", "expression": "x", "runAfter": {}, "cases": {},
                   "default": {"actions": {"Deep": compose("x @{actions('Get_secret')?['outputs']} y")}}}}},
        "After": http(body="@{result('Scope_2')}"),
    })
    names = {n.name for n in model.nodes(d)}
    assert {"Inner", "Poll", "Deep", "manual"} <= names
    fs = analyze_definition(d, engine=None)
    assert _ids(fs, "Inner") == ["PA002"]
    assert _ids(fs, "Poll") == ["PA002"]
    assert _ids(fs, "Deep") == ["PA003"]
    assert _ids(fs, "After") == ["PA002"]  # result() of a scope holding tainted outputs
    deep = next(f for f in fs if f.action == "Deep")
    assert deep.json_path == "$.actions.Scope_2.actions.Sw.default.actions.Deep.inputs"
    assert deep.logical_name == "actions.Scope_2.actions.Sw.default.actions.Deep.inputs"


def test_secured_trigger_hides_consumers():
    d = defn({"Use": http(body="@triggerBody()")},
             trigger={"type": "Request", "kind": "Http", "inputs": {},
                      "runtimeConfiguration": {"secureData": {"properties": ["outputs"]}}})
    assert not is_visible(d, "manual", "trigger_outputs")
    assert not is_visible(d, "Use", "action_inputs")


def test_authorization_header_is_never_visible():
    d = defn({"Get_secret": KV_OPENAPI,
              "Call": http(headers={"Authorization": "Bearer @{body('Get_secret')?['value']}"})})
    assert is_visible(d, "Call", "inputs")
    assert not is_visible(d, "Call", "inputs", json_path="$.headers.Authorization")
    assert _ids(analyze_definition(d, engine=None), "Call") == []


def test_token_endpoint_and_vault_over_http_are_sources():
    d = defn({"Token": http(uri="https://login.microsoftonline.com/@{parameters('tenant')}/oauth2/token",
                            body="grant_type=client_credentials"),
              "Vault": {"type": "Http", "runAfter": {},
                        "inputs": {"method": "GET", "uri": "https://kv-ops.vault.azure.net/secrets/api/?api-version=7.4",
                                   "authentication": {"type": "ManagedServiceIdentity"}}},
              "Use": http(headers={"x-token": "@{body('Token')?['access_token']}"})})
    fs = analyze_definition(d, engine=None)
    assert _ids(fs, "Token") == ["PA001"] and _ids(fs, "Vault") == ["PA001"] and _ids(fs, "Use") == ["PA002"]


# --- the risky fixture --------------------------------------------------------------------------------

def test_risky_fixture_all_findings_and_no_secret_values():
    fs = analyze_definition(RISKY, flow_name="Risky", engine=None, key=b"k")
    got = {(f.rule_id, f.action) for f in fs}
    assert {("PA001", "Get_secret"), ("PA002", "HTTP_call_partner"), ("PA003", "Keep_key"),
            ("PA005", "Call_basic"), ("PA005", "Call_apim"), ("PA004", "Call_function")} <= got
    dump = json.dumps([f.to_dict() for f in fs]) + repr(fs)
    for v in PLANTED.values():
        assert v not in dump
    basic = next(f for f in fs if f.action == "Call_basic")
    assert basic.preview == "Fake…(27)" and len(basic.fingerprint) == 64 and basic.flow == "Risky"
    assert basic.json_path.endswith(".inputs.authentication.password")
    fn = next(f for f in fs if f.action == "Call_function")
    assert fn.json_path == "$.actions.Try.actions.Route.default.actions.Call_function.inputs.uri?code"
    apim = next(f for f in fs if f.action == "Call_apim")
    assert apim.json_path.endswith(".inputs.headers['Ocp-Apim-Subscription-Key']")
    for f in fs:
        assert f.message and "\n" not in f.message and f.remediation and f.action in f.message + f.remediation


def test_safe_fixture_clean():
    assert analyze_definition(SAFE, engine=None) == []


def test_wrapped_definition_accepted():
    fs = analyze_definition({"properties": {"definition": RISKY}}, engine=None)
    assert any(f.rule_id == "PA001" for f in fs)
    with pytest.raises(ValueError):
        analyze_definition({"foo": 1}, engine=None)


def test_definition_hash_canonical():
    a = {"actions": {"b": 1, "a": [1, 2]}, "triggers": {}}
    b = {"triggers": {}, "actions": {"a": [1, 2], "b": 1}}
    assert definition_hash(a) == definition_hash(b)
    import hashlib
    assert definition_hash(a) == hashlib.sha256(
        json.dumps(a, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert definition_hash(a) != definition_hash({"actions": {}, "triggers": {}})


# --- explain ------------------------------------------------------------------------------------------

def test_explain_causes():
    d = defn({"Get_secret": KV_OPENAPI,
              "HTTP_call_partner": http(body={"k": "@{body('Get_secret')?['value']}"}),
              "Keep": compose("@body('Get_secret')?['value']"),
              "Child": {"type": "Workflow", "runAfter": {}, "inputs": {"host": {"workflowReferenceName": "x"},
                                                                          "body": "@outputs('Keep')"}},
              "Query": http(uri="https://x.example.com/a?key=@{outputs('Keep')}"),
              "Basic": http(auth={"type": "Basic", "username": "u", "password": PLANTED["basic_password"]}),
              "Plain": http()})
    c = explain(d, "Get_secret", "action_outputs")
    assert (c.rule_id, c.action) == ("PA001", "Get_secret") and "Secure Outputs" in c.remediation
    c = explain(d, "HTTP_call_partner", "action_inputs")
    assert (c.rule_id, c.action, c.sources) == ("PA002", "HTTP_call_partner", ("Get_secret",))
    assert c.remediation == "Turn on Secure Inputs on 'HTTP_call_partner'"
    assert explain(d, "Keep", "action_outputs").rule_id == "PA003"
    assert explain(d, "Keep", "action_inputs").rule_id == "PA003"
    assert explain(d, "Child", "action_inputs").rule_id == "PA006"
    assert explain(d, "Query", "action_inputs").rule_id == "PA004"
    assert explain(d, "Basic", "action_inputs", value=PLANTED["basic_password"]).rule_id == "PA005"
    assert explain(d, "Basic", "action_inputs").rule_id == "PA005"
    # nothing in the definition explains a secret here: it came from outside, and the side is recorded
    assert explain(d, "Plain", "action_inputs").rule_id == "PA008"
    assert explain(d, "HTTP_call_partner", "action_outputs").rule_id == "PA008"  # the partner's response
    d2 = json.loads(json.dumps(d))
    d2["actions"]["Plain"] = secured(d2["actions"]["Plain"], "inputs")
    assert explain(d2, "Plain", "action_inputs") is None
    assert explain(d, "No_such_action", "action_inputs") is None


def test_is_visible_unknown_action_is_visible():
    assert is_visible(SAFE, "Nope", "action_outputs")
    with pytest.raises(ValueError):
        is_visible(SAFE, "Get_secret", "sideways")


# --- the detection engine -----------------------------------------------------------------------------

class FakeEngine:
    """Flags any literal string starting with 'sk_fake_' (engine API as in detectors.base)."""

    def __init__(self):
        self.sessions = 0
        self.bodies = []

    def session(self):
        import contextlib
        self.sessions += 1
        return contextlib.nullcontext()

    def scan(self, body, side="definition"):
        self.bodies.append(body)
        hits = []

        def walk(o, p):
            if isinstance(o, str) and "sk_fake_" in o:
                i = o.index("sk_fake_")
                hits.append(Hit("fake-key", "pattern", o[i:i + 30], p, side, "high"))
            elif isinstance(o, dict):
                for k, v in o.items():
                    walk(v, f"{p}.{k}")
            elif isinstance(o, list):
                for i, v in enumerate(o):
                    walk(v, f"{p}[{i}]")
        walk(body, "$")
        return ScanResult(hits=hits)


def test_engine_hits_become_pa005_without_values():
    secret = "sk_fake_" + "Q" * 22
    d = defn({"Call": http(body={"token": secret, "expr": "@{concat('sk_fake_', 'x')}"}),
              "Loop": {"type": "Foreach", "foreach": "@createArray(1)", "runAfter": {},
                       "actions": {"Inner": compose({"note": "key " + secret})}}})
    eng = FakeEngine()
    fs = analyze_definition(d, engine=eng, key=b"k")
    pa5 = [f for f in fs if f.rule_id == "PA005"]
    assert {f.action for f in pa5} == {"Call", "Inner"}
    call = next(f for f in pa5 if f.action == "Call")
    assert call.json_path == "$.actions.Call.inputs.body.token" and call.severity == "high"
    assert secret not in repr(fs) and secret not in json.dumps([f.to_dict() for f in fs])
    assert eng.sessions == 1
    # expressions are blanked before the engine sees them; nested actions are scanned on their own
    loop_body = next(b for b in eng.bodies if "foreach" in b)
    assert "actions" not in loop_body and loop_body["foreach"] == ""


def test_engine_failure_does_not_hide_posture_findings():
    class Broken:
        def scan(self, body, side="definition"):
            raise RuntimeError("boom")
    fs = analyze_definition(RISKY, engine=Broken())
    assert any(f.rule_id == "PA001" for f in fs)


def test_real_engine():
    fs = analyze_definition(RISKY, engine=Engine(), key=b"k")
    assert any(f.rule_id == "PA001" for f in fs)
    dump = json.dumps([f.to_dict() for f in fs])
    for v in PLANTED.values():
        assert v not in dump


# --- environment variables ----------------------------------------------------------------------------

def test_env_var_xml_parse_and_rules():
    from posture_fixtures import ENV_DEF_SECRET_XML, ENV_DEF_XML
    d = parse_env_var_definition_xml(ENV_DEF_XML.format(value=PLANTED["env_password"]).encode())
    assert (d.schemaname, d.displayname, d.type) == ("cr6e_ApiPassword", "Api Password", "100000000")
    s = parse_env_var_definition_xml(ENV_DEF_SECRET_XML)
    assert s.type == ENV_TYPE_SECRET
    fs = analyze_environment([d, s], engine=None, key=b"k")
    assert [(f.rule_id, f.action, f.severity) for f in fs] == [("PA007", "cr6e_ApiPassword", "high")]
    assert PLANTED["env_password"] not in repr(fs)
    # a settings file giving the Secret-typed variable a literal value
    fs = analyze_environment([s], settings={"EnvironmentVariables": [
        {"SchemaName": "cr6e_PartnerKey", "Value": "not-a-key-vault-reference-123"}]}, engine=None)
    assert [(f.rule_id, f.json_path) for f in fs] == [("PA007", "$.EnvironmentVariables[0].Value")]
    with pytest.raises(ValueError):
        parse_env_var_definition_xml('<!DOCTYPE x [<!ENTITY a "b">]><environmentvariabledefinition/>')


def test_env_var_values_json_shapes():
    one = {"environmentvariablevalues": {"environmentvariablevalue": {"schemaname": "a", "value": "1"}}}
    many = {"environmentvariablevalues": {"environmentvariablevalue": [{"schemaname": "a", "value": "1"},
                                                                       {"schemaname": "b", "value": "2"}]}}
    assert parse_env_var_values_json(one) == {"a": "1"}
    assert parse_env_var_values_json(many) == {"a": "1", "b": "2"}


@pytest.mark.parametrize("name,expected", [
    ("cr6e_ApiPassword", True), ("cr6e_PartnerToken", True), ("cr6e_StorageKey", True),
    ("cr6e_SqlConnectionString", True), ("new_DBPwd", True), ("cr6e_SiteUrl", False),
    ("cr6e_KeyVaultName", False), ("cr6e_SecretName", False), ("cr6e_TokenEndpoint", False),
    ("cr6e_Monkey", False)])
def test_secret_like_names(name, expected):
    assert secret_like_name(name) is expected


# --- robustness: arbitrary shapes never raise ----------------------------------------------------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(
        ["@body('A')", "@{outputs('B')}", "x @{variables('v')} y", "@@lit", "@", "@{", "@{'}'}", "Basic abc",
         "https://h/x?code=abcdefgh12345678", "InitializeVariable", "Compose", "Http", "Scope", "Foreach"]) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "inputs", "actions", "else", "cases", "default", "runtimeConfiguration",
                         "secureData", "properties", "headers", "authentication", "uri", "queries", "foreach",
                         "variables", "name", "value", "host", "password", "A", "B"]), c, max_size=5),
    max_leaves=25)


@settings(max_examples=int(__import__("os").environ.get("FLOWLEAKS_FUZZ_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.dictionaries(st.sampled_from(["A", "B", "C", "Get_secret"]), _json, max_size=4))
def test_fuzz_odd_definitions_never_raise(actions):
    d = {"triggers": {"manual": {"type": "Request"}}, "actions": actions}
    fs = analyze_definition(d, engine=None)
    for name in list(actions) + ["manual"]:
        is_visible(d, name, "inputs")
        explain(d, name, "outputs")
    assert all(f.rule_id in RULES for f in fs)
