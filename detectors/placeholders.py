"""Placeholders: values that stand where a secret goes without being one.

Run history and flow definitions are full of them: sample values pasted from documentation
(`<your-api-key>`, `REPLACE_ME`, `changeme`), masks (`********`, `*sanitized*`), and the template
syntaxes of the tools that deploy flows, whose real value is substituted at release time
(`@@x@@`, Azure DevOps `#{x}#` and `$(x)`, `${x}`, `__x__`, `{{x}}`, `%x%`). A scanner that reports
them sends responders after keys that do not exist, so every detector asks the one question here
before reporting, and nothing else in the project keeps its own list:

* `is_placeholder(value)`: the *whole value* is a placeholder. flowleaks' pattern rules
  (powerplatform.py), the detect-secrets adapter's candidate filter (patterns.py) and the posture
  checks of literal secrets in definitions (scanner/posture) use it;
* `contains_placeholder(token)`: an entropy candidate *holds* a placeholder word or run. The entropy
  stage (entropy_filters.py) sees whole tokens of a random alphabet, where a stub is spelled inside
  the token (`REPLACE_ME_WITH_YOUR_KEY_abc123XYZ`), not as the whole value.

A candidate either drops is recorded under the filter name `FILTER` (`placeholder`) where the
detector records its drops; its examples, both ways, are in filters.py (`FILTERS`).
"""
from __future__ import annotations

import re

FILTER = "placeholder"

# The whole value stripped of whitespace and quotes, case-insensitive: sample words, masks, short
# template variables (`<key>`, `${KEY}`, `{{key}}`, `%KEY%`) and workflow expressions (`@{…}`,
# `@parameters('…')`: resolved at run time, not a literal).
_SAMPLE = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{[^}]*\}|\{\{[^}]*\}\}|@\{?[a-z_]+\(.*|@\{.*\}|%[a-z_]+%|\*+|x{4,}|\.{3,}|changeme|"
    r"replace[_-]?me|your[_-].*|todo|tbd|none|null|undefined|true|false|example.*|dummy.*|placeholder.*|"
    r"redacted|\[redacted\]|secret|password|\*\*\*.*)$")
# The whole value stripped of whitespace only: the release-time substitution syntaxes of the tools
# that deploy flows and solutions (`@@x@@`, Azure DevOps `#{x}#` and `$(x)`, `${x}`, `__x__`, `{{x}}`,
# `%x%`, which may hold anything between their delimiters) and the portal's `*sanitized*` mask.
_TEMPLATE = re.compile(r"(?i)^(?:\*sanitized\*|@@.*@@|#\{.*\}#|\$\(.*\)|\$\{.*\}|__.*__|\{\{.*\}\}|%.*%)$")

# Inside a token: placeholder words, keyboard runs and six repeated characters. Random base64 of the
# lengths the entropy stage looks at spells none of these by chance often enough to matter.
_INSIDE = re.compile(r"(?i)x{4,}|replace|your[_-]?(?:key|secret|token|api|password)|changeme|placeholder|"
                     r"example|dummy|sample|redacted|abcdef|123456")
_REPEAT = re.compile(r"(.)\1{5,}")


def is_placeholder(value: str) -> bool:
    """True when the whole value is a placeholder, not a secret: empty, at most two distinct
    characters (`aaaa`, `-_-_`), a sample word, a mask, a template variable or a workflow expression.
    Surrounding whitespace does not count, nor do quotes around a sample word (`"changeme"`)."""
    v = value.strip()
    s = v.strip("'\"")
    if not s or len(set(s)) <= 2:
        return True
    return _SAMPLE.match(s) is not None or _TEMPLATE.match(v) is not None


def contains_placeholder(token: str) -> bool:
    """True when an entropy candidate holds a placeholder word (`REPLACE`, `your_key`, `example`,
    `xxxx`), a keyboard run (`abcdef`, `123456`) or a character repeated six times: a stub someone
    typed, not random output."""
    return _REPEAT.search(token) is not None or _INSIDE.search(token) is not None
