"""The rule catalogue (detectors/rules/*.toml) as the engine runs it: every rule's examples through the
whole engine, the loader's refusals, the registry, and the catalogue's place in the cache digest."""
import json
import shutil
from pathlib import Path

import pytest

from detectors.prefilter import hyperscan_available

import detectors
from detectors import catalogue
from detectors import dedupe, registry
from detectors.catalogue import CatalogueError, load
from detectors.engine import Engine
from detectors.registry import CATALOGUE, RULES, rules_by_id
from detectors.version import ruleset_digest

# A catalogue rule whose tp secret a built-in rule reports instead (dedupe keeps one row per secret:
# the built-in one, being of higher confidence or more specific). Each entry says which built-in rule
# and why; test_overlaps_are_all_needed keeps the list from going stale.
#   catalogue rule id -> {built-in rule id: why}
OVERLAPS: dict[str, dict[str, str]] = {
    # Clerk's live secret keys share Stripe's `sk_live_` prefix and shape; detect-secrets' Stripe plugin
    # (high) outranks the Clerk rule (medium) on them. The finding stays one row, under stripe-key.
    "clerk-secret-key": {"stripe-key": "sk_live_ prefix shared with Stripe",
                         "stripe-test-key": "sk_test_ prefix shared with Stripe (catalogue rule, high)"},
    # Paystack's live secret keys are `sk_live_` + 40 hex: the same for the Stripe plugin
    "paystack-secret-key": {"stripe-key": "sk_live_ prefix shared with Stripe"},
}


def _tp_cases():
    for r in CATALOGUE:
        for i, (text, secret) in enumerate(r.tp):
            yield pytest.param(r.id, text, secret, id=f"{r.id}+{i}")


def _fp_cases():
    for r in CATALOGUE:
        for i, text in enumerate(r.fp):
            yield pytest.param(r.id, text, id=f"{r.id}-{i}")


# the same text as free text in a field, and inside a stringified JSON body (the walker decodes it)
BODIES = {"note": lambda t: {"note": t}, "json-body": lambda t: {"body": json.dumps({"message": t})}}


@pytest.mark.parametrize("shape", BODIES)
@pytest.mark.parametrize("rule_id,text,secret", list(_tp_cases()))
def test_catalogue_tp_reported_by_the_engine(engine, shape, rule_id, text, secret):
    res = engine.scan(BODIES[shape](text))
    by = {h.rule_id for h in res.hits if h.secret == secret}
    allowed = {rule_id, *OVERLAPS.get(rule_id, {})}
    assert by & allowed, (f"{rule_id}: tp secret not reported (by it or a documented overlap); "
                          f"reported by {sorted(by)}; all hits {res.hits}; drops {res.dropped[:5]}")


@pytest.mark.parametrize("shape", BODIES)
@pytest.mark.parametrize("rule_id,text", list(_fp_cases()))
def test_catalogue_fp_not_reported(engine, shape, rule_id, text):
    res = engine.scan(BODIES[shape](text))
    assert not [h for h in res.hits if h.rule_id == rule_id], f"{rule_id} fired on its fp example"


def test_overlaps_are_all_needed(engine):
    """An OVERLAPS entry whose catalogue rule now reports its own tp is stale: remove it."""
    by_id = {r.id: r for r in CATALOGUE}
    stale = []
    for rid, others in OVERLAPS.items():
        assert rid in by_id, f"OVERLAPS names {rid}, not a catalogue rule"
        for other in others:
            assert other in rules_by_id(), f"OVERLAPS names {other}, not a rule"
        if all(any(h.rule_id == rid and h.secret == s for h in engine.scan({"note": t}).hits)
               for t, s in by_id[rid].tp):
            stale.append(rid)
    assert not stale, f"these catalogue rules report their own tp examples now: {stale}"


def test_catalogue_loads_with_unique_ids_and_examples():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    by_id = rules_by_id()
    for r in CATALOGUE:
        assert r.tp and r.fp, r.id
        meta = by_id[r.id]
        assert meta.kind == "pattern" and meta.confidence == r.confidence
        assert meta.source == f"flowleaks:{r.family}.toml"
        assert len(meta.positive) == len(r.tp) and len(meta.negative) == len(r.fp)


def test_the_registry_holds_at_least_200_rules():
    # the four catalogue families plus the built-in rules (issue 14)
    assert len(rules_by_id()) >= 200, len(rules_by_id())


_GOOD = '''
[[rule]]
id = "acme-key"
title = "ACME key"
provider = "ACME"
keywords = ["acmek_"]
regex = 'acmek_(?P<secret>[a-z0-9]{24})'
source = "https://example.invalid/acme"
tp = [{ text = "key acmek_q8w2e7r4t6y1u3i9o5p0a2s4", secret = "q8w2e7r4t6y1u3i9o5p0a2s4" }]
fp = ["acmek_short"]
'''


def test_a_rule_without_examples_does_not_load(tmp_path):
    (tmp_path / "good.toml").write_text(_GOOD)
    assert [r.id for r in load(tmp_path)] == ["acme-key"]
    (tmp_path / "bad.toml").write_text(_GOOD.replace("acme-key", "acme-nofp").replace('fp = ["acmek_short"]', ""))
    with pytest.raises(CatalogueError) as err:
        load(tmp_path)
    assert "bad.toml" in str(err.value) and "acme-nofp" in str(err.value)


def test_duplicate_ids_across_files_do_not_load(tmp_path):
    (tmp_path / "a.toml").write_text(_GOOD)
    (tmp_path / "b.toml").write_text(_GOOD)
    with pytest.raises(CatalogueError, match="duplicate"):
        load(tmp_path)


@pytest.fixture()
def acme_engine(tmp_path, monkeypatch):
    """An engine whose catalogue is one temporary rule (the real catalogue is being written)."""
    (tmp_path / "acme.toml").write_text(_GOOD)
    rules = load(tmp_path)
    monkeypatch.setattr(registry, "CATALOGUE", rules)
    eng = Engine()
    with eng.session():
        yield eng


def test_a_catalogue_rule_runs_in_the_engine(acme_engine):
    hits = acme_engine.scan({"note": "deploy with acmek_q8w2e7r4t6y1u3i9o5p0a2s4 tonight"}).hits
    assert [(h.rule_id, h.detector, h.secret) for h in hits] == [("acme-key", "pattern", "q8w2e7r4t6y1u3i9o5p0a2s4")]
    # the keyword prefilter is case-insensitive, the regex is the rule's own: upper case passes the
    # prefilter but not the regex
    upper = acme_engine.scan({"note": "ACMEK_Q8W2E7R4T6Y1U3I9O5P0A2S4"}).hits
    assert "acme-key" not in {h.rule_id for h in upper}


@pytest.mark.parametrize("matcher", ["portable", "hyperscan", "off"])
def test_a_catalogue_rule_is_prefiltered_by_its_keywords(tmp_path, monkeypatch, matcher):
    if matcher == "hyperscan" and not hyperscan_available():
        pytest.skip("hyperscan is x86-64 only")
    (tmp_path / "acme.toml").write_text(_GOOD)
    monkeypatch.setattr(registry, "CATALOGUE", load(tmp_path))
    eng = Engine(matcher=matcher)
    calls = []
    rule = registry.CATALOGUE[0]
    real = type(rule).candidates
    monkeypatch.setattr(type(rule), "candidates", lambda self, text: calls.append(text) or real(self, text))
    eng.scan({"note": "nothing to see here, just words and more words"})
    assert calls == []
    eng.scan({"note": "acmek_ is the prefix"})
    # Hyperscan also runs the rule's relaxed regex natively: the keyword alone does not run it
    assert calls == ([] if matcher == "hyperscan" else ["acmek_ is the prefix"])
    eng.scan({"note": "deploy with acmek_q8w2e7r4t6y1u3i9o5p0a2s4 tonight"})
    assert calls[-1:] == ["deploy with acmek_q8w2e7r4t6y1u3i9o5p0a2s4 tonight"]


def test_a_catalogue_hit_goes_through_the_confidence_floor(tmp_path, monkeypatch):
    (tmp_path / "acme.toml").write_text(_GOOD.replace('keywords', 'confidence = "low"\nkeywords'))
    monkeypatch.setattr(registry, "CATALOGUE", load(tmp_path))
    res = Engine().scan({"note": "acmek_q8w2e7r4t6y1u3i9o5p0a2s4"})
    assert not [h for h in res.hits if h.rule_id == "acme-key"]
    assert [d.filter for d in res.dropped if d.rule_id == "acme-key"] == ["low confidence"]
    low = Engine(min_confidence="low").scan({"note": "acmek_q8w2e7r4t6y1u3i9o5p0a2s4"})
    assert [h.rule_id for h in low.hits] == ["acme-key"]


def test_a_catalogue_hit_that_is_a_documentation_example_is_dropped(tmp_path, monkeypatch):
    aws = '''
[[rule]]
id = "aws-key-id-cat"
title = "AWS access key id"
provider = "AWS"
keywords = ["akia"]
regex = '(?P<secret>AKIA[0-9A-Z]{16})'
source = "https://docs.aws.amazon.com/"
tp = [{ text = "id AKIAQ3EGT7NZK5XW2PLM", secret = "AKIAQ3EGT7NZK5XW2PLM" }]
fp = ["AKIA123"]
'''
    (tmp_path / "aws.toml").write_text(aws)
    monkeypatch.setattr(registry, "CATALOGUE", load(tmp_path))
    res = Engine().scan({"note": "aws configure: AKIAIOSFODNN7EXAMPLE"})
    assert res.hits == []
    assert ("aws-key-id-cat", "documentation example") in {(d.rule_id, d.filter) for d in res.dropped}


def test_a_catalogue_rule_and_a_builtin_rule_on_one_secret_make_one_row(tmp_path, monkeypatch):
    # the detect-secrets GitHub plugin and a catalogue GitHub rule see the same token: one hit, the
    # catalogue rule's (more specific than a detect-secrets plugin at equal confidence)
    gh = '''
[[rule]]
id = "github-pat-cat"
title = "GitHub PAT"
provider = "GitHub"
confidence = "high"
keywords = ["ghp_"]
regex = '(?P<secret>ghp_[A-Za-z0-9]{36})'
source = "https://github.blog/"
tp = [{ text = "t ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu", secret = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu" }]
fp = ["ghp_short"]
'''
    (tmp_path / "gh.toml").write_text(gh)
    rules = load(tmp_path)
    monkeypatch.setattr(registry, "CATALOGUE", rules)
    monkeypatch.setitem(dedupe._SPECIFICITY, "github-pat-cat", 2)
    hits = Engine().scan({"note": "token ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"}).hits
    assert [(h.rule_id, h.secret) for h in hits] == [("github-pat-cat", "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu")]


def test_a_catalogue_file_change_changes_the_ruleset_digest(tmp_path):
    copy = tmp_path / "detectors"
    shutil.copytree(Path(detectors.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = ruleset_digest(copy)
    (copy / "rules" / "acme.toml").write_text(_GOOD)
    with_file = ruleset_digest(copy)
    assert with_file != before
    (copy / "rules" / "acme.toml").write_text(_GOOD.replace("{24}", "{25}"))
    assert ruleset_digest(copy) != with_file


def test_prefilter_finds_overlapping_and_nested_keywords():
    from detectors.selection import RuleSelector

    class R:
        def __init__(self, kw):
            self.keywords, self.id = (kw,), kw

    rules = [R(k) for k in ("sk_live_", "k_live_", "ghp_", "p_abc", "gh", "ab")]
    pre = RuleSelector(rules, builtin=False)
    picked = lambda low: sorted(r.id for _, r in pre.select(low, low))  # noqa: E731
    assert picked("xx sk_live_ yy") == ["k_live_", "sk_live_"]
    assert picked("ghp_abc") == ["ab", "gh", "ghp_", "p_abc"]
    assert picked("nothing") == []


def test_an_install_without_the_rule_files_stops_instead_of_scanning_with_no_rules(tmp_path, monkeypatch):
    import detectors.catalogue as cat

    monkeypatch.setattr(cat, "RULES_DIR", tmp_path)  # what a wheel without package data looks like
    with pytest.raises(cat.CatalogueError, match="installation is incomplete"):
        cat.load(cat.RULES_DIR)
    (tmp_path / "other").mkdir()
    assert cat.load(tmp_path / "other") == []  # another folder (a test's) may be empty
