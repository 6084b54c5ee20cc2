"""The detection engine: walk a payload, prefilter, run rules, entropy and known values, dedupe.

    known = KnownValues(key=fingerprint_key)
    engine = Engine(known=known, limits=Limits())
    with engine.session():                      # one detect-secrets settings context per scan
        result = engine.scan(body, side="action_outputs")

Per payload:

1. the walker (`payload.py`) yields string Leaves with JSON paths, decoding nested layers;
2. per leaf, one combined keyword regex over the lowercased text (plus a key-name regex) selects the
   pattern rules that can match — flowleaks' rules (`powerplatform.py`) and detect-secrets plugins
   (`patterns.py`, via `analyze_line`, with a synthesized `key: "value"` line for KeywordDetector);
3. the entropy stage (`entropy.py`) on tokens no pattern claimed; filtered candidates become Drops;
   a pattern or entropy candidate that is a provider's documentation example (`doc_examples.py`)
   becomes `Drop(rule, 'documentation example')`, whichever rule found it;
4. known values (`known_values.py`): one substring pass over all leaves of the payload, plus a
   whole-leaf SHA-256 check for hash-only inputs;
5. dedupe, one finding per secret occurrence: one hit per (origin string, secret), preferring
   known_value > pattern > entropy, then confidence, then a specific rule over a generic one; the kept
   hit takes the most specific json_path among the duplicates. Then, within one origin, a hit whose
   secret contains (or is contained in) a better hit's secret is the same leak and goes: a Key Vault
   value seen as a known value is not also a `high-entropy` row, nor is a password that a connection
   string rule reported also a `secret-keyword` row. (The same secret at two paths of one body stays
   two hits, one per path: tests/detectors/test_payload_walker.py);
6. confidence floor: hits below `min_confidence` (default `medium`: a short random-looking token under
   a neutral key is `low`) become `Drop(rule, 'low confidence')`; known values always count.

Leaves longer than `Limits.max_leaf_chars` are scanned in windows overlapping by `window_overlap`.
A per-payload work budget (characters and wall time) stops the scan with Skip 'budget exceeded' at the
json_path where it stopped. `scan` never raises: an internal error becomes Skip 'detector error' whose
detail is the exception type only.
"""
from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any, Iterator

from . import catalogue as catalogue_mod
from . import entropy as entropy_mod
from . import known_values as kv_mod
from .base import Drop, Hit, Leaf, ScanResult, Skip
from .custom import CustomRules, CustomRulesError
from .doc_examples import FILTER as DOC_FILTER
from .doc_examples import is_documentation_example
from .filters import Filter, drop, keep
from .known_values import KnownValues
from .patterns import BY_NAME, DS_PLUGINS, DSAdapter, bounded, ds_filter, ds_rules, expand_tokens, synth_line
from .payload import Limits, Walker, body_from_input, redact_paths
from .prefilter import GateSpec, choose_backend, compiled_gate
from .powerplatform import RULES as PP_RULES
from .powerplatform import bearer_confidence
from .rules import CONFIDENCE_RANK, Rule, ex

__all__ = ["Engine", "FILTERS", "Limits", "RULES", "rules_by_id"]

# -- the rule registry ---------------------------------------------------------------------------
# The catalogue (detectors/rules/*.toml) loads at import: a broken built-in rule file is a bug that
# must stop every command (and the tests), not silently shrink the rule set.
CATALOGUE: list[catalogue_mod.CatalogueRule] = catalogue_mod.load()


def _catalogue_rule(r: catalogue_mod.CatalogueRule) -> Rule:
    # the examples sit in a `note` field: free text, as a Compose output or an HTTP body carries them
    return Rule(r.id, r.title, "pattern", r.confidence, r.keywords,
                tuple(ex({"note": t}, secret) for t, secret in r.tp), tuple(ex({"note": t}) for t in r.fp),
                source=f"flowleaks:{r.family}.toml")


RULES: list[Rule] = ([r.rule for r in PP_RULES] + ds_rules() + [_catalogue_rule(r) for r in CATALOGUE]
                     + [entropy_mod.RULE, kv_mod.RULE])


def rules_by_id() -> dict[str, Rule]:
    return {r.id: r for r in RULES}


# -- the filter registry (every Drop.filter name with examples; entropy's own are in entropy.py) --
LOW_CONFIDENCE = "low confidence"
_AWS_DOC_ID, _AWS_DOC_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_FAKE_AWS_ID = "AKIAQ3EGT7NZK5XW2PLM"  # AWS key id shape, random (fake)
FILTERS: tuple[Filter, ...] = (
    Filter(DOC_FILTER, "A provider's documented example credential, whichever rule (pattern, detect-secrets "
                       "plugin, entropy) found it; known values are not checked (the user gave them).",
           "AWS CLI / SigV4 docs, Azurite docs, Azure Storage SAS docs, Stripe API docs (doc_examples.py)",
           dropped=(drop({"aws_access_key_id": _AWS_DOC_ID}, "aws-access-key"),
                    drop({"notes": f"aws configure: {_AWS_DOC_ID}"}, "aws-access-key"),
                    drop({"password": _AWS_DOC_SECRET}, "secret-keyword"),
                    drop({"credentials": f"[default]\naws_access_key_id = {_AWS_DOC_ID}\n"
                                         f"aws_secret_access_key = {_AWS_DOC_SECRET}\n"}, "aws-access-key"),
                    # the Azurite docs' connection string
                    drop({"cs": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={_AZURITE_KEY};"
                                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}, "azure-storage-account-key"),
                    drop({"data": _AZURITE_KEY}, "high-entropy"),
                    # found by the catalogue's Stripe rule (detectors/rules), dropped all the same
                    drop({"stripe": "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}, "stripe-test-key"),
                    # the Azure Storage "Service SAS examples" page's request URL
                    drop({"url": "https://myaccount.blob.core.windows.net/pictures/profile.jpg?sv=2012-02-12&st=2009-02-09"
                                 "&se=2009-02-10&sr=c&sp=r&si=YWJjZGVmZw%3d%3d&sig=dD80ihBh5jfNpymO5Hg1IdiJIEvHcJpCMiCMnN%2fRnbI%3d"},
                         "azure-sas-token")),
           kept=(keep({"aws_access_key_id": _FAKE_AWS_ID}, "aws-access-key", _FAKE_AWS_ID),
                 keep({"notes": f"old {_AWS_DOC_ID}, new {_FAKE_AWS_ID}"}, "aws-access-key", _FAKE_AWS_ID),
                 keep({"cs": entropy_mod._CONN}, "azure-storage-account-key", entropy_mod._KEY88))),
    Filter(LOW_CONFIDENCE, "A hit below the engine's confidence floor (`Engine(min_confidence=…)`, CLI "
                           "`--min-confidence`; default medium): short random-looking tokens under neutral keys, "
                           "provider look-alikes (a documented prefix on a shape the provider does not issue).",
           "flowleaks",
           dropped=(drop({"value": entropy_mod._RND24}), drop({"Reference": "Zr8Kx2Nm4Qe6Wt3Yb7Lp1Vd"}),
                    # provider look-alikes: a GitHub prefix on the wrong length, a Stripe publishable key
                    drop({"token": "ghp_Xk29sLq8Wm3Zr7Tn4Yb1Qz5Vc8Hj2P"}),
                    drop({"stripe": "pk_live_51Hx3Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8"})),
           kept=(keep({"value": entropy_mod._RND40}, "high-entropy", entropy_mod._RND40),
                 keep({"token": entropy_mod._GH}, "github-token", entropy_mod._GH),
                 keep({"storageKey": entropy_mod._RND24}, "high-entropy", entropy_mod._RND24))),
) + entropy_mod.FILTERS


def filters_by_name() -> dict[str, Filter]:
    return {f.name: f for f in FILTERS}


def custom_rule(r) -> Rule:
    """Registry view of a custom (gitleaks-format) rule: its source is the pack's path."""
    return Rule(r.id, r.description, "pattern", r.confidence, r.keywords, source=r.origin)


def _ruleset_digest(root: Path | None = None) -> str:
    """The rule set's identity: every detector module's source (rules, filters, walker, decoders) and
    detect-secrets' version. Any rule upgrade changes it, so cached scan results are not reused."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(b"flowleaks ruleset v1")
    for path in sorted((root or Path(__file__).parent).rglob("*")):
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        h.update(version("detect-secrets").encode())
    except PackageNotFoundError:
        pass
    return h.hexdigest()[:32]


RULESET_DIGEST = _ruleset_digest()


_DETECTOR_RANK = {"known_value": 3, "pattern": 2, "entropy": 1}
# Keys that make KeywordDetector look (mirror of its DENYLIST, lowercase, as a search regex)
_DS_KEYWORD_KEY = re.compile(r"(?i)(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|"
                             r"private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|"
                             r"secret|contraseña|contrasena)")
_VALUE_KEYWORDS_FOR_KEYWORD_DETECTOR = ("password", "passwd", "pwd", "secret", "api_key", "apikey")


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


def _keyword_windows(low: str, text: str) -> Iterator[str]:
    spans: list[list[int]] = []
    for k in _VALUE_KEYWORDS_FOR_KEYWORD_DETECTOR:
        i = low.find(k)
        while i >= 0 and len(spans) < 64:
            spans.append([max(0, i - 64), min(len(text), i + len(k) + 256)])
            i = low.find(k, i + 1)
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged:
        yield text[a:b]


class _Prefilter:
    """keyword → value rules, found by one regex pass over the lowercased text (see `select`).

    `builtin=False` (`--rules-only`) leaves only the custom rules; `extra` are catalogue-shaped rules
    (`candidates(text)`): the built-in catalogue and custom packs, both ("cat", rule) items."""

    def __init__(self, extra: list | tuple = (), builtin: bool = True) -> None:
        kw_to: dict[str, list] = {}
        self.always_pp = []
        self.key_pp = []
        self.always_cat: list = []  # catalogue / custom rules without keywords: every leaf
        for r in extra:
            if r.keywords:
                for k in r.keywords:
                    kw_to.setdefault(k, []).append(("cat", r))
            else:
                self.always_cat.append(("cat", r))
        self.always_ds: list = []
        self.case_sensitive: list = []  # (literal, item) checked with `in` on the original text
        if builtin:
            self._builtin(kw_to)
        self.kw_to = kw_to
        self.keywords = tuple(sorted(kw_to))
        self._compile()

    def _builtin(self, kw_to: dict[str, list]) -> None:
        for r in PP_RULES:
            if r.rule.keywords:
                for k in r.rule.keywords:
                    kw_to.setdefault(k, []).append(("pp", r))
            elif r.key_re is not None:
                self.key_pp.append(r)
            else:
                self.always_pp.append(r)
        for p in DS_PLUGINS:
            if p.name == "KeywordDetector":
                continue
            if p.keywords:
                for k in p.keywords:
                    if k != k.lower():
                        self.case_sensitive.append((k, ("ds", p)))
                    else:
                        kw_to.setdefault(k, []).append(("ds", p))
            else:
                self.always_ds.append(p)
        for k in _VALUE_KEYWORDS_FOR_KEYWORD_DETECTOR:
            kw_to.setdefault(k, []).append(("ds", BY_NAME["KeywordDetector"]))

    def _compile(self) -> None:
        """One alternation of every keyword, longest first, factored as a trie (sre tries the
        branches of an alternation one by one at each position; a trie makes that one character
        test per branch level). A keyword inside a longer one that matched at the same place, or an
        occurrence overlapping the previous match, must still select its rules: `select` resumes the
        search one character after each match's start, and each keyword's items include those of
        every keyword it contains."""
        kws = self.keywords
        self.items_of: dict[str, list] = {}
        for k in kws:
            seen: dict[int, Any] = {}
            for k2 in kws:
                if k2 in k:
                    for item in self.kw_to[k2]:
                        seen[id(item[1])] = item
            self.items_of[k] = list(seen.values())
        self.regex = re.compile(_trie_regex(kws)) if kws else None

    def gate_spec(self) -> GateSpec | None:
        """What the native pass must look for so that no leaf it passes over could select a rule
        (prefilter.py); None when a rule runs on every leaf whatever its text (the gate is off)."""
        if self.always_pp:
            return None
        regexes: list[str] = []
        for lit, (_, p) in self.case_sensitive:
            regexes.extend(p.gate or (re.escape(lit),))
        python = [(r.regex.pattern, r.regex.flags) for _, r in self.always_cat]
        # built-in catalogue rules only: their relaxed regexes are checked against their examples by the
        # backend equivalence test; a custom pack's regex is the user's and is selected by keyword alone
        rules = {id(r): (r.id, r.regex.pattern, r.regex.flags) for items in self.kw_to.values()
                 for kind, r in items if kind == "cat" and getattr(r, "origin", None) == "flowleaks"}
        return GateSpec(self.keywords, regexes, python, sorted(rules.values()))

    def selected(self, found: tuple[list[tuple[int, str]], set[str]], text: str, gated: frozenset[str]) -> list:
        """`select` from the native pass's keyword matches (start, keyword), in `select`'s order: at each
        start the longest keyword there, each keyword's items once, then the case-sensitive ones. A
        catalogue rule in `gated` whose relaxed regex did not match (not in found[1]) cannot fire: left out."""
        seen: dict[int, Any] = {}
        kw_found, rules_found = found
        if kw_found:
            longest: dict[int, str] = {}
            for start, kw in kw_found:
                if len(kw) > len(longest.get(start, "")):
                    longest[start] = kw
            items_of = self.items_of
            for start in sorted(longest):
                for item in items_of[longest[start]]:
                    r = item[1]
                    if item[0] == "cat" and r.id in gated and r.id not in rules_found:
                        continue
                    seen[id(r)] = item
        for lit, item in self.case_sensitive:
            if lit in text:
                seen[id(item[1])] = item
        return list(seen.values())

    def select(self, low: str, text: str) -> list:
        seen: dict[int, Any] = {}
        rx = self.regex
        if rx is not None:
            search, items_of = rx.search, self.items_of
            m = search(low)
            while m is not None:
                for item in items_of[m.group()]:
                    seen[id(item[1])] = item
                m = search(low, m.start() + 1)
        for lit, item in self.case_sensitive:
            if lit in text:
                seen[id(item[1])] = item
        return list(seen.values())


def _trie_regex(words: tuple[str, ...] | list[str]) -> str:
    """A regex matching exactly `words` at a position, preferring the longest (a factored trie)."""
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}

    def build(node: dict) -> str:
        end = "" in node
        branches = [re.escape(c) + build(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:  # a word ends here: the longer continuations are optional (greedy: longest first)
            return (f"(?:{body})?" if len(branches) > 1 or len(body) > 1 else body + "?")
        return body

    return build(trie)


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
        extra = (list(CATALOGUE) if self.builtin else []) + (list(custom.rules) if custom else [])
        if custom:
            # ids name findings and suppressions: one id, one meaning (entropy's and known values'
            # ids stay reserved under --rules-only too)
            taken = {r.id for r in (RULES if self.builtin else [entropy_mod.RULE, kv_mod.RULE])}
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
        self._pre = _Prefilter(extra, self.builtin)
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
        import hashlib

        known = self.known.digest() if self.known is not None else "none"
        custom = self.custom.digest if self.custom is not None else "none"
        return hashlib.sha256(f"{RULESET_DIGEST}|{custom}|{known}|{self.limits!r}|{self.min_confidence}".encode()
                              ).hexdigest()[:32]

    def rules(self) -> list[Rule]:
        """Every rule this engine reports under: the built-in set (unless rules-only), the custom
        packs' rules, and known values."""
        builtin = [r for r in RULES if r.id != kv_mod.RULE_ID] if self.builtin else []
        custom = [custom_rule(r) for r in self.custom.rules] if self.custom else []
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
                        # entropy checked its candidates already (entropy.classify)
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
        merged = _dedupe(hits)
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
        if _DS_KEYWORD_KEY.search(key):
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
            if _DS_KEYWORD_KEY.search(key) and text.strip():
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
                    for w in _keyword_windows(low, text):
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


# Which rule keeps a secret that several pattern rules of equal confidence report (the more specific
# one). First, a rule whose keyword is part of the secret itself (a token format: `PMAK-…`,
# `GOCSPX-…`) beats one that found the secret by its context (an `x-api-key` header, a `client_secret`
# field, a `mysql://` URL). Then: generic shapes < a detect-secrets plugin or a flowleaks rule that knows
# the secret only by where it sits (a bearer header, an api-key header: no provider) < a catalogue
# provider rule < flowleaks' Power Platform rules (written for run history) < a custom pack rule.
_GENERIC = frozenset({"secret-keyword", "jwt"})
_CONTEXT_ONLY = frozenset({"bearer-token", "api-key-header", "client-secret-body", "basic-auth-header"})
_SPECIFICITY: dict[str, int] = {**{p.rule_id: 1 for p in DS_PLUGINS}, **{r.id: 2 for r in CATALOGUE},
                                **{r.id: 3 for r in PP_RULES}, **{i: 1 for i in _CONTEXT_ONLY},
                                **{i: 0 for i in _GENERIC}}
_CUSTOM_SPECIFICITY = 4
_KEYWORDS: dict[str, tuple[str, ...]] = {r.id: tuple(k.lower() for k in r.keywords) for r in RULES}


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


def _dedupe(pairs: list[tuple[Hit, str]]) -> list[Hit]:
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
