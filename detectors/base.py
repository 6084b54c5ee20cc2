"""The vocabulary every detector speaks: Leaf in, Hit out; Skip and Drop for what was not reported.

A Hit holds the secret in memory only so the engine can fingerprint and redact it; nothing that
persists or prints a Hit may read `.secret` except `fingerprint()` and `preview()` below.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

SIDES = ("trigger_inputs", "trigger_outputs", "action_inputs", "action_outputs", "definition")
DETECTORS = ("pattern", "entropy", "known_value", "posture")

# Secrets shorter than this show no leading characters at all in a preview: four characters of an
# eight-character password are half of it.
PREVIEW_MIN_LENGTH = 16
PREVIEW_CHARS = 4


@dataclass(frozen=True, slots=True)
class Leaf:
    """One string to scan, with where it came from.

    json_path notation: JSONPath from the body root (`$.headers['x-api-key']`, `$.body.items[3]`);
    a decoded layer is appended with a marker: `<json>` stringified JSON, `?name` a query parameter,
    `<form>.name` a form field, `<base64>` a `$content` body, `<basic>.user|.password`,
    `<bearer>` a bearer token, `<xml>/a/b` XML text or `/a/@attr` attributes.
    """

    value: str
    json_path: str
    key: str | None = None
    side: str = "action_outputs"
    decoding: str = "raw"  # raw | json | query | form | base64 | basic | bearer | xml
    # json_path of the JSON string leaf this leaf was decoded from (== json_path for raw leaves);
    # the engine dedupes hits per origin so one secret found in a URL and in its `?sig` is one hit.
    origin: str = ""
    # the layer the walker decoded *from* this leaf ('' if none): json | query | form | base64 |
    # basic | bearer | xml. The engine skips work on the encoded text that the decoded leaves repeat.
    decoded: str = ""

    def __repr__(self) -> str:  # a leaf may be a secret: never show its value
        return (f"Leaf(json_path={self.json_path!r}, key={self.key!r}, side={self.side!r}, "
                f"decoding={self.decoding!r}, len={len(self.value)})")


@dataclass(slots=True)
class Hit:
    rule_id: str
    detector: str  # pattern | entropy | known_value
    secret: str = field(repr=False)  # never persisted or printed; see module docstring
    json_path: str = "$"
    side: str = "action_outputs"
    confidence: str = "medium"  # high | medium | low
    known_secret: str | None = None  # for known_value: vault/name or input line, never the value
    decoding: str = "raw"

    def __repr__(self) -> str:  # a Hit in a traceback must not show its secret
        return (f"Hit(rule_id={self.rule_id!r}, detector={self.detector!r}, "
                f"json_path={self.json_path!r}, preview={preview(self.secret)!r})")


@dataclass(frozen=True, slots=True)
class Skip:
    """Something the walker or engine did not scan, and why (lands in the `skipped` table)."""

    json_path: str
    reason: str  # e.g. 'too deep', 'leaf too long', 'budget exceeded', 'binary'
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """A candidate a filter removed: countable and explainable (lands in the `filtered` table)."""

    rule_id: str
    filter: str
    json_path: str


@dataclass(slots=True)
class ScanResult:
    hits: list[Hit] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    dropped: list[Drop] = field(default_factory=list)


def preview(secret: str) -> str:
    """Redacted preview: at most the first 4 characters, '…', then the length: `ghp_…(40)`."""
    n = len(secret)
    head = secret[:PREVIEW_CHARS] if n >= PREVIEW_MIN_LENGTH else ""
    return f"{head}…({n})"


def fingerprint(key: bytes, secret: str) -> str:
    """Keyed fingerprint: lowercase hex HMAC-SHA256(key, secret as UTF-8). Not reversible without key."""
    return hmac.new(key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
