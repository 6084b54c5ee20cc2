"""Rule metadata shared by every detector kind: one `Rule` per reportable rule id.

A rule carries what the docs and the example test need: id (kebab-case), description, detector kind
(`pattern`, `entropy`, `known_value`), confidence, the lowercase keywords its prefilter looks for, and
positive / negative examples. An example is a payload (anything `Engine.scan` accepts) and, for
positives, optionally the exact secret the rule must report.

Examples are fake values made for the tests; none is a live credential.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    body: Any
    secret: str | None = None  # for positives: the exact Hit.secret expected (None: any)
    side: str = "action_outputs"

    def __repr__(self) -> str:  # examples are fake, but keep test ids short
        return f"Example({str(self.body)[:40]!r}…)"


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    kind: str  # pattern | entropy | known_value
    confidence: str = "medium"  # high | medium | low
    keywords: tuple[str, ...] = ()  # lowercase literals; () = no value keyword (key-driven or always)
    positive: tuple[Example, ...] = field(default=(), repr=False)
    negative: tuple[Example, ...] = field(default=(), repr=False)
    source: str = "flowleaks"  # or "detect-secrets:<PluginClass>"

    def as_doc(self) -> dict:
        """Plain dict for documentation (examples included: they are fake values)."""
        return {
            "id": self.id, "description": self.description, "kind": self.kind,
            "confidence": self.confidence, "keywords": list(self.keywords), "source": self.source,
            "positive": [e.body for e in self.positive], "negative": [e.body for e in self.negative],
        }


def ex(body: Any, secret: str | None = None, side: str = "action_outputs") -> Example:
    return Example(body, secret, side)


CONFIDENCE_RANK = {"high": 3, "medium": 2, "low": 1}
