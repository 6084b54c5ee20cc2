"""No exception escapes engine.scan, bounds hold, and no secret lands in Skip/Drop text."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from detectors.base import fingerprint, preview
from detectors.engine import Engine, Limits


def test_odd_inputs_never_raise(engine):
    deep = cur = {}
    for _ in range(10_000):
        cur["a"] = {}
        cur = cur["a"]
    lst = []
    for _ in range(20_000):
        lst = [lst]
    odd = [None, 0, 1.5, True, b"", b"\xff\xfe\x00", bytes(range(256)) * 100, "", "x", "[" * 50_000,
           "{" + '"a":' * 10, deep, lst, {"a": float("nan")}, {1: "int key value 12345678"}, ("tuple", "value"),
           "A" * 3_000_000, {"s": "Basic !!!notbase64"}, {"$content": "@@@@"}, {"$content": "QUJD"},
           {"x": "<a><b>unclosed"}, {"x": "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"},
           {"u": "https://[::1/?a=%zz&b"}, {"k": "a=1&b"}, memoryview(b'{"a":"b"}'), object()]
    for body in odd:
        res = engine.scan(body)
        # scan() never raises (it turns a crash into a "detector error" skip), so that skip is the
        # failure to look for; none of these bodies holds a secret either
        assert [s.reason for s in res.skipped if s.reason == "detector error"] == [], repr(body)[:80]
        assert res.hits == [], repr(body)[:80]


def test_huge_leaf_windows_find_secret_near_end(engine):
    big = "lorem ipsum " * 200_000 + " ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"
    res = engine.scan({"log": big})
    assert any(h.rule_id == "github-token" for h in res.hits)


def test_budget_exceeded_records_path():
    eng = Engine(limits=Limits(max_work_chars=1000))
    with eng.session():
        res = eng.scan({"a": "x" * 600, "b": "y" * 600, "c": "z"})
    skips = [s for s in res.skipped if s.reason == "budget exceeded"]
    assert skips and skips[0].json_path == "$.b"


def test_detector_error_is_a_skip_without_secret(monkeypatch):
    eng = Engine()

    def boom(*a, **k):
        raise ValueError("ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu leaked")

    monkeypatch.setattr(eng, "_leaf", boom)
    with eng.session():
        res = eng.scan({"t": "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"})
    assert res.skipped[0].reason == "detector error"
    assert "ghp_" not in repr(res)


def test_scan_outside_session_works():
    res = Engine().scan({"password": "Winter2026!"})
    assert [h.rule_id for h in res.hits] == ["secret-keyword"]


def test_scan_definition_side(engine):
    res = engine.scan_definition({"actions": {"HTTP": {"inputs": {"headers": {"x-api-key": "k7Hq2Wm9Zp4Rt6Yv1Bn8"}}}}})
    assert res.hits and res.hits[0].side == "definition"
    assert res.hits[0].json_path == "$.actions.HTTP.inputs.headers['x-api-key']"


def test_no_secret_in_repr_skips_drops(engine):
    secret = "Zx81kLp0QwErTy62Qm7Rt2Zx9Lp4Wn1V"
    res = engine.scan({"headers": {"api-key": secret}, "v": secret, "id": "d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"})
    assert res.hits
    text = repr(res) + repr(res.skipped) + repr(res.dropped)
    assert secret not in text and secret[:8] not in text
    assert preview(secret) == "Zx81…(32)"
    assert len(fingerprint(b"k", secret)) == 64


def test_hits_carry_path_side_decoding(engine):
    res = engine.scan({"body": json.dumps({"client_secret": "Vb3nM8qW1eR6tY9u"})}, side="action_inputs")
    h = [h for h in res.hits if h.rule_id == "client-secret-body"][0]
    assert (h.json_path, h.side, h.decoding) == ("$.body<json>.client_secret", "action_inputs", "json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_fuzz_never_raises(engine, body):
    res = engine.scan(body)
    assert not [s for s in res.skipped if s.reason == "detector error"]
    res = engine.scan(json.dumps(body).encode())
    assert not [s for s in res.skipped if s.reason == "detector error"]
