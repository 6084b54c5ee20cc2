"""Every rule's positive and negative examples, run through the whole engine."""
import re

import pytest

from detectors.engine import RULES, rules_by_id

CASES = []
for rule in RULES:
    if rule.kind == "known_value":
        continue  # needs loaded values: tests/detectors/test_known_values.py
    for i, e in enumerate(rule.positive):
        CASES.append(pytest.param(rule.id, True, e, id=f"{rule.id}+{i}"))
    for i, e in enumerate(rule.negative):
        CASES.append(pytest.param(rule.id, False, e, id=f"{rule.id}-{i}"))


@pytest.mark.parametrize("rule_id,positive,example", CASES)
def test_rule_examples(engine, rule_id, positive, example):
    res = engine.scan(example.body, side=example.side)
    got = [h for h in res.hits if h.rule_id == rule_id]
    if positive:
        assert got, f"{rule_id} missed its positive example; hits={res.hits} drops={res.dropped[:5]}"
        if example.secret is not None:
            assert any(h.secret == example.secret for h in got), "reported the wrong secret part"
    else:
        assert not got, f"{rule_id} fired on its negative example"


def test_registry_is_well_formed():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for r in RULES:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", r.id), r.id
        assert r.kind in ("pattern", "entropy", "known_value")
        assert r.confidence in ("high", "medium", "low")
        assert r.description
        assert all(isinstance(k, str) and k for k in r.keywords), r.id
        if r.source == "flowleaks":
            # the prefilter looks for these in lowercased text: a capital letter would never match and
            # the rule would silently never run (only detect-secrets keywords may be case-sensitive)
            assert all(k == k.lower() for k in r.keywords), (r.id, r.keywords)
        r.as_doc()
    # every flowleaks rule carries examples both ways
    for r in RULES:
        if r.source == "flowleaks" and r.kind == "pattern":
            assert r.positive and r.negative, r.id
    assert "github-token" in rules_by_id()


def test_password_low_entropy_found(engine):
    res = engine.scan({"password": "Winter2026!"})
    assert [(h.rule_id, h.secret, h.json_path) for h in res.hits] == [("secret-keyword", "Winter2026!", "$.password")]


def test_secret_part_only_for_urls(engine):
    url = ("https://prod-27.westeurope.logic.azure.com:443/workflows/5b3c/triggers/manual/paths/invoke"
           "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Xo9kqL2vT8mNw4ZpR7sYc1HbE5uJ3aGd6fKiQ0tVxWe")
    res = engine.scan({"uri": url})
    assert len(res.hits) == 1, res.hits
    h = res.hits[0]
    assert h.rule_id == "logic-apps-trigger-url" and h.secret == "Xo9kqL2vT8mNw4ZpR7sYc1HbE5uJ3aGd6fKiQ0tVxWe"
    assert h.json_path == "$.uri?sig" and h.decoding == "query"


def test_ds_high_entropy_plugins_not_run(engine):
    res = engine.scan({"ids": ["d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59", "5b3c0d7e-9f1a-4b2c-8d6e-0f1a2b3c4d5e"]})
    assert res.hits == []
