"""Every rule's positive and negative examples, and every filter's dropped and kept examples, run
through the whole engine."""
import re

import pytest

from detectors.filters import FILTERS, filters_by_name
from detectors.registry import RULES, rules_by_id

CASES = []
for rule in RULES:
    if rule.kind == "known_value":
        continue  # needs loaded values: tests/detectors/test_known_values.py
    if rule.source.startswith("flowleaks:"):
        continue  # catalogue rules: tests/detectors/test_catalogue.py (with its documented overlaps)
    for i, e in enumerate(rule.positive):
        CASES.append(pytest.param(rule.id, True, e, id=f"{rule.id}+{i}"))
    for i, e in enumerate(rule.negative):
        CASES.append(pytest.param(rule.id, False, e, id=f"{rule.id}-{i}"))


FILTER_CASES = []
for f in FILTERS:
    for i, c in enumerate(f.dropped):
        FILTER_CASES.append(pytest.param(f.name, True, c, id=f"{f.name}-dropped{i}"))
    for i, c in enumerate(f.kept):
        FILTER_CASES.append(pytest.param(f.name, False, c, id=f"{f.name}-kept{i}"))


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


@pytest.mark.parametrize("name,dropped,case", FILTER_CASES)
def test_filter_examples(engine, name, dropped, case):
    """A filter's `dropped` body reports nothing and says why (a Drop with the filter's name for the
    rule); its `kept` body, a real-looking secret where the filter looks, is still reported."""
    res = engine.scan(case.body)
    if dropped:
        assert res.hits == [], f"{name}: reported {res.hits}"
        assert (case.rule_id, name) in {(d.rule_id, d.filter) for d in res.dropped}, res.dropped
    else:
        got = [h for h in res.hits if h.rule_id == case.rule_id]
        assert got, f"{name} hid a secret from {case.rule_id}; drops={res.dropped}"
        if case.secret is not None:
            assert any(h.secret == case.secret for h in got), "reported the wrong part"


def test_filter_registry_is_well_formed():
    names = [f.name for f in FILTERS]
    assert len(names) == len(set(names))
    rules = rules_by_id()
    for f in FILTERS:
        assert f.description and f.source, f.name
        # every filter is shown dropping something and letting a secret through where it looks
        assert f.dropped and f.kept, f.name
        assert all(c.rule_id in rules for c in f.dropped + f.kept), f.name
        f.as_doc()
    # the filters the run-history noise of issue 11 needs, by the names the `filtered` table shows
    assert {"odata-paging", "sharepoint-id", "blob-locator", "tracking-id", "row-version", "hash-key", "etag",
            "image-data", "azure-resource-id", "documentation example", "low confidence"} <= set(filters_by_name())


def test_every_entropy_filter_name_is_documented():
    """Drop.filter values are queried by name: each one the entropy stage can return is in its docstring."""
    import inspect

    from detectors import entropy, entropy_filters, placeholders

    returned = set(re.findall(r'return "([a-z-]+)"', inspect.getsource(entropy_filters.classify)))
    returned |= set(re.findall(r'self\.key_filter = "([a-z-]+)"', inspect.getsource(entropy_filters.LeafContext)))
    returned |= set(re.findall(r'f = "([a-z-]+)"', inspect.getsource(entropy.find))) | {placeholders.FILTER}
    assert len(returned) > 10 and "entropy-threshold" in returned
    for name in returned:
        assert re.search(rf"^{re.escape(name)}\s{{2,}}", entropy_filters.__doc__, re.M), name
