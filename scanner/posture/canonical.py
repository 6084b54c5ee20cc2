"""Canonical JSON text of a definition, and the hash that names a definition version.

`definition_hash` is stored with every flow (a changed hash means a changed definition); it must not
raise on the odd values a definition may hold (names of mixed types, nesting deeper than the encoder
goes), so a canonical writer stands in for json.dumps when that fails, and writes the same text.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def definition_hash(definition: Any) -> str:
    """sha256 hex of the canonical JSON (sort_keys=True, separators=(',', ':'), UTF-8)."""
    try:
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # names of mixed types, or nested beyond the encoder
        text = canonical_json(definition)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dumps_sorted(value: Any) -> str:
    """json.dumps(value, sort_keys=True), and the canonical text when that cannot be made."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return canonical_json(value)


def _json_name(k: Any) -> str:
    """A member name as json.dumps writes it (it turns int/float/bool/None keys into text)."""
    return k if isinstance(k, str) else json.dumps(k) if isinstance(k, (int, float, bool)) or k is None else str(k)


def canonical_json(value: Any) -> str:
    """The text json.dumps(sort_keys=True, separators=(',', ':'), ensure_ascii=False) would give, built
    iteratively (any depth) and with every name as text (so mixed-type names sort). Other values than
    JSON ones are written as JSON strings of their str()."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, _Raw):
            out.append(v.text)
        elif isinstance(v, dict):
            members = sorted(((_json_name(k), x) for k, x in v.items()), key=lambda m: m[0])
            items: list[Any] = [_Raw("{")]
            for i, (k, x) in enumerate(members):
                items += [_Raw(("," if i else "") + json.dumps(k, ensure_ascii=False) + ":"), x]
            stack.extend(reversed(items + [_Raw("}")]))
        elif isinstance(v, (list, tuple)):
            items = [_Raw("[")]
            for i, x in enumerate(v):
                items += ([_Raw(",")] if i else []) + [x]
            stack.extend(reversed(items + [_Raw("]")]))
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out.append(json.dumps(v, ensure_ascii=False))
        else:
            out.append(json.dumps(str(v), ensure_ascii=False))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Raw:
    text: str
