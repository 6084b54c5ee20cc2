"""Issue 11: one finding per secret occurrence, dotted tokens as one candidate, the confidence floor,
and documentation examples, through the whole engine. (Each filter's own examples run in
test_rules_examples.py.) All secrets here are fake: random characters typed for the tests."""
import pytest

from detectors.base import preview
from detectors.engine import Engine
from detectors.known_values import KnownValues

KEY = b"test-fingerprint-key-0123456789ab"
RND40 = "Tq7Vb3Mc6Hj9Pf4Yd0Sa2Lw5Xn1Zr8Kx2Nm4Qe6W"
RND24 = "Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0"
GH = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"


def found(res):
    return sorted((h.rule_id, h.json_path, h.secret) for h in res.hits)


# -- one finding per occurrence --------------------------------------------------------------------

def test_dotted_token_is_one_candidate_reported_once(engine):
    # three random segments of >= 20 characters joined by dots: one secret, not three entropy rows
    token = "Tq7Vb3Mc6Hj9Pf4Yd0Sa2L.w5Xn1Zr8Kx2Nm4Qe6WaB.Xk29sLq8Wm3Zr7Tn4Yb1Qz"
    assert found(engine.scan({"value": token})) == [("high-entropy", "$.value", token)]


def test_known_value_with_a_random_looking_token_in_it_is_one_finding():
    # a Key Vault value with a symbol: the entropy stage sees the token before the `!`; the known
    # value is the whole string. One leak: one row, the known value (it names the vault secret).
    value = "Q8r2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2Lm4Zq!x#9"
    known = KnownValues(key=KEY)
    known.add_value(value, source="kv-fake/ApiKey")
    eng = Engine(known=known)
    res = eng.scan({"statusCode": 200, "body": {"value": value, "name": "ApiKey"}})
    assert [(h.rule_id, h.json_path, h.known_secret) for h in res.hits] == [
        ("known-value", "$.body.value", "kv-fake/ApiKey")]


def test_known_value_seen_whole_by_entropy_is_one_finding():
    value = "dXsQaq+hLKqYNkos0dP7XU8TfozXufrhp3r6s9hLncY="  # base64 of 32 random bytes
    known = KnownValues(key=KEY)
    known.add_value(value, source="kv-fake/Signing")
    res = Engine(known=known).scan({"body": {"value": value}})
    assert [h.rule_id for h in res.hits] == ["known-value"]


def test_a_password_in_a_connection_string_is_one_finding_by_the_specific_rule(engine):
    # secret-keyword reports the whole value of `password`; the SQL rule reports the password in it
    body = {"password": "Server=tcp:x.database.windows.net,1433;User ID=a;Password=Tr0ub4dor&3xyz;"}
    assert found(engine.scan(body)) == [("sql-connection-string-password", "$.password", "Tr0ub4dor&3xyz")]


def test_distinct_secrets_in_one_string_stay_distinct(engine):
    # containment merges one leak seen twice, never two secrets that sit side by side
    res = engine.scan({"note": f"token {GH}, partner key {RND40}"})
    assert sorted((h.rule_id, h.secret) for h in res.hits) == [("github-token", GH), ("high-entropy", RND40)]


# -- the confidence floor ---------------------------------------------------------------------------

def test_low_confidence_is_a_drop_by_default_and_comes_back_on_request(engine):
    body = {"reference": RND24}  # 24 random characters under a neutral key: low confidence
    res = engine.scan(body)
    assert res.hits == []
    assert [(d.rule_id, d.filter, d.json_path) for d in res.dropped] == [("high-entropy", "low confidence",
                                                                         "$.reference")]
    low = Engine(min_confidence="low").scan(body)
    assert [(h.rule_id, h.confidence, h.secret) for h in low.hits] == [("high-entropy", "low", RND24)]
    assert not [d for d in low.dropped if d.filter == "low confidence"]


def test_length_and_key_name_make_entropy_medium(engine):
    assert [h.confidence for h in engine.scan({"reference": RND40}).hits] == ["medium"]
    assert [h.confidence for h in engine.scan({"storageKey": RND24}).hits] == ["medium"]


def test_min_confidence_high_keeps_high_hits_and_known_values():
    known = KnownValues(key=KEY)
    known.add_value("Winter2026!xyz", source="kv-fake/pw")
    eng = Engine(known=known, min_confidence="high")
    res = eng.scan({"a": GH, "b": RND40, "c": "pw is Winter2026!xyz"})
    assert sorted(h.rule_id for h in res.hits) == ["github-token", "known-value"]
    assert ("high-entropy", "low confidence", "$.b") in {(d.rule_id, d.filter, d.json_path) for d in res.dropped}


def test_min_confidence_is_validated_and_part_of_the_engine_version():
    with pytest.raises(ValueError):
        Engine(min_confidence="none")
    # a cached scan result made at one floor must not be reused at another
    assert Engine(min_confidence="low").version != Engine().version


def test_a_low_confidence_drop_never_shows_the_candidate_in_its_path(engine):
    res = engine.scan({RND24: "x"})  # the candidate is a key: its path would hold it
    assert [d.filter for d in res.dropped] == ["low confidence"]
    assert RND24 not in res.dropped[0].json_path and preview(RND24) in res.dropped[0].json_path


# -- documentation examples ----------------------------------------------------------------------------

def test_documentation_examples_are_dropped_whatever_rule_sees_them(engine):
    body = {"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "readme": "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                      "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}
    res = engine.scan(body)
    assert res.hits == []
    assert {d.rule_id for d in res.dropped if d.filter == "documentation example"} >= {
        "aws-access-key", "secret-keyword"}


def test_a_known_value_is_never_taken_for_a_documentation_example():
    known = KnownValues(key=KEY)
    known.add_value("AKIAIOSFODNN7EXAMPLE", source="stdin:1")  # the user said it is theirs
    res = Engine(known=known).scan({"id": "AKIAIOSFODNN7EXAMPLE"})
    assert [h.rule_id for h in res.hits] == ["known-value"]


def test_two_tokens_of_one_plugin_in_one_string_are_two_findings_of_its_rule(engine):
    # detect-secrets' GitHub plugin returns its regex group (`ghp`) once for both tokens: each is grown
    # to its own token, so the second is not left to the entropy stage
    second = "ghp_Q7r1Km3Pv8Yw0Sj6Ua2Mb5Gi4Oe9Xc1Fz7Dt"
    res = engine.scan({"note": f"old token {GH}, new token {second}"})
    assert sorted((h.rule_id, h.secret) for h in res.hits) == sorted([("github-token", GH), ("github-token", second)])
