"""Custom rule packs in gitleaks' TOML format (`--rules FILE`, `FLOWLEAKS_RULES`).

    [[rules]]
    id = "acme-token"
    description = "ACME internal API token"
    regex = '''acme_[a-z0-9]{32}'''
    secretGroup = 0                 # optional: default the first group if the regex has one, else the match
    entropy = 3.0                   # optional: minimum Shannon entropy of the secret
    keywords = ["acme_"]            # optional: the regex runs only on text containing one (case-insensitive)
    [rules.allowlist]               # or [[rules.allowlists]] (several)
    regexes = ['''acme_0{32}''']
    stopwords = ["example"]         # a secret containing one (case-insensitive) is not reported
    regexTarget = "secret"          # or "match": what `regexes` are searched in

    [allowlist]                     # top level: applies to every rule of the pack
    regexes = ['''test''']

Rules that only match file paths (`path` without `regex`) are ignored with a note: flowleaks scans
payloads, not file names. A rule's `path` next to a `regex` is ignored the same way. Go (RE2) syntax
mostly is Python `re` syntax; a flag group such as `(?i)` in the middle of a regex, an error in Python,
is turned into a scoped group `(?i:…)` over the rest of its group. A regex that still does not compile is
a `CustomRulesError` naming the file and the rule. Custom rules have no examples (they are the user's),
they are `high` confidence (the user asked for exactly these) and their ids must not collide with a
built-in rule's (`--rules-only` drops the built-ins).

`CustomRules` pickles as the parsed TOML (never compiled patterns), so scan-files' worker processes
rebuild the same rules.
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .entropy import shannon

CONFIDENCE = "high"


class CustomRulesError(ValueError):
    """A pack that cannot be used; the message names the file (and the rule), never a match."""


@dataclass(frozen=True)
class Allowlist:
    regexes: tuple[re.Pattern, ...] = ()
    stopwords: tuple[str, ...] = ()  # lowercase
    target: str = "secret"           # secret | match

    def allows(self, secret: str, match: str) -> bool:
        text = match if self.target == "match" else secret
        if any(r.search(text) for r in self.regexes):
            return True
        low = secret.lower()
        return any(s in low for s in self.stopwords)


@dataclass(frozen=True)
class CustomRule:
    id: str
    description: str
    regex: re.Pattern
    secret_group: int | str | None  # None: the first group if any, else the whole match
    entropy: float | None
    keywords: tuple[str, ...]
    allowlists: tuple[Allowlist, ...]
    origin: str                      # the pack's path
    confidence: str = CONFIDENCE
    provider: str = "custom"

    def candidates(self, text: str) -> Iterator[tuple[str, int]]:
        """(secret, start) of every match that passes entropy and the allow-lists (the keyword
        prefilter is the engine's)."""
        g = self.secret_group if self.secret_group is not None else (1 if self.regex.groups else 0)
        for m in self.regex.finditer(text):
            secret = m.group(g)
            if not secret:
                continue
            if self.entropy is not None and shannon(secret) < self.entropy:
                continue
            if any(a.allows(secret, m.group(0)) for a in self.allowlists):
                continue
            yield secret, m.start(g)


# `(?i)` (or `(?is)`, …) not at the start of the pattern: Python 3.11+ refuses global flags elsewhere,
# Go applies them from there to the end of the enclosing group. `(?-i)` style clearing has no global
# form in Python either.
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")


def _translate(rx: str) -> str:
    """Go's mid-pattern `(?flags)` → Python's scoped `(?flags:…)` over the rest of the enclosing group."""
    out, i = [], 0
    while True:
        m = _INLINE_FLAGS.search(rx, i)
        if m is None or _escaped(rx, m.start()):
            if m is None:
                out.append(rx[i:])
                return "".join(out)
            out.append(rx[i:m.end()])
            i = m.end()
            continue
        if m.start() == 0 and not out:
            out.append(rx[:m.end()])  # a leading global flag is fine in Python
            i = m.end()
            continue
        end = _group_end(rx, m.end())
        out.append(rx[i:m.start()] + f"(?{m.group(1)}:" + _translate(rx[m.end():end]) + ")")
        i = end


def _escaped(rx: str, pos: int) -> bool:
    n = 0
    while pos - n - 1 >= 0 and rx[pos - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def _group_end(rx: str, start: int) -> int:
    """Index of the `)` closing the group that encloses `start` (or len(rx)), skipping classes/escapes."""
    depth, i, in_class = 0, start, False
    while i < len(rx):
        c = rx[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if rx[i + 1:i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return len(rx)


def _compile(rx: str, what: str) -> re.Pattern:
    try:
        return re.compile(rx)
    except re.error:
        pass
    try:
        return re.compile(_translate(rx))
    except re.error as exc:
        # re.error's text names the position and the construct, not the text scanned
        raise CustomRulesError(f"{what}: regex does not compile in Python: {exc}") from None


def _allowlist(raw: object, what: str) -> Allowlist:
    if not isinstance(raw, dict):
        raise CustomRulesError(f"{what}: allowlist must be a table")
    target = raw.get("regexTarget", "secret")
    if target not in ("secret", "match"):
        raise CustomRulesError(f"{what}: allowlist regexTarget must be 'secret' or 'match' (got {target!r})")
    regexes = tuple(_compile(r, f"{what}: allowlist") for r in raw.get("regexes") or ())
    stopwords = tuple(str(s).lower() for s in raw.get("stopwords") or () if str(s))
    return Allowlist(regexes, stopwords, target)


@dataclass
class CustomRules:
    """The packs given with `--rules`, parsed; `rules_only` drops the built-in rule set."""

    packs: tuple[tuple[str, dict], ...] = ()   # (path, parsed TOML): what pickles
    rules_only: bool = False
    rules: list[CustomRule] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for path, data in self.packs:
            top = [_allowlist(data["allowlist"], f"{path}: [allowlist]")] if "allowlist" in data else []
            for raw in data.get("rules") or ():
                rule = self._rule(path, raw, top)
                if rule is None:
                    continue
                if rule.id in seen:
                    raise CustomRulesError(f"{path}: rule {rule.id!r}: id already defined in {seen[rule.id]}")
                seen[rule.id] = path
                self.rules.append(rule)

    def _rule(self, path: str, raw: dict, top: list[Allowlist]) -> CustomRule | None:
        rid = raw.get("id")
        what = f"{path}: rule {rid!r}"
        if not isinstance(rid, str) or not rid:
            raise CustomRulesError(f"{what}: id is required")
        if "regex" not in raw:
            if "path" in raw:
                self.notes.append(f"{path}: rule {rid!r} matches file paths only; ignored (flowleaks scans payloads)")
                return None
            raise CustomRulesError(f"{what}: no regex")
        regex = _compile(str(raw["regex"]), what)
        group = raw.get("secretGroup")
        if group is not None:
            if not isinstance(group, int) or isinstance(group, bool) or not 0 <= group <= regex.groups:
                raise CustomRulesError(f"{what}: secretGroup must be an integer from 0 to {regex.groups}")
        entropy = raw.get("entropy")
        if entropy is not None and not isinstance(entropy, (int, float)):
            raise CustomRulesError(f"{what}: entropy must be a number")
        lists = [raw["allowlist"]] if "allowlist" in raw else []
        lists += list(raw.get("allowlists") or ())
        allow = tuple(_allowlist(a, what) for a in lists) + tuple(top)
        keywords = tuple(str(k).lower() for k in raw.get("keywords") or () if str(k))
        return CustomRule(rid, str(raw.get("description") or rid), regex, group,
                          float(entropy) if entropy is not None else None, keywords, allow, path)

    @property
    def digest(self) -> str:
        """Identity of the packs' content (for the engine version / cache digest)."""
        h = hashlib.sha256(b"flowleaks custom rules v1")
        h.update(b"rules-only" if self.rules_only else b"with-builtins")
        for path, data in self.packs:
            h.update(path.encode() + b"\0" + json.dumps(data, sort_keys=True, default=str).encode() + b"\0")
        return h.hexdigest()[:32]

    def __reduce__(self):  # parsed TOML only: the workers compile their own patterns
        return (CustomRules, (self.packs, self.rules_only))


def split_paths(value: str | None) -> list[str]:
    import os

    return [p for p in (value or "").split(os.pathsep) if p]


def load_packs(paths: Sequence[str], rules_only: bool = False) -> CustomRules:
    packs = []
    for p in paths:
        try:
            data = tomllib.loads(Path(p).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CustomRulesError(f"{p}: cannot read: {exc.strerror or type(exc).__name__}") from None
        except tomllib.TOMLDecodeError as exc:
            raise CustomRulesError(f"{p}: not valid TOML: {exc}") from None
        packs.append((str(p), data))
    return CustomRules(tuple(packs), rules_only)
