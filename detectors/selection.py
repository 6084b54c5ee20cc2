"""Rule selection: which rules a leaf's text can match, found by one regex pass over it.

Every value rule names the lowercase literals its regex needs (`Rule.keywords`, a catalogue rule's
`keywords`); `RuleSelector.select` finds them all in the lowercased text with one alternation of every
keyword (factored as a trie) and returns the rules they select, plus the case-sensitive detect-secrets
plugins whose literal is in the text as written. `gate_spec` tells the native pass (prefilter.py) what
to look for so that it can skip the leaves no rule could select; `selected` makes the same selection
from the native pass's keyword matches.
"""
from __future__ import annotations

import re
from typing import Any

from .patterns import BY_NAME, DS_PLUGINS, KEYWORD_DETECTOR_VALUE_KEYWORDS
from .powerplatform import RULES as PP_RULES
from .prefilter import GateSpec


class RuleSelector:
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
        for k in KEYWORD_DETECTOR_VALUE_KEYWORDS:
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
        self.regex = re.compile(trie_regex(kws)) if kws else None

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


def trie_regex(words: tuple[str, ...] | list[str]) -> str:
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
