"""Named filters: every candidate a detector drops has a filter name (`Drop.filter`, the `filtered`
table), and every filter carries examples both ways, run by tests/detectors/test_rules_examples.py:

* `dropped`: bodies whose only candidate the filter removes: scanning one reports nothing, and
  records a Drop with the filter's name for `rule_id`;
* `kept`: real-looking secrets placed where the filter looks (under the same key, in the same kind
  of path), still reported by `rule_id` (a pattern rule, or the entropy stage when the value does not
  have the filtered shape): a filter keyed by where a value sits must not hide what sits there.

Example secrets are fake (random characters made for the tests) unless the filter is about public
documentation examples, whose values are quoted from the providers' pages (see doc_examples.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FilterCase:
    body: Any
    rule_id: str              # the rule whose candidate is dropped (dropped) / that still reports (kept)
    secret: str | None = None  # kept: the exact secret expected (None: any)

    def __repr__(self) -> str:  # short test ids; the bodies are fake anyway
        return f"FilterCase({self.rule_id}, {str(self.body)[:40]!r}…)"


@dataclass(frozen=True)
class Filter:
    name: str                 # as recorded in Drop.filter
    description: str
    source: str               # where the shape comes from (a provider's documentation, or flowleaks)
    dropped: tuple[FilterCase, ...] = field(default=(), repr=False)
    kept: tuple[FilterCase, ...] = field(default=(), repr=False)

    def as_doc(self) -> dict:
        return {"name": self.name, "description": self.description, "source": self.source,
                "dropped": [c.body for c in self.dropped], "kept": [c.body for c in self.kept]}


def drop(body: Any, rule_id: str = "high-entropy") -> FilterCase:
    return FilterCase(body, rule_id)


def keep(body: Any, rule_id: str, secret: str | None = None) -> FilterCase:
    return FilterCase(body, rule_id, secret)
