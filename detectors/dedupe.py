"""Dedupe: one finding per secret occurrence.

One hit per (origin string, secret), preferring known_value > pattern > entropy, then confidence, then
a specific rule over a generic one; the kept hit takes the most specific json_path among the
duplicates. Then, within one origin, a hit whose secret contains (or is contained in) a better hit's
secret is the same leak and goes: a Key Vault value seen as a known value is not also a `high-entropy`
row, nor is a password that a connection string rule reported also a `secret-keyword` row. (The same
secret at two paths of one body stays two hits, one per path: tests/detectors/test_payload_walker.py.)
"""
from __future__ import annotations

from . import registry
from .base import Hit
from .patterns import DS_PLUGINS
from .powerplatform import RULES as PP_RULES
from .rules import CONFIDENCE_RANK

_DETECTOR_RANK = {"known_value": 3, "pattern": 2, "entropy": 1}

# Which rule keeps a secret that several pattern rules of equal confidence report (the more specific
# one). First, a rule whose keyword is part of the secret itself (a token format: `PMAK-…`,
# `GOCSPX-…`) beats one that found the secret by its context (an `x-api-key` header, a `client_secret`
# field, a `mysql://` URL). Then: generic shapes < a detect-secrets plugin or a flowleaks rule that knows
# the secret only by where it sits (a bearer header, an api-key header: no provider) < a catalogue
# provider rule < flowleaks' Power Platform rules (written for run history) < a custom pack rule.
_GENERIC = frozenset({"secret-keyword", "jwt"})
_CONTEXT_ONLY = frozenset({"bearer-token", "api-key-header", "client-secret-body", "basic-auth-header"})
_SPECIFICITY: dict[str, int] = {**{p.rule_id: 1 for p in DS_PLUGINS}, **{r.id: 2 for r in registry.CATALOGUE},
                                **{r.id: 3 for r in PP_RULES}, **{i: 1 for i in _CONTEXT_ONLY},
                                **{i: 0 for i in _GENERIC}}
_CUSTOM_SPECIFICITY = 4
_KEYWORDS: dict[str, tuple[str, ...]] = {r.id: tuple(k.lower() for k in r.keywords) for r in registry.RULES}


def _rank(h: Hit) -> tuple[int, int, int, int]:
    if h.detector != "pattern":
        return (_DETECTOR_RANK.get(h.detector, 0), CONFIDENCE_RANK.get(h.confidence, 0), 0, 1)
    spec = _SPECIFICITY.get(h.rule_id, _CUSTOM_SPECIFICITY)
    kws = _KEYWORDS.get(h.rule_id)
    own = 1 if kws is None else 0  # a custom rule: the user's, the most specific there is
    if kws and spec:
        low = h.secret.lower()
        own = 1 if any(k in low for k in kws) else 0
    return (_DETECTOR_RANK["pattern"], CONFIDENCE_RANK.get(h.confidence, 0), own, spec)


def dedupe(pairs: list[tuple[Hit, str]]) -> list[Hit]:
    """One hit per (origin, secret) — and per (origin, known source) for known values, whose
    matched text differs between encodings — preferring known_value > pattern > entropy."""
    groups: dict[tuple, list[Hit]] = {}
    order: list[tuple] = []
    for h, origin in pairs:
        k = (origin, "kv", h.known_secret) if h.detector == "known_value" else (origin, h.secret)
        if k not in groups:
            groups[k] = []
            order.append(k)
        groups[k].append(h)
    merged: list[Hit] = []
    for k in order:
        g = groups[k]
        if len(g) == 1:  # the common case: nothing to choose
            merged.append(g[0])
            continue
        best = max(g, key=_rank)
        deepest = max(g, key=lambda h: len(h.json_path))
        best.json_path, best.decoding = deepest.json_path, deepest.decoding
        merged.append(best)
    # second pass: a known value also found by a pattern/entropy rule in the same origin → one hit
    origin_of = {id(h): o for h, o in pairs}
    known_secrets = {(h_origin, h.secret) for h, h_origin in pairs if h.detector == "known_value"}
    if known_secrets:
        merged = [h for h in merged
                  if h.detector == "known_value" or (origin_of.get(id(h)), h.secret) not in known_secrets]
    return _drop_contained(merged, origin_of)


_CONTAIN_MIN = 8          # a shorter secret inside another is not taken for the same leak
_CONTAIN_MAX_HITS = 256   # per origin; beyond, only exact duplicates merge (keeps hostile bodies linear)


def _drop_contained(merged: list[Hit], origin_of: dict[int, str]) -> list[Hit]:
    """Within one origin, a hit whose secret contains or is contained in the secret of a better-ranked
    hit is the same occurrence (a Key Vault value and a token of it, a connection string's password
    and the whole string): only the better one stays."""
    by_origin: dict[str, list[Hit]] = {}
    for h in merged:
        by_origin.setdefault(origin_of.get(id(h), ""), []).append(h)
    gone: set[int] = set()
    for group in by_origin.values():
        if len(group) < 2 or len(group) > _CONTAIN_MAX_HITS:
            continue
        kept: list[str] = []
        for h in sorted(group, key=_rank, reverse=True):
            s = h.secret
            if any((s in k if len(s) <= len(k) else k in s) and min(len(s), len(k)) >= _CONTAIN_MIN for k in kept):
                gone.add(id(h))
            else:
                kept.append(s)
    return [h for h in merged if id(h) not in gone] if gone else merged
