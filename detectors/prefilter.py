"""The native pass: one multi-pattern scan per body decides which leaves the rules look at.

Most leaves of run history cannot hold anything a rule reports (a status, a timestamp, a display name,
a short id): walking them is cheap, running ~300 rules' keyword selection, regexes and the entropy
tokenizer on each is not. The gate is a set of patterns such that **every** hit or filtered candidate
the engine can produce on a leaf's text needs one of them to match in that text:

* every rule keyword (the engine selects a rule only when its keyword is in the lowercased text), caseless;
* a run of 20 characters of the entropy tokenizer's alphabet (`entropy.TOKEN` needs one, and so does
  every keyword-less detect-secrets plugin: Discord and Telegram bot tokens hold a 24- and a 35-run);
* the case-sensitive plugins' own gates (`DSPlugin.gate`: Artifactory, Twilio), written in the syntax
  Python's `re` and Hyperscan read alike;
* custom-pack rules without keywords: their own regex, searched with Python's `re` by both backends
  (a user's regex may use syntax Hyperscan reads differently, e.g. `{,5}`: it must not decide alone).

Hyperscan also runs a *relaxed* form of every catalogue rule's regex (`relax`: named groups dropped,
`\\A`/`\\Z` as line anchors, large or exact repeats widened to `{n,}` with n <= 16, lookarounds
approximated by Hyperscan's prefilter mode). Each relaxed regex matches wherever its rule's regex does,
so a catalogue rule whose relaxed form found nothing in a leaf is not run there (its keyword alone,
`ado` in `download`, does not make it run on a 14 KB body).

The gate only *over*-approximates: a flagged leaf then goes through exactly the engine's per-leaf code,
so the findings do not depend on the backend, only the time does (tests/detectors/test_prefilter.py
runs both backends and the ungated engine over the same corpus and compares every hit and drop).
Leaves the gate cannot judge byte-for-byte (non-ASCII text, where `str.lower()` and a caseless byte
match differ; leaves longer than one scan window) are always looked at; keys are judged by the engine.

Backends, chosen automatically (`FLOWLEAKS_MATCHER=hyperscan|portable` forces one):

* `hyperscan`: Intel Hyperscan (`hyperscan` on PyPI, libhs bundled; x86-64 only). All ASCII leaves of a
  body are joined with newlines and scanned once; each match's end offset names its leaf. The keyword
  matches it reports are also the rule selection (the engine's `select`, without a second pass).
  Compiling the catalogue's relaxed regexes takes ~0.3 s, so a process that installed a database
  cache (`set_database_cache`: the CLI keeps one under the user's cache folder, scanner/pipeline/matcher_cache.py)
  loads the serialised database instead (~1 ms); the cache key is the pattern set and Hyperscan's version.
* `portable`: Aho-Corasick (`pyahocorasick`) for the keywords and Python's `re` for the rest, over the
  same joined text (any platform); catalogue rules there run whenever their keyword is present.

`flags(texts)` returns, per text, None (nothing can fire) or (the keyword matches `[(start, keyword)]`,
the ids of catalogue rules whose relaxed regex matched): the engine selects the rules from those.
"""
from __future__ import annotations

import hashlib
import os
import re
from bisect import bisect_right
from functools import lru_cache
from typing import Callable, Iterable

BACKENDS = ("hyperscan", "portable")
ENV = "FLOWLEAKS_MATCHER"

# A run of the entropy tokenizer's alphabet long enough to be a candidate (entropy.TOKEN, MIN_TOKEN).
# Anchored at the start of the run for Hyperscan so a long run reports once, not at every offset.
TOKEN_RUN = "[A-Za-z0-9+/_.=-]{20}"
_TOKEN_RUN_START = r"(?:^|[^A-Za-z0-9+/_.=-])[A-Za-z0-9+/_.=-]{20}"


class GateSpec:
    """What the gate looks for: caseless literals, case-sensitive regexes (common syntax) and regexes of
    custom rules (Python syntax). Hashable, so one compiled gate serves every Engine of one rule set."""

    __slots__ = ("keywords", "regexes", "python_regexes", "rule_regexes", "_key")

    def __init__(self, keywords: Iterable[str], regexes: Iterable[str] = (),
                 python_regexes: Iterable[tuple[str, int]] = (),
                 rule_regexes: Iterable[tuple[str, str, int]] = ()) -> None:
        # a keyword with non-ASCII characters cannot occur in an ASCII leaf (non-ASCII leaves bypass),
        # nor one with capitals in the lowercased text the engine selects rules by
        self.keywords = tuple(sorted({k for k in keywords if k and k.isascii() and k == k.lower()}))
        self.regexes = tuple(dict.fromkeys(regexes))
        self.python_regexes = tuple(dict.fromkeys(python_regexes))
        self.rule_regexes = tuple(rule_regexes)  # (rule id, Python pattern, re flags): catalogue rules
        self._key = (self.keywords, self.regexes, self.python_regexes, self.rule_regexes)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GateSpec) and self._key == other._key


# (load(name) -> bytes | None, save(name, data)) for serialised Hyperscan databases; None = no cache.
# Set by the application layer (the detectors write no files of their own).
_DB_CACHE: tuple[Callable[[str], bytes | None], Callable[[str, bytes], None]] | None = None


def set_database_cache(load: Callable[[str], bytes | None] | None, save: Callable[[str, bytes], None] | None) -> None:
    global _DB_CACHE
    _DB_CACHE = (load, save) if load and save else None


def hyperscan_available() -> bool:
    """Hyperscan is an optional native dependency (x86-64 wheels only): absent, the portable pass runs.
    Only its absence is tolerated; an installed Hyperscan that fails to import is an error to see."""
    try:
        import hyperscan  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "hyperscan":
            raise
        return False
    return True


def choose_backend(requested: str | None = None) -> str:
    """`requested` (or FLOWLEAKS_MATCHER), else hyperscan when it imports, else portable."""
    want = (requested or os.environ.get(ENV, "") or "auto").strip().lower()
    if want not in BACKENDS + ("auto",):
        raise ValueError(f"{ENV} must be one of hyperscan, portable, auto (got {want!r})")
    if want == "auto":
        return "hyperscan" if hyperscan_available() else "portable"
    if want == "hyperscan" and not hyperscan_available():
        raise ValueError("the hyperscan matcher is not installed here (x86-64 only: pip install hyperscan); "
                         "use FLOWLEAKS_MATCHER=portable")
    return want


_REPEAT = re.compile(r"(?<!\\)\{(\d+)(?:(,)(\d*))?\}\??")
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
RELAX_MIN = 16   # widened repeats keep at most this many mandatory repetitions
RELAX_MAX = 64   # repeats bounded above this are widened (Hyperscan compiles big bounded repeats slowly)


def _widen(m: re.Match) -> str:
    n = int(m.group(1))
    hi = n if not m.group(2) else (int(m.group(3)) if m.group(3) else None)
    if n <= RELAX_MIN and hi is not None and hi <= RELAX_MAX:
        return m.group(0).rstrip("?")  # (laziness changes where a match ends, not whether there is one)
    return "{%d,}" % min(n, RELAX_MIN)


def relax(pattern: str) -> str:
    """A regex, for Hyperscan's prefilter mode over newline-joined leaves, that matches wherever
    `pattern` (Python syntax) matches in one leaf: X{n,m} is widened to X{min(n,16),} (a superset),
    `\\A`/`\\Z` become line anchors, named groups plain groups."""
    p = _NAMED_GROUP.sub("(?:", pattern)
    p = p.replace("\\A", "^").replace("\\Z", "$")
    return _REPEAT.sub(_widen, p)


class PortableGate:
    """Aho-Corasick (pyahocorasick: wheels for every platform) for the keywords over the lowercased
    body, Python's `re` for the token run and the case-sensitive gates; the same keyword matches as
    Hyperscan, so the engine selects from them without its own keyword regex. Catalogue rules run by
    keyword alone here (no relaxed regexes)."""

    name = "portable"
    gated_rules: frozenset[str] = frozenset()

    def __init__(self, spec: GateSpec) -> None:
        import ahocorasick

        # a run of the alphabet consumed whole (one match per run, not one per 20 characters)
        self._cased = re.compile("|".join([TOKEN_RUN.replace("{20}", "{20,}")] + list(spec.regexes)))
        self._ac = None
        if spec.keywords:
            ac = ahocorasick.Automaton()
            for k in spec.keywords:
                ac.add_word(k, k)
            ac.make_automaton()
            self._ac = ac
        self._extra = _python_extras(spec)

    def flags(self, texts: list[str]) -> list[tuple[list, set] | None]:
        if not texts:
            return []
        starts = _starts(texts)
        out: list[tuple[list, set] | None] = [None] * len(texts)
        joined = "\n".join(texts)
        # no pattern here matches across a newline: every leaf holding a match holds the start of one
        # that finditer reports
        for m in self._cased.finditer(joined):
            i = bisect_right(starts, m.start()) - 1
            if out[i] is None:
                out[i] = ([], set())
        if self._ac is not None:
            for end, kw in self._ac.iter(joined.lower()):  # every occurrence, overlapping ones too
                i = bisect_right(starts, end) - 1
                found = out[i]
                if found is None:
                    found = out[i] = ([], set())
                found[0].append((end + 1 - starts[i] - len(kw), kw))
        for x in self._extra:
            for i, t in enumerate(texts):
                if out[i] is None and x.search(t) is not None:
                    out[i] = ([], set())
        return out


class HyperscanGate:
    name = "hyperscan"

    def __init__(self, spec: GateSpec) -> None:
        import hyperscan as hs

        exprs = [_TOKEN_RUN_START.encode()]
        flags = [hs.HS_FLAG_MULTILINE]
        self._kw = (None,) + spec.keywords  # pattern id → keyword (ids 1..K)
        for k in spec.keywords:
            exprs.append(re.escape(k).encode())
            flags.append(hs.HS_FLAG_CASELESS)
        for r in spec.regexes:
            exprs.append(r.encode())
            flags.append(0)
        self._first_rule = len(exprs)
        self._rule_ids: tuple[str, ...] = ()
        name = "hyperscan-" + hashlib.sha256(repr((RELAX_MIN, RELAX_MAX, _TOKEN_RUN_START, hs.__version__,
                                                   exprs, flags, spec.rule_regexes)).encode()).hexdigest()[:32]
        db = self._cached(hs, name) if spec.rule_regexes else None
        fresh = db is None
        if not fresh:
            self._rule_ids = tuple(r for r, _, _ in spec.rule_regexes)
        else:
            db = hs.Database(mode=hs.HS_MODE_BLOCK)
        if fresh and spec.rule_regexes:
            rule_exprs, rule_flags = [], []
            for _, pattern, reflags in spec.rule_regexes:
                rule_exprs.append(relax(pattern).encode())
                rule_flags.append(hs.HS_FLAG_PREFILTER | hs.HS_FLAG_MULTILINE
                                  | (hs.HS_FLAG_CASELESS if reflags & re.I else 0)
                                  | (hs.HS_FLAG_DOTALL if reflags & re.S else 0))
            try:
                all_exprs = exprs + rule_exprs
                db.compile(expressions=all_exprs, ids=list(range(len(all_exprs))), elements=len(all_exprs),
                           flags=flags + rule_flags)
                self._rule_ids = tuple(r for r, _, _ in spec.rule_regexes)
            except hs.error:
                # a rule Hyperscan cannot take even as a prefilter: rules then run by keyword alone
                # (tests/detectors/test_prefilter.py checks that the built-in catalogue compiles)
                db = hs.Database(mode=hs.HS_MODE_BLOCK)
        if not self._rule_ids:
            db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        elif fresh and _DB_CACHE is not None:
            try:
                _DB_CACHE[1](name, hs.dumpb(db))
            except Exception:  # a read-only cache folder costs time, never the scan
                pass
        self.gated_rules = frozenset(self._rule_ids)
        self._db = db
        self._scratch = hs.Scratch(db)
        self._extra = _python_extras(spec)

    @staticmethod
    def _cached(hs, name: str):
        """The serialised database `name` from the cache (the full one, rules included), or None."""
        if _DB_CACHE is None:
            return None
        try:
            data = _DB_CACHE[0](name)
            return hs.loadb(data, hs.HS_MODE_BLOCK) if data else None
        except Exception:  # truncated, another Hyperscan build or CPU: compile instead
            return None

    def flags(self, texts: list[str]) -> list[tuple[list, set] | None]:
        """Per text: None, or (keyword matches [(start, keyword)], ids of gated rules that may match)."""
        if not texts:
            return []
        starts = _starts(texts)
        out: list[tuple[list, set] | None] = [None] * len(texts)
        matches: list[tuple[int, int]] = []
        add = matches.append

        def on_match(pid: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            add((pid, to))

        # ASCII only (the caller's promise), so character offsets are byte offsets
        self._db.scan("\n".join(texts).encode("ascii"), match_event_handler=on_match, scratch=self._scratch)
        kws, nkw, first_rule, rule_ids = self._kw, len(self._kw), self._first_rule, self._rule_ids
        for pid, to in matches:
            i = bisect_right(starts, to - 1) - 1
            found = out[i]
            if found is None:
                found = out[i] = ([], set())
            if 0 < pid < nkw:
                kw = kws[pid]
                found[0].append((to - starts[i] - len(kw), kw))
            elif pid >= first_rule:
                found[1].add(rule_ids[pid - first_rule])
        for x in self._extra:
            for i, t in enumerate(texts):
                if out[i] is None and x.search(t) is not None:
                    out[i] = ([], set())
        return out


def _starts(texts: list[str]) -> list[int]:
    """Where each text begins in `"\\n".join(texts)`: a match's offset names its leaf (bisect)."""
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    return starts


def _python_extras(spec: GateSpec) -> tuple[re.Pattern, ...]:
    # named groups of custom regexes would clash in one alternation: each is its own search
    return tuple(re.compile(p, f) for p, f in spec.python_regexes)


@lru_cache(maxsize=16)
def compiled_gate(spec: GateSpec, backend: str) -> PortableGate | HyperscanGate:
    """One compiled gate per (rule set, backend) in a process: engines share it."""
    return HyperscanGate(spec) if backend == "hyperscan" else PortableGate(spec)
