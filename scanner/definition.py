"""Small facts read off a Logic Apps workflow definition: action types, trigger type, connectors."""
from __future__ import annotations

from typing import Any, Iterator


def iter_actions(definition: dict) -> Iterator[tuple[str, dict]]:
    """Every action, nested ones included (Scope/If/Switch/Foreach/Until), as (name, action)."""
    stack: list[Any] = [definition.get("actions") or {}]
    while stack:
        actions = stack.pop()
        if not isinstance(actions, dict):
            continue
        for name, action in actions.items():
            if not isinstance(action, dict):
                continue
            yield name, action
            stack.append(action.get("actions") or {})
            stack.append((action.get("else") or {}).get("actions") or {})
            stack.append((action.get("default") or {}).get("actions") or {})
            for case in (action.get("cases") or {}).values():
                if isinstance(case, dict):
                    stack.append(case.get("actions") or {})


def action_types(definition: dict) -> dict[str, str]:
    types = {name: str(a.get("type") or "") for name, a in iter_actions(definition)}
    for name, trig in (definition.get("triggers") or {}).items():
        if isinstance(trig, dict):
            types[name] = str(trig.get("type") or "")
    return types


def trigger_type(definition: dict) -> str | None:
    for trig in (definition.get("triggers") or {}).values():
        if isinstance(trig, dict):
            kind = trig.get("kind")
            return f"{trig.get('type')}/{kind}" if kind else str(trig.get("type"))
    return None


def connectors(definition: dict) -> list[str]:
    """Connector names used (shared_keyvault, shared_sharepointonline, http, ...), sorted."""
    found: set[str] = set()
    items = list(iter_actions(definition)) + [
        (n, t) for n, t in (definition.get("triggers") or {}).items() if isinstance(t, dict)]
    for _, action in items:
        inputs = action.get("inputs") if isinstance(action.get("inputs"), dict) else {}
        host = inputs.get("host") if isinstance(inputs.get("host"), dict) else {}
        api_id = host.get("apiId") or host.get("connectionName") or ""
        if api_id:
            found.add(str(api_id).rsplit("/", 1)[-1])
        elif str(action.get("type", "")).lower() in ("http", "httpwebhook"):
            found.add("http")
    return sorted(found)


def secured_sides(definition: dict) -> dict[str, frozenset[str]]:
    """{action or trigger: {'inputs', 'outputs'} it secures} from runtimeConfiguration.secureData."""
    out: dict[str, frozenset[str]] = {}
    items = list(iter_actions(definition)) + [
        (n, t) for n, t in (definition.get("triggers") or {}).items() if isinstance(t, dict)]
    for name, node in items:
        secure = ((node.get("runtimeConfiguration") or {}).get("secureData") or {}).get("properties") or []
        if isinstance(secure, list) and secure:
            out[name] = frozenset(str(p).lower() for p in secure)
    return out
