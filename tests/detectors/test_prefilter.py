"""The native pass (detectors/prefilter.py) changes the speed, never the findings.

The same corpus goes through the engine with the Hyperscan pass, the portable pass, and no pass at all
(`matcher="off"`: every leaf through every rule, the engine as it was before the pass existed); every
hit (rule, secret, path, confidence, decoding), every filtered candidate and every skip must be equal.
The corpus: every rule's and filter's own examples, the benchmark's run-history bodies (GUIDs, ETags,
content links, `$content` files, stringified JSON, planted secrets of every kind) and the fake tenant's
action bodies. All secrets are fake."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from detectors import catalogue
from detectors.engine import Engine
from detectors.filters import FILTERS
from detectors.registry import CATALOGUE, RULES
from detectors.known_values import KnownValues
from detectors.prefilter import GateSpec, HyperscanGate, PortableGate, choose_backend, hyperscan_available, relax

ROOT = Path(__file__).resolve().parents[2]
needs_hyperscan = pytest.mark.skipif(not hyperscan_available(), reason="hyperscan is x86-64 only")
MATCHERS = ["off", "portable"] + (["hyperscan"] if hyperscan_available() else [])


def signature(result) -> tuple:
    return ([(h.rule_id, h.detector, h.secret, h.json_path, h.side, h.confidence, h.decoding, h.known_secret)
             for h in result.hits],
            [(d.rule_id, d.filter, d.json_path) for d in result.dropped],
            [(s.json_path, s.reason, s.detail) for s in result.skipped])


def example_bodies() -> list:
    bodies: list = []
    for r in RULES:
        bodies.extend(e.body for e in r.positive)
        bodies.extend(e.body for e in r.negative)
    for r in CATALOGUE:
        bodies.extend({"note": t} for t, _ in r.tp)
        bodies.extend({"note": t} for t in r.fp)
        # the same texts inside a longer body, beside other leaves, in a stringified layer
        bodies.extend({"a": "x" * 30, "b": [t, "plain words"], "c": json.dumps({"inner": t})} for t, _ in r.tp)
    for f in FILTERS:
        bodies.extend(e.body for e in getattr(f, "dropped", ()))
        bodies.extend(e.body for e in getattr(f, "kept", ()))
    return bodies


def benchmark_bodies(mb: float = 1.5) -> list:
    sys.path.insert(0, str(ROOT))
    from benchmarks.detectors import build_corpus

    rng = random.Random(3)
    known = ["".join(rng.choice("abcdefghijkLMNOP0123456789!$") for _ in range(20)) for _ in range(20)]
    bodies, _, _ = build_corpus(mb, 11, known)
    return bodies


def tenant_bodies() -> list:
    """Every input and output the fake tenant serves (raw bytes, as the crawl gets them)."""
    from datetime import datetime, timezone

    from tests.fakeapi.tenant import Tenant

    tenant = Tenant.generate(seed=5, environments=2, flows_per_env=6, runs_per_flow=4,
                             now=datetime(2026, 11, 30, tzinfo=timezone.utc))
    out = []
    for _, detail in tenant.iter_details():
        for step in [detail.trigger, *detail.actions.values()]:
            bodies = [step.inputs, step.outputs]
            for rep in step.repetitions or ():
                bodies += [rep.inputs, rep.outputs]
            out.extend(b.raw for b in bodies if b is not None)
    return out


def odd_bodies() -> list:
    # non-ASCII text (where str.lower() and a caseless byte match differ: the Kelvin sign lowercases
    # to `k`), keys that drive rules, short leaves under rule keys, long leaves
    tok = "Tq7Vb3Mc6Hj9Pf4Yd0Sa2Lw5Xn1Zr8Kx2Nm4Qe6W"
    return [
        {"note": f"\u212aey: {tok}", "x": "caf\u00e9 " + tok},
        {"x-api-key": "Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0", "password": "hunter2!", "pwd": "abc", "client_secret": "s"},
        {"headers": {"Authorization": "Bearer 9fQ2xL7mW4zR8tY1vB6nK3pS"}, "h": {"Authorization": "Basic dXNlcjpwdw=="}},
        {"blob": ("words and more words " * 3000) + tok},
        {"AKCp8jQ1a2b3c4d5e6": "AP6xYz12345678", "sid": "AC" + "a1b2c3d4" * 4, "k": "SK" + "0f" * 16},
        "plain text body with password=Winter2026!Pass in it",
        b"\xff\xfe binary \x00\x01",
        {"deep": [[[[{"v": tok}]]]]},
    ]


def corpus() -> list:
    return example_bodies() + benchmark_bodies() + tenant_bodies() + odd_bodies()


@pytest.fixture(scope="module")
def bodies():
    return corpus()


def scan_all(matcher: str, bodies: list, known: KnownValues | None = None) -> list:
    eng = Engine(known=known, matcher=matcher)
    assert eng.matcher == matcher
    with eng.session():
        return [signature(eng.scan(b)) for b in bodies]


@pytest.mark.parametrize("matcher", [m for m in MATCHERS if m != "off"])
def test_every_matcher_finds_exactly_what_the_ungated_engine_finds(bodies, matcher):
    reference = scan_all("off", bodies)
    got = scan_all(matcher, bodies)
    diff = [i for i, (a, b) in enumerate(zip(reference, got)) if a != b]
    assert not diff, f"{len(diff)} bodies differ, first {diff[:5]}: {reference[diff[0]]} vs {got[diff[0]]}"
    assert sum(len(r[0]) for r in reference) > 1000  # the corpus does hold findings


@needs_hyperscan
def test_hyperscan_and_portable_paths_give_the_same_findings_with_known_values(bodies):
    known = KnownValues(key=b"prefilter-test-key-0123456789abcd")
    for n, v in enumerate(["Kv$ecretValue-2026", "Q8r2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2Lm4Zq!x#9", "hunter2!"]):
        known.add_value(v, f"kv-fake/{n}")
    extra = [{"note": "prefix-Kv$ecretValue-2026-suffix"}, {"v": "hunter2!"}]
    assert scan_all("hyperscan", bodies + extra, known) == scan_all("portable", bodies + extra, known)


def test_the_native_pass_lets_most_leaves_of_run_history_skip_the_rules():
    bench = benchmark_bodies(0.5)
    for matcher in MATCHERS:
        eng = Engine(matcher=matcher)
        with eng.session():
            for b in bench:
                eng.scan(b)
        ratio = eng.stats["leaves_ruled"] / eng.stats["leaves"]
        if matcher == "off":
            assert ratio == 1.0
        else:
            assert ratio < 0.4, (matcher, ratio)


@needs_hyperscan
def test_the_builtin_catalogue_compiles_as_hyperscan_prefilters():
    eng = Engine(matcher="hyperscan")
    # every catalogue rule's relaxed regex is in the database (none fell back to keyword-only)
    assert eng._gate.gated_rules == {r.id for r in CATALOGUE}


@pytest.mark.parametrize("rule", CATALOGUE, ids=lambda r: r.id)
def test_a_relaxed_regex_matches_wherever_its_rule_does(rule):
    import re

    relaxed = re.compile(relax(rule.regex.pattern), rule.regex.flags | re.M)
    for text, _ in rule.tp:
        if rule.regex.search(text):
            assert relaxed.search(text), (rule.id, relax(rule.regex.pattern))


def test_relax_widens_big_and_exact_repeats_and_keeps_small_ones():
    assert relax(r"(?P<secret>[a-z]{52})") == "(?:[a-z]{16,})"
    assert relax(r"x{100,2048}y{0,500}?z{2,8}") == "x{16,}y{0,}z{2,8}"
    assert relax(r"\Aabc\Z") == "^abc$"
    assert relax(r"\{3}") == r"\{3}"  # an escaped brace is text


@pytest.mark.parametrize("gate_class", [PortableGate] + ([HyperscanGate] if hyperscan_available() else []))
def test_a_gate_flags_exactly_the_leaves_that_hold_a_keyword_or_a_token_run(gate_class):
    gate = gate_class(GateSpec(["ghp_", "password"], ["AKC[a-zA-Z0-9]{10}"]))
    texts = ["nothing here", "my PassWord is", "x" * 19, "abcdefghij0123456789", "ghp_ at the end ghp_",
             "AKC0123456789 x", "AKC01234 short"]
    flags = gate.flags(texts)
    assert [f is not None for f in flags] == [False, True, False, True, True, True, False]
    # the keyword matches are every occurrence, with its start in the leaf
    assert sorted(flags[1][0]) == [(3, "password")]
    assert sorted(flags[4][0]) == [(0, "ghp_"), (16, "ghp_")]


def test_an_unknown_matcher_is_refused(monkeypatch):
    with pytest.raises(ValueError, match="FLOWLEAKS_MATCHER must be one of"):
        choose_backend("fast")
    monkeypatch.setenv("FLOWLEAKS_MATCHER", "portable")
    assert Engine().matcher == "portable"
    monkeypatch.setenv("FLOWLEAKS_MATCHER", "auto")
    assert Engine().matcher == ("hyperscan" if hyperscan_available() else "portable")


def test_hyperscan_asked_for_where_it_is_missing_is_a_clear_error(monkeypatch):
    import detectors.prefilter as pf

    monkeypatch.setattr(pf, "hyperscan_available", lambda: False)
    with pytest.raises(ValueError, match="not installed here"):
        choose_backend("hyperscan")
    assert choose_backend("auto") == "portable"


def test_the_catalogue_loader_is_untouched_by_the_matcher():
    # the gate reads the loaded rules; it never changes what loads (a broken rule still stops import)
    assert len(catalogue.load()) == len(CATALOGUE)
