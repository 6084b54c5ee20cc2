import base64
import hashlib
import json
import pickle
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape

import pytest

from detectors.engine import Engine
from detectors.known_values import KnownValues, variants

KEY = b"test-fingerprint-key-0123456789ab"

VALUE = 'Kv$ecret "Value"/2026+&<x>'


def _scan(known, body):
    eng = Engine(known=known)
    with eng.session():
        return eng.scan(body)


def encodings(v):
    b = v.encode()
    yield "raw", v
    yield "url", quote(v, safe="")
    yield "url-plus", quote_plus(v)
    yield "json", json.dumps(v)[1:-1]
    yield "xml", escape(v, {'"': "&quot;"})
    for k, prefix in enumerate((b"", b"u", b"us", b"use")):
        yield f"b64-{k}", base64.b64encode(prefix + b + b"tail").decode()
        yield f"b64url-{k}", base64.urlsafe_b64encode(prefix + b + b"!").decode()
    yield "basic", "Basic " + base64.b64encode(b"svc-user:" + b).decode()


@pytest.mark.parametrize("name,encoded", list(encodings(VALUE)), ids=[n for n, _ in encodings(VALUE)])
def test_every_encoding_found_embedded(known, name, encoded):
    known.add_value(VALUE, source="kv-prod/db-password")
    body = {"log": f"zzprefix{encoded}suffixzz", "other": "nothing"}
    res = _scan(known, body)
    kv = [h for h in res.hits if h.rule_id == "known-value"]
    assert kv, name
    assert all(h.detector == "known_value" and h.known_secret == "kv-prod/db-password" for h in kv)
    assert kv[0].json_path.startswith("$.log")


def test_found_in_decoded_layers_and_basic_header(known):
    known.add_value("Sup3r-Secret-Pw", source="kv/x")
    basic = "Basic " + base64.b64encode(b"someone:Sup3r-Secret-Pw").decode()
    res = _scan(known, {"headers": {"Authorization": basic}})
    kv = [h for h in res.hits if h.detector == "known_value"]
    assert len(kv) == 1 and kv[0].json_path == "$.headers.Authorization<basic>.password"


def test_multiline_value_lines(known):
    known.add_value("line-one-secret\nline-two-secret", source="kv/pem")
    res = _scan(known, {"a": "xx line-two-secret yy"})
    assert [h.known_secret for h in res.hits if h.detector == "known_value"] == ["kv/pem"]


def test_short_values_ignored(known):
    assert known.add_value("abc", source="kv/short") is False
    assert known.add_value("12345", source="kv/short2") is False
    assert known.ignored_short == 2
    assert not known


def test_values_from_lines_sources(known):
    n = known.add_values_from_lines(["first-secret-1\n", "\n", "second-secret-2\r\n", "tiny\n"], source_prefix="stdin")
    assert n == 2 and known.ignored_short == 1
    res = _scan(known, {"x": "..second-secret-2.."})
    assert [h.known_secret for h in res.hits if h.detector == "known_value"] == ["stdin:3"]


def test_hash_only_matches_whole_leaf(known):
    secret = "OnlyHashKnown-9x"
    lines = ["# comment", hashlib.sha256(secret.encode()).hexdigest(), "not-a-hash"]
    assert known.add_hashes_from_lines(lines, source_prefix="hashes.txt") == 1
    assert known.invalid_hash_lines == 1
    res = _scan(known, {"a": secret, "b": "prefix" + secret})
    kv = [h for h in res.hits if h.detector == "known_value"]
    assert [(h.json_path, h.known_secret) for h in kv] == [("$.a", "hashes.txt:2")]
    # whole *decoded* leaf: a query parameter
    res = _scan(known, {"u": f"https://x.example.com/p?token={quote(secret)}&a=1"})
    assert [(h.json_path, h.known_secret) for h in res.hits if h.detector == "known_value"] == [("$.u?token", "hashes.txt:2")]


def test_no_plaintext_anywhere_in_the_object(known):
    known.add_value(VALUE, source="kv/x")
    known.add_values_from_lines([VALUE + "-two"], source_prefix="stdin")
    dump = pickle.dumps(known)
    blob = repr(vars(known)) + repr(known)
    for v in variants(VALUE) | variants(VALUE + "-two"):
        assert v.encode() not in dump
        assert v not in blob
    # and it still works after a pickle round trip
    again = pickle.loads(dump)
    res = _scan(again, {"x": "aa" + VALUE + "bb"})
    assert any(h.detector == "known_value" for h in res.hits)


def test_hit_repr_and_known_secret_do_not_leak(known):
    known.add_value("Leaky-Value-123456", source="kv/leak")
    res = _scan(known, {"x": "Leaky-Value-123456"})
    h = [h for h in res.hits if h.detector == "known_value"][0]
    assert "Leaky-Value" not in repr(h) and "Leaky-Value" not in h.known_secret
    assert h.secret == "Leaky-Value-123456"


def test_no_false_match_across_leaves(known):
    known.add_value("abcdef-123456", source="kv/x")
    res = _scan(known, {"a": "xx abcdef-", "b": "123456 yy"})
    assert not [h for h in res.hits if h.detector == "known_value"]


def test_known_beats_pattern_in_dedupe(known):
    known.add_value("Winter2026!Long", source="kv/pw")
    res = _scan(known, {"password": "Winter2026!Long"})
    assert [(h.rule_id, h.json_path) for h in res.hits] == [("known-value", "$.password")]


def test_large_text_and_chunk_edges(known):
    known.add_value("ChunkEdgeSecret-42", source="kv/edge")
    big = "a" * ((1 << 20) - 5) + "ChunkEdgeSecret-42" + "b" * 1000
    res = _scan(known, {"x": big})
    assert [h.known_secret for h in res.hits if h.detector == "known_value"] == ["kv/edge"]


def test_bad_key_rejected():
    with pytest.raises(ValueError):
        KnownValues(key=b"")
