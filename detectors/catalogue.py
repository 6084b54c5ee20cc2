"""The rule catalogue as data: `detectors/rules/*.toml`, one file per provider family.

Each `[[rule]]`:

    id          kebab-case, unique across the catalogue and the built-in rules
    title       what the secret is ("OpenAI project API key")
    provider    who issues it ("OpenAI")
    confidence  high | medium | low (default medium)
    keywords    lowercase literals; the regex runs only on text that contains one (case-insensitive)
    regex       Python `re` syntax with a named group `secret` (the exact value reported)
    entropy     optional: minimum Shannon entropy (bits/char) of the secret
    validate    optional: a named validator (detectors/validators.py), e.g. "github-crc32"
    allow       optional: regexes; a secret that fully matches one is a placeholder, not a finding
    source      where the token format is documented (URL); the rule is written from that format
    tp          [{ text = "...", secret = "..." }]: each text must yield exactly that secret
    fp          ["...", ...]: texts that must not fire

A rule without at least one `tp` and one `fp`, without a `secret` group, or whose examples fail does
not load (`load` raises CatalogueError naming the file and rule). Check a file with

    python -m detectors.catalogue check detectors/rules/<family>.toml
"""
from __future__ import annotations

import re
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .entropy import shannon
from .rules import CONFIDENCE_RANK

RULES_DIR = Path(__file__).parent / "rules"
CONFIDENCES = tuple(CONFIDENCE_RANK)  # high, medium, low
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")


class CatalogueError(ValueError):
    """A rule file or rule that cannot be loaded; the message names the file and the rule."""


@dataclass(frozen=True)
class CatalogueRule:
    id: str
    title: str
    provider: str
    family: str
    confidence: str
    keywords: tuple[str, ...]
    regex: re.Pattern
    entropy: float | None
    validate: str | None
    allow: tuple[re.Pattern, ...]
    source: str
    tp: tuple[tuple[str, str], ...] = field(repr=False)
    fp: tuple[str, ...] = field(repr=False)
    origin: str = "flowleaks"   # or the path of a custom pack

    def candidates(self, text: str) -> Iterator[tuple[str, int]]:
        """(secret, start) of every match that passes entropy, validator and allow-list; the
        keyword prefilter is the caller's (one pass for all rules)."""
        from .validators import VALIDATORS

        for m in self.regex.finditer(text):
            secret = m.group("secret")
            if not secret:
                continue
            if self.entropy is not None and shannon(secret) < self.entropy:
                continue
            if self.validate and not VALIDATORS[self.validate](secret):
                continue
            if any(a.fullmatch(secret) for a in self.allow):
                continue
            yield secret, m.start("secret")

    def fires_on(self, text: str) -> list[str]:
        """The secrets this rule alone reports in `text` (keywords checked as the engine does)."""
        low = text.lower()
        if self.keywords and not any(k in low for k in self.keywords):
            return []
        return [s for s, _ in self.candidates(text)]


def _rule(raw: dict, family: str, where: str) -> CatalogueRule:
    rid = raw.get("id")
    what = f"{where}: rule {rid!r}"
    if not isinstance(rid, str) or not _ID.match(rid):
        raise CatalogueError(f"{what}: id must be kebab-case")
    try:
        regex = re.compile(raw["regex"])
    except KeyError:
        raise CatalogueError(f"{what}: no regex") from None
    except re.error as exc:
        raise CatalogueError(f"{what}: regex does not compile: {exc}") from None
    if "secret" not in regex.groupindex:
        raise CatalogueError(f"{what}: regex has no named group 'secret'")
    keywords = tuple(raw.get("keywords") or ())
    if any(not isinstance(k, str) or not k or k != k.lower() for k in keywords):
        raise CatalogueError(f"{what}: keywords must be non-empty lowercase strings")
    confidence = raw.get("confidence", "medium")
    if confidence not in CONFIDENCES:
        raise CatalogueError(f"{what}: confidence must be one of {CONFIDENCES}")
    validate = raw.get("validate")
    if validate is not None:
        from .validators import VALIDATORS

        if validate not in VALIDATORS:
            raise CatalogueError(f"{what}: unknown validator {validate!r} (known: {sorted(VALIDATORS)})")
    tp = tuple((e["text"], e["secret"]) for e in raw.get("tp") or ())
    fp = tuple(raw.get("fp") or ())
    if not tp or not fp:
        raise CatalogueError(f"{what}: needs at least one tp and one fp example")
    for field_name in ("title", "provider", "source"):
        if not isinstance(raw.get(field_name), str) or not raw[field_name]:
            raise CatalogueError(f"{what}: {field_name} is required")
    try:
        allow = tuple(re.compile(a) for a in raw.get("allow") or ())
    except re.error as exc:
        raise CatalogueError(f"{what}: allow regex does not compile: {exc}") from None
    return CatalogueRule(rid, raw["title"], raw["provider"], family, confidence, keywords, regex,
                         raw.get("entropy"), validate, allow, raw["source"], tp, fp)


def check(rule: CatalogueRule) -> list[str]:
    """What is wrong with the rule's own examples (run through the rule alone), [] if nothing."""
    problems = []
    for text, secret in rule.tp:
        got = rule.fires_on(text)
        if secret not in got:
            problems.append(f"{rule.id}: tp {text[:60]!r} should yield {secret[:12]!r}…, got {[g[:12] for g in got]}")
    for text in rule.fp:
        got = rule.fires_on(text)
        if got:
            problems.append(f"{rule.id}: fp {text[:60]!r} fired ({[g[:12] for g in got]})")
    return problems


def load_file(path: Path) -> list[CatalogueRule]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    rules = [_rule(r, path.stem, str(path)) for r in data.get("rule") or ()]
    for r in rules:
        problems = check(r)
        if problems:
            raise CatalogueError(f"{path}: {problems[0]}")
    return rules


def load(directory: Path = RULES_DIR) -> list[CatalogueRule]:
    """Every built-in catalogue rule, ids unique."""
    rules: list[CatalogueRule] = []
    files = sorted(directory.glob("*.toml"))
    if not files and directory == RULES_DIR:
        # an install without its data files would scan with no provider rule and say nothing
        raise CatalogueError(f"no rule files in {directory}: the installation is incomplete "
                             f"(reinstall flowleaks; detectors/rules/*.toml must be installed)")
    for path in files:
        rules.extend(load_file(path))
    dupes = [i for i, n in Counter(r.id for r in rules).items() if n > 1]
    if dupes:
        raise CatalogueError(f"duplicate rule ids in {directory}: {dupes}")
    return rules


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "check":
        print("usage: python -m detectors.catalogue check FILE.toml...", file=sys.stderr)
        return 2
    bad = 0
    for name in argv[1:]:
        path = Path(name)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            print(f"{path}: {exc}")
            bad += 1
            continue
        rules = data.get("rule") or ()
        for raw in rules:
            try:
                problems = check(_rule(raw, path.stem, str(path)))
            except CatalogueError as exc:
                problems = [str(exc)]
            for p in problems:
                print(p)
            bad += bool(problems)
        print(f"{path}: {len(rules)} rules, {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
