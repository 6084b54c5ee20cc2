"""What posture speaks in: a posture rule (a definition check with a severity and a remediation), the
finding it reports, and the cause it gives a secret seen in run history.

Findings never carry a secret: literal credentials are reported as `preview()` + keyed `fingerprint()`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from detectors.base import fingerprint as _fingerprint
from detectors.base import preview as _preview

SEVERITIES = ("high", "medium", "low")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


@dataclass(frozen=True, slots=True)
class PostureFinding:
    rule_id: str
    severity: str
    action: str  # action / trigger name, or the environment variable schema name for PA007
    message: str
    remediation: str
    json_path: str  # JSONPath into the definition (or settings file); XML: `/environmentvariabledefinition/type`
    preview: str | None = None
    fingerprint: str | None = None
    flow: str = ""  # flow name as given to analyze_definition
    artifact: str = ""  # file (or zip member) the finding came from; set by lint
    sources: tuple[str, ...] = ()  # the secret sources whose data reaches this action (taint rules)

    @property
    def logical_name(self) -> str:
        """`actions.Scope.actions.Get_secret`: the JSON location without the leading `$.`."""
        p = self.json_path
        return p[2:] if p.startswith("$.") else p.lstrip("$")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


@dataclass(frozen=True, slots=True)
class PostureRule:
    """A posture rule: a check of a flow definition (or a solution's environment variables) for a
    setting that lets secrets reach run history. Not a detectors rule (detectors/rules.py), which
    matches a secret's text; this one names a place in the definition and how to fix it."""

    id: str
    name: str  # SARIF rule name (PascalCase)
    severity: str  # default severity
    title: str  # short description
    help: str  # full description / help text (plain)
    remediation: str  # generic one-line remediation
    examples: dict[str, list[dict]] = field(default_factory=dict, compare=False, repr=False)
    # check(analysis, flow, key) -> findings, for the rules analyze_definition runs (PA001-PA006)
    check: Callable[..., list[PostureFinding]] | None = field(default=None, compare=False, repr=False)
    # advice(action) -> the remediation for that action (a taint.Action); the generic one without it
    advice: Callable[[Any], str] | None = field(default=None, compare=False, repr=False)

    def remediation_for(self, action: Any) -> str:
        """The one-line remediation naming the action to fix."""
        return self.advice(action) if self.advice is not None else self.remediation

    def finding(self, action: str, message: str, remediation: str, json_path: str, *, flow: str = "",
                severity: str | None = None, secret: str | None = None, key: bytes = b"",
                sources: Iterable[str] = ()) -> PostureFinding:
        """A finding of this rule; a `secret` is kept as its preview and keyed fingerprint only."""
        return PostureFinding(
            rule_id=self.id, severity=severity or self.severity, action=action, message=message,
            remediation=remediation, json_path=json_path,
            preview=_preview(secret) if secret is not None else None,
            fingerprint=_fingerprint(key, secret) if secret is not None else None,
            flow=flow, sources=tuple(sorted(sources)))


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a secret seen in run history is there: the posture rule and the action to fix."""

    rule_id: str
    action: str
    remediation: str
    sources: tuple[str, ...] = ()


def sources_text(srcs: Iterable[str]) -> str:
    """The secret sources named in a message: `'A'`, `'A', 'B'`, at most three then `…`."""
    s = sorted(srcs)
    if not s:
        return "a secret source"
    if len(s) == 1:
        return f"'{s[0]}'"
    return "'" + "', '".join(s[:3]) + ("'…" if len(s) > 3 else "'")
