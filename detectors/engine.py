"""The detection engine: walk a payload, prefilter, run rules, entropy and known values, dedupe.

    known = KnownValues(key=fingerprint_key)
    engine = Engine(known=known, limits=Limits())
    with engine.session():                      # one detect-secrets settings context per scan
        result = engine.scan(body, side="action_outputs")

Per payload:

1. the walker (`payload.py`) yields string Leaves with JSON paths, decoding nested layers;
2. per leaf, one combined keyword regex over the lowercased text (`selection.py`, plus a key-name
   regex) selects the pattern rules that can match — flowleaks' rules (`powerplatform.py`), the
   catalogue (`catalogue.py`) and detect-secrets plugins (`patterns.py`, via `analyze_line`, with a
   synthesized `key: "value"` line for KeywordDetector); the native pass (`prefilter.py`) first skips
   the leaves no rule could select;
3. the entropy stage (`entropy.py`) on tokens no pattern claimed; filtered candidates become Drops;
   a pattern or entropy candidate that is a provider's documentation example (`doc_examples.py`)
   becomes `Drop(rule, 'documentation example')`, whichever rule found it;
4. known values (`known_values.py`): one substring pass over all leaves of the payload, plus a
   whole-leaf SHA-256 check for hash-only inputs;
5. dedupe (`dedupe.py`), one finding per secret occurrence: one hit per (origin string, secret),
   preferring known_value > pattern > entropy, then confidence, then a specific rule over a generic
   one; within one origin, a hit whose secret contains (or is contained in) a better hit's goes too;
6. confidence floor: hits below `min_confidence` (default `medium`: a short random-looking token under
   a neutral key is `low`) become `Drop(rule, 'low confidence')`; known values always count.

Leaves longer than `Limits.max_leaf_chars` are scanned in windows overlapping by `window_overlap`.
A per-payload work budget (characters and wall time) stops the scan with Skip 'budget exceeded' at the
json_path where it stopped. `scan` never raises: an internal error becomes Skip 'detector error' whose
detail is the exception type only. `Engine.version` (`version.py`) is what a cached result of the
engine depends on; the rules it reports under are in `registry.py`, its filters in `filters.py`.
"""
from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Iterator

from . import entropy as entropy_mod
from . import known_values as kv_mod
from . import registry
from .base import Drop, Hit, Leaf, ScanResult, Skip
from .custom import CustomRules, CustomRulesError
from .dedupe import dedupe
from .doc_examples import FILTER as DOC_FILTER
from .doc_examples import is_documentation_example
from .filters import LOW_CONFIDENCE
from .known_values import KnownValues
from .patterns import (BY_NAME, KEYWORD_DETECTOR_KEY, DSAdapter, bounded, ds_filter, expand_tokens, keyword_windows,
                       synth_line)
from .payload import Limits, Walker, body_from_input, redact_paths
from .powerplatform import bearer_confidence
from .prefilter import choose_backend, compiled_gate
from .rules import CONFIDENCE_RANK, Rule
from .selection import RuleSelector
from .version import engine_version

__all__ = ["Engine", "Limits"]

# decoded layers that repeat all of the encoded text: skip the encoded leaf (URL query strings and
# bearer headers are still scanned whole: the trigger-URL / SAS rules need the URL)
_DECODED_ELSEWHERE = frozenset({"json", "xml", "base64", "basic", "form"})

# detect-secrets plugins built on `build_assignment_regex`, whose separator `(?: *)(?:=|…| +)(?: *)`
# backtracks cubically on a long run of spaces (`ibm … key` + 1,500 spaces: ~30 s; 10,000: hours).
# Every space quantifier in those patterns is ` *` or ` +`, so one space matches wherever a run does:
# they are given the line with space runs collapsed (the filters and token expansion still see the
# original text; their secrets never contain spaces).
_SPACE_CUBIC_PLUGINS = frozenset({"CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector",
                                  "SoftlayerDetector"})
_SPACE_RUN = re.compile(r" {2,}")
_BARE_GUID = re.compile(r"[{(]?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}[})]?\Z")


class _Budget:
    __slots__ = ("chars", "max_chars", "deadline")

    def __init__(self, limits: Limits) -> None:
        self.chars = 0
        self.max_chars = limits.max_work_chars
        self.deadline = time.monotonic() + limits.time_budget_s

    def spend(self, n: int) -> bool:
        self.chars += n
        return self.chars <= self.max_chars and time.monotonic() <= self.deadline


class Engine:
    def __init__(self, known: KnownValues | None = None, limits: Limits | None = None,
                 min_confidence: str = "medium", custom: CustomRules | None = None,
                 matcher: str | None = None) -> None:
        """`custom`: gitleaks-format packs (`--rules`); with `custom.rules_only` the built-in rule set
        (catalogue, Power Platform rules, detect-secrets plugins) and the entropy stage are off, so
        only the custom rules and known values report. Raises CustomRulesError when a custom rule's
        id is a rule id this engine already runs. `matcher`: the native pass's backend (`hyperscan`,
        `portable`, `off` = every leaf through every rule; default FLOWLEAKS_MATCHER, else the fastest
        installed): it changes the speed, never the findings (prefilter.py)."""
        if min_confidence not in CONFIDENCE_RANK:
            raise ValueError(f"min_confidence must be one of {sorted(CONFIDENCE_RANK)}")
        self.custom = custom
        self.builtin = not (custom and custom.rules_only)
        extra = (list(registry.CATALOGUE) if self.builtin else []) + (list(custom.rules) if custom else [])
        if custom:
            # ids name findings and suppressions: one id, one meaning (entropy's and known values'
            # ids stay reserved under --rules-only too)
            taken = {r.id for r in (registry.RULES if self.builtin else [entropy_mod.RULE, kv_mod.RULE])}
            for r in custom.rules:
                if r.id in taken:
                    raise CustomRulesError(f"{r.origin}: rule {r.id!r}: a built-in rule has this id; rename "
                                           f"it (or use --rules-only to drop the built-in rules)")
        self.known = known
        self.limits = limits or Limits()
        self.min_confidence = min_confidence
        self._floor = CONFIDENCE_RANK[min_confidence]
        self._ds = DSAdapter()
        self._in_session = False
        self._pre = RuleSelector(extra, self.builtin)
        spec = self._pre.gate_spec()
        if matcher == "off" or spec is None:
            self.matcher, self._gate = "off", None
        else:
            self.matcher = choose_backend(matcher)
            self._gate = compiled_gate(spec, self.matcher)
        self._key_pp = tuple((r.key_re, r.decodings) for r in self._pre.key_pp if r.key_re is not None)
        self.stats = {"payloads": 0, "leaves": 0, "chars": 0, "leaves_ruled": 0}

    @property
    def version(self) -> str:
        """What a cached result of this engine depends on: the rule set, the known-value set (it can
        grow while vaults load, so this is read when needed, not at construction) and the limits."""
        known = self.known.digest() if self.known is not None else "none"
        custom = self.custom.digest if self.custom is not None else "none"
        return engine_version(custom, known, self.limits, self.min_confidence)

    def rules(self) -> list[Rule]:
        """Every rule this engine reports under: the built-in set (unless rules-only), the custom
        packs' rules, and known values."""
        builtin = [r for r in registry.RULES if r.id != kv_mod.RULE_ID] if self.builtin else []
        custom = [registry.custom_rule(r) for r in self.custom.rules] if self.custom else []
        return builtin + custom + [kv_mod.RULE]

    # -- settings context --------------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator["Engine"]:
        """One detect-secrets settings context for the whole scan (re-entrant)."""
        if self._in_session:
            yield self
            return
        with self._ds.session():
            self._in_session = True
            try:
                yield self
            finally:
                self._in_session = False

    # -- public API --------------------------------------------------------------------------------
    def scan(self, body: Any, side: str = "action_outputs") -> ScanResult:
        """Scan one body (parsed JSON, str or bytes). Never raises."""
        try:
            if not self._in_session:
                with self.session():
                    return self._scan(body, side)
            return self._scan(body, side)
        except Exception as exc:  # never let detector bugs (or their messages) escape
            return ScanResult(skipped=[Skip("$", "detector error", type(exc).__name__)])

    def scan_definition(self, definition: Any) -> ScanResult:
        """Scan a flow definition (side 'definition') for the posture code."""
        return self.scan(definition, side="definition")

    # -- internals ---------------------------------------------------------------------------------
    def _scan(self, body: Any, side: str) -> ScanResult:
        lim = self.limits
        result = ScanResult()
        budget = _Budget(lim)
        body = body_from_input(body, result.skipped)
        walker = Walker(side, lim, deadline=budget.deadline)
        hits: list[tuple[Hit, str]] = []  # (hit, origin)
        drops = result.dropped
        drop_overflow = 0
        leaves: list[Leaf] = []
        stopped = False
        for leaf in walker.walk(body):
            if not budget.spend(len(leaf.value)):
                result.skipped.append(Skip(leaf.json_path, "budget exceeded",
                                           f"stopped after {budget.chars} chars"))
                stopped = True
                break
            leaves.append(leaf)
        ruled = 0
        for leaf, flagged in zip(leaves, self._flags(leaves)):
            if flagged is None:
                continue
            ruled += 1
            if (ruled & 63) == 0 and time.monotonic() > budget.deadline:
                result.skipped.append(Skip(leaf.json_path, "budget exceeded", "time budget spent in the rules"))
                stopped = True
                break
            v = leaf.value
            n = len(v)
            if n > lim.max_leaf_chars:
                # windows made one at a time (a 60 MB leaf is not copied up front); the last one
                # reaches the end of the leaf whatever the overlap
                size = max(1, lim.max_leaf_chars)
                step = max(1, size - lim.window_overlap)
                texts: Any = (v[i:i + size] for i in range(0, max(1, n - size + step), step))
            else:
                texts = (v,)
            for wi, text in enumerate(texts):
                if wi and time.monotonic() > budget.deadline:  # the time budget holds inside a leaf too
                    result.skipped.append(Skip(leaf.json_path, "budget exceeded",
                                               f"time budget spent at window {wi} of a {n}-char leaf"))
                    stopped = True
                    break
                for h, f in self._leaf(leaf, text, None if flagged is True else flagged):
                    if h is not None:
                        if h.detector == "entropy" or not is_documentation_example(h.secret):
                            hits.append((h, leaf.origin))
                            continue
                        # entropy checked its candidates already (entropy_filters.classify)
                        f = Drop(h.rule_id, DOC_FILTER, h.json_path)
                    if f is not None:
                        if len(drops) < lim.max_drops:
                            drops.append(f)
                        else:
                            drop_overflow += 1
            if stopped:
                break
        result.skipped.extend(walker.skipped)
        if walker.skip_overflow:
            result.skipped.append(Skip("$", "skips not recorded", f"{walker.skip_overflow} more skips"))
        # known values: one pass over every leaf of the payload
        if self.known and leaves and not stopped:
            hits.extend(self._known(leaves, side))
        merged = dedupe(hits)
        # below the confidence floor: not a finding, but a countable Drop (after dedupe, so a weak
        # rule's hit does not leave the same string to a stronger-looking entropy hit)
        low = [h for h in merged if h.detector != "known_value"
               and CONFIDENCE_RANK.get(h.confidence, 0) < self._floor] if self._floor > 1 else []
        # no json_path may carry a secret (a secret used as a key, or a path below one); the
        # low-confidence hits' secrets are redacted too, before they become Drops
        merged, result.skipped, drops = redact_paths(merged, result.skipped, result.dropped)
        if low:
            low_ids = {id(h) for h in low}
            merged = [h for h in merged if id(h) not in low_ids]
            for h in low:
                if len(drops) < lim.max_drops:
                    drops.append(Drop(h.rule_id, LOW_CONFIDENCE, h.json_path))
                else:
                    drop_overflow += 1
        result.hits, result.dropped = merged, drops
        if drop_overflow:
            result.skipped.append(Skip("$", "drops not recorded", f"{drop_overflow} more filtered candidates"))
        self.stats["payloads"] += 1
        self.stats["leaves"] += len(leaves)
        self.stats["chars"] += budget.chars
        self.stats["leaves_ruled"] += ruled
        return result

    def _key_flag(self, key: str) -> bool | frozenset[str]:
        """True: a key-driven rule (or detect-secrets' keyword key) looks at this key's values whatever
        their decoding; a set: only under those decodings (bearer, basic); False: none."""
        if KEYWORD_DETECTOR_KEY.search(key):
            return True
        decodings: set[str] = set()
        for rx, dec in self._key_pp:
            if rx.search(key):
                if dec is None:
                    return True
                decodings.update(dec)
        return frozenset(decodings) if decodings else False

    def _flags(self, leaves: list[Leaf]) -> list[Any]:
        """Which leaves go through the rules: those whose key a key-driven rule knows, and those whose
        text the native pass flags (prefilter.py). A leaf under 6 characters with no such key can
        select no rule (`_leaf` looks at its key only). Per leaf: None (skip), True (the rules select
        by their keywords) or the native pass's keyword matches (the selection, already made)."""
        gate = self._gate
        if gate is None:
            return [True] * len(leaves)
        out: list[Any] = [None] * len(leaves)
        idx: list[int] = []
        texts: list[str] = []
        keys: dict[str, Any] = {}  # per payload: a key may be a secret; nothing outlives the scan
        key_flag = self._key_flag
        max_chars = self.limits.max_leaf_chars
        for i, lf in enumerate(leaves):
            k = lf.key
            if k:
                kf = keys.get(k)
                if kf is None:
                    kf = keys[k] = key_flag(k)
                if kf is True or (kf and lf.decoding in kf):
                    out[i] = True
                    continue
            v = lf.value
            if len(v) < 6:
                continue
            if len(v) > max_chars or not v.isascii():
                out[i] = True  # windows, and text where lower() and a caseless byte match differ
                continue
            idx.append(i)
            texts.append(v)
        for i, f in zip(idx, gate.flags(texts)):
            if f is not None:
                out[i] = f
        return out

    def _leaf(self, leaf: Leaf, text: str, found: list | None = None) -> Iterator[tuple[Hit | None, Drop | None]]:
        """The rules on one leaf's text; `found`: the native pass's keyword matches in it, if it ran."""
        key = leaf.key
        path = leaf.json_path
        side = leaf.side
        dec = leaf.decoding
        claimed: set[str] = set()
        low = text.lower() if len(text) >= 6 else ""
        # 1. key-driven rules (flowleaks)
        if key and self.builtin:
            for r in self._pre.key_pp:
                if r.decodings is not None and dec not in r.decodings:
                    continue
                if r.key_matches(key):
                    for s, conf in r.find(leaf, text):
                        if r.id == "bearer-token":
                            conf = bearer_confidence(s)
                        claimed.add(s)
                        yield Hit(r.id, "pattern", s, path, side, conf, None, dec), None
            # KeywordDetector with the synthesized `key: "value"` line
            if KEYWORD_DETECTOR_KEY.search(key) and text.strip():
                yield from self._ds_run(BY_NAME["KeywordDetector"], synth_line(key, text), text, leaf, claimed)
        if not low:
            return
        if leaf.decoded in _DECODED_ELSEWHERE:
            # the decoded leaves repeat this text and are scanned instead, except by catalogue and custom
            # rules: their regexes may need what decoding strips (`acme_key=…` of a form body, `"name":
            # "…"` of a JSON string). Same origin as the decoded leaves: dedupe keeps one row per secret.
            for kind, r in self._select(low, text, found) + self._pre.always_cat:
                if kind == "cat":
                    yield from self._cat(r, text, path, side, dec, claimed)
            return
        # 2. value-keyword rules (none can match a bare GUID, the commonest leaf of run history: no
        # keyword is spelled in hex, and no rule's token fits between its dashes)
        for kind, r in ([] if _BARE_GUID.match(text) else self._select(low, text, found)) + self._pre.always_cat:
            if kind == "cat":
                yield from self._cat(r, text, path, side, dec, claimed)
            elif kind == "pp":
                for s, conf in r.find(leaf, text):
                    claimed.add(s)
                    yield Hit(r.id, "pattern", s, path, side, conf, None, dec), None
            elif r.name == "KeywordDetector":
                # detect-secrets' keyword regexes are slow on long lines (ds #868): look only
                # around each keyword occurrence
                if len(text) <= 512:
                    yield from self._ds_run(r, text, text, leaf, claimed)
                else:
                    for w in keyword_windows(low, text):
                        yield from self._ds_run(r, w, w, leaf, claimed)
            else:
                yield from self._ds_run(r, text, text, leaf, claimed)
        for p in self._pre.always_ds:
            if len(text) >= p.min_len:
                yield from self._ds_run(p, text, text, leaf, claimed)
        # 3. entropy on what no pattern claimed (off with --rules-only: only the user's rules report)
        if len(text) >= 20 and leaf.decoded != "bearer" and self.builtin:
            for tok, filt, conf in entropy_mod.find(leaf, text):
                if tok in claimed or any(tok in c or c in tok for c in claimed if len(c) >= 16):
                    continue
                if filt is None:
                    yield Hit(entropy_mod.RULE_ID, "entropy", tok, path, side, conf, None, dec), None
                else:
                    yield None, Drop(entropy_mod.RULE_ID, filt, path)

    def _select(self, low: str, text: str, found: list | None) -> list:
        if found is None:
            return self._pre.select(low, text)
        return self._pre.selected(found, text, self._gate.gated_rules)

    @staticmethod
    def _cat(r, text: str, path: str, side: str, dec: str, claimed: set[str]):
        """A catalogue or custom rule (entropy, validator and allow-lists are in its candidates)."""
        for s, _ in r.candidates(text):
            claimed.add(s)
            yield Hit(r.id, "pattern", s, path, side, r.confidence, None, dec), None

    def _ds_run(self, p, line: str, text: str, leaf: Leaf, claimed: set[str]):
        if not self._ds.plugins:
            return
        plugin = self._ds.plugins.get(p.name)
        scan_line = _SPACE_RUN.sub(" ", line) if p.name in _SPACE_CUBIC_PLUGINS else line
        found = self._ds.run(p.name, scan_line)
        if p.expand:
            found = [t for s in found for t in expand_tokens(text, s, p.expand)]
        for s in dict.fromkeys(found):
            if len(s) < p.min_len:
                continue
            if p.bounded and not bounded(text, s):
                yield None, Drop(p.rule_id, "unbounded-match", leaf.json_path)
                continue
            f = ds_filter(s, line, plugin)
            if f:
                yield None, Drop(p.rule_id, f, leaf.json_path)
                continue
            claimed.add(s)
            yield Hit(p.rule_id, "pattern", s, leaf.json_path, leaf.side, p.confidence, None, leaf.decoding), None

    def _known(self, leaves: list[Leaf], side: str) -> list[tuple[Hit, str]]:
        out: list[tuple[Hit, str]] = []
        known = self.known
        assert known is not None
        if known.has_substring_values:
            for ti, secret, source in known.match_texts([lf.value for lf in leaves]):
                lf = leaves[ti]
                out.append((Hit(kv_mod.RULE_ID, "known_value", secret, lf.json_path, side, "high", source,
                                lf.decoding), lf.origin))
        # whole-leaf SHA-256 matching finds hash-only inputs; a plaintext value's own whole-leaf hash is
        # found by the substring pass already (its raw and stripped variants), so without hashes
        # loaded the per-leaf HMACs are skipped (same hits: dedupe keeps the substring hit first)
        if known._whole and known.hashes:
            for lf in leaves:
                for source in known.match_whole(lf.value):
                    out.append((Hit(kv_mod.RULE_ID, "known_value", lf.value.strip(), lf.json_path, side, "high",
                                    source, lf.decoding), lf.origin))
        return out
