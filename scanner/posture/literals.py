"""Values typed into a definition: a literal credential (not an expression, not a placeholder), the
copy of a node the detection engine sees (expressions blanked), and the engine's hits on it.

The engine is the caller's (the crawl's, lint's, the Dataverse reader's); posture builds none.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

from detectors.placeholders import is_placeholder

from scanner.posture import model
from scanner.posture.taint import expression_parts, is_literal


def literal_secret(v: Any, min_len: int = 6) -> str | None:
    """The credential typed in as `v` (a literal, `@@` unescaped, stripped), or None when `v` is an
    expression, a placeholder (detectors/placeholders.py) or shorter than `min_len`."""
    if not is_literal(v):
        return None
    s = v[1:] if v.startswith("@@") else v
    s = s.strip()
    if len(s) < min_len or is_placeholder(s):
        return None
    return s


def expression_only(secret: str) -> bool:
    return bool(expression_parts(secret)) and not is_literal(secret)


_NOISE_KEYS = {"runAfter", "metadata", "type", "kind", "runtimeConfiguration", "operationOptions"}


def literal_only(obj: Any, depth: int = 0) -> Any:
    """A copy with workflow expressions blanked, so detectors see only what was typed in literally.
    Structure (and so JSON paths) is kept; noisy keys (runAfter, metadata…) are dropped, and so is
    what lies deeper than model.MAX_VALUE_DEPTH (the engine would not walk it either)."""
    if depth > model.MAX_VALUE_DEPTH:
        return None
    if isinstance(obj, str):
        if obj.startswith("@@"):
            return obj[1:]
        if obj.startswith("@") and not obj.startswith("@{"):
            return ""
        if "@{" in obj:
            out, i = [], 0
            for part in expression_parts(obj):
                j = obj.find("@{" + part, i)
                if j < 0:
                    break
                out.append(obj[i:j])
                out.append(" ")
                i = j + 2 + len(part) + 1
            out.append(obj[i:])
            return "".join(out)
        return obj
    if isinstance(obj, dict):
        return {k: literal_only(v, depth + 1) for k, v in obj.items() if k not in _NOISE_KEYS}
    if isinstance(obj, list):
        return [literal_only(v, depth + 1) for v in obj]
    return obj


def engine_hits(engine: Any, body: Any) -> list[Any]:
    """Hits of the detection engine over one body (side='definition'); [] on any engine failure."""
    try:
        res = engine.scan(body, side="definition")
    except Exception:  # noqa: BLE001 - a detector bug must not hide the posture findings
        return []
    return list(getattr(res, "hits", None) or [])


def engine_session(engine: Any) -> ContextManager[Any]:
    """The engine's scan session (one for all the bodies of a definition), when it has one."""
    if engine is None or not hasattr(engine, "session"):
        return contextlib.nullcontext()
    try:
        return engine.session()
    except Exception:  # noqa: BLE001 - a detector bug must not hide the posture findings
        return contextlib.nullcontext()
