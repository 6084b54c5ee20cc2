"""The one reader of a Logic Apps / Power Automate workflow definition: the definition inside the
wrappings it comes in (`unwrap_definition`), its triggers and actions (nested ones included), the
strings of a node with their JSON paths, and small facts read off them (action types, trigger type,
connectors, the sides each action secures).

The definition comes from the API and may be malformed: `triggers` as a list, `else` as a string,
`actions` as null, names that are not strings, scopes nested without end. Every function here is
total: it never raises on any JSON value, reads the parts that have the documented shape and ignores
the others; `problems()` names the ignored parts by JSON path, so a sweep can record them and go on.

Documented shape (JSON types; a field may be absent, but when present it must have its type):

    $                                   object
    $.triggers, $.actions               object of name -> object (a node)
    $.parameters                        object of name -> object
    node.type, node.kind                string
    node.inputs                         object (any JSON for Compose)
    node.runAfter                       object of name -> array of strings
    node.runtimeConfiguration           object; .secureData object; .secureData.properties array of strings
    node.actions                        object of name -> object (Scope, Foreach, Until, If)
    node.else, node.default             object with `actions`
    node.cases                          object of name -> object with `actions` (Switch)

Paths use the notation of detectors/payload.py (`$.actions.Scope_1.else`, `$.actions['Get item']`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from detectors.payload import key_path

# Logic Apps allows 8 levels of nested actions; far deeper is not a real definition, and reading
# it would only cost time (the reader is iterative, so depth alone cannot overflow the stack).
MAX_NESTING = 32
MAX_PROBLEMS = 20
_MAX_PATH_CHARS = 240  # a path through long or many action names is cut in its middle

_NESTED = ("actions", "else", "cases", "default")
_CONTAINERS = frozenset({"scope", "if", "switch", "foreach", "until"})  # types whose nodes hold actions
_ANY_INPUTS = frozenset({"compose"})  # Compose takes any JSON value as its inputs
_MAX_WRAPPING = 8  # {definition:{definition:…}} deeper than this is not a flow
# Containers deeper than this (in one action's inputs) are not read: the detection engine's walker
# stops at the same depth, and a recursive helper must not meet a value nested a thousand deep.
MAX_VALUE_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Node:
    """A trigger or an action of the definition."""

    name: str
    path: str  # JSON path of the node: `$.triggers.manual`, `$.actions.Scope.actions.HTTP`
    node: dict
    is_trigger: bool = False
    parent: str | None = None  # the enclosing Scope / If / Switch / Foreach / Until
    depth: int = 0  # 0 for triggers and top-level actions


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Problems:
    """Collects the parts that are not of the documented shape, up to `limit` entries."""

    def __init__(self, limit: int = MAX_PROBLEMS) -> None:
        self.limit = max(1, limit)
        self.items: list[str] = []
        self.more = 0

    def add(self, path: str, why: str) -> None:
        if len(self.items) >= self.limit:
            self.more += 1
            return
        if len(path) > _MAX_PATH_CHARS:
            half = _MAX_PATH_CHARS // 2
            path = path[:half] + "…" + path[-half:]
        self.items.append(f"{path} ({why})")

    def wrong(self, path: str, value: Any, expected: str) -> None:
        self.add(path, f"{_type_name(value)}, expected {expected}")

    def field(self, obj: dict, key: str, path: str, kind: type, expected: str) -> Any:
        """obj[key] when it has the expected type; None (and a problem if present) otherwise."""
        if key not in obj:
            return None
        value = obj[key]
        if isinstance(value, kind):
            return value
        self.wrong(path, value, expected)
        return None

    def listed(self) -> list[str]:
        if not self.more:
            return list(self.items)
        # the last slot says how many were left out, so the list stays within the cap
        total = len(self.items) + self.more
        return self.items[:self.limit - 1] + [f"$ ({total - self.limit + 1} more problems not listed)"]


def _members(container: dict, base: str, probs: _Problems) -> Iterator[tuple[str, str, dict]]:
    """(name, path, node) of each member of a triggers/actions object whose name and node are readable."""
    for name, node in container.items():
        if not isinstance(name, str):
            probs.add(base, f"a name is {_type_name(name)}, expected string")
            continue
        path = key_path(base, name)
        if isinstance(node, dict):
            yield name, path, node
        else:
            probs.wrong(path, node, "object")


def _string_array(value: Any, path: str, probs: _Problems) -> list[str]:
    if not isinstance(value, list):
        probs.wrong(path, value, "array")
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(item)
        else:
            probs.wrong(f"{path}[{i}]", item, "string")
    return out


def _check_node(node: dict, path: str, probs: _Problems) -> None:
    """Reports the fields of one node (other than nested actions) that are not of their shape."""
    kind = probs.field(node, "type", path + ".type", str, "string")
    probs.field(node, "kind", path + ".kind", str, "string")
    if (kind or "").lower() not in _ANY_INPUTS:
        probs.field(node, "inputs", path + ".inputs", dict, "object")
    run_after = probs.field(node, "runAfter", path + ".runAfter", dict, "object")
    if run_after:
        for name, states in run_after.items():
            _string_array(states, key_path(path + ".runAfter", str(name)), probs)
    _secure_props(node, path, probs)


def _secure_props(node: dict, path: str, probs: _Problems) -> frozenset[str]:
    rc = probs.field(node, "runtimeConfiguration", path + ".runtimeConfiguration", dict, "object")
    if rc is None:
        return frozenset()
    rc_path = path + ".runtimeConfiguration.secureData"
    sd = probs.field(rc, "secureData", rc_path, dict, "object")
    if sd is None or "properties" not in sd:
        return frozenset()
    return frozenset(p.lower() for p in _string_array(sd["properties"], rc_path + ".properties", probs))


def _nested(node: dict, path: str, probs: _Problems) -> Iterator[tuple[str, str, dict]]:
    """The actions directly inside a Scope/Foreach/Until (`actions`), If (`else`) or Switch (`cases`,
    `default`), in document order."""
    acts = probs.field(node, "actions", path + ".actions", dict, "object")
    if acts:
        yield from _members(acts, path + ".actions", probs)
    for branch in ("else", "default"):
        b = probs.field(node, branch, f"{path}.{branch}", dict, "object")
        if b is not None:
            inner = probs.field(b, "actions", f"{path}.{branch}.actions", dict, "object")
            if inner:
                yield from _members(inner, f"{path}.{branch}.actions", probs)
    cases = probs.field(node, "cases", path + ".cases", dict, "object")
    if cases:
        for _cname, cpath, case in _members(cases, path + ".cases", probs):
            inner = probs.field(case, "actions", cpath + ".actions", dict, "object")
            if inner:
                yield from _members(inner, cpath + ".actions", probs)


def _read(definition: Any, probs: _Problems) -> list[Node]:
    """Triggers, then every action in document order (each followed by the actions nested in it)."""
    if not isinstance(definition, dict):
        probs.wrong("$", definition, "object")
        return []
    out: list[Node] = []
    triggers = probs.field(definition, "triggers", "$.triggers", dict, "object")
    for name, path, node in _members(triggers or {}, "$.triggers", probs):
        _check_node(node, path, probs)
        out.append(Node(name, path, node, is_trigger=True))
    params = probs.field(definition, "parameters", "$.parameters", dict, "object")
    for _ in _members(params or {}, "$.parameters", probs):
        pass  # only the shape is checked here; posture reads the values
    actions = probs.field(definition, "actions", "$.actions", dict, "object")
    stack = [(name, path, node, None, 0) for name, path, node in _members(actions or {}, "$.actions", probs)]
    stack.reverse()
    while stack:
        name, path, node, parent, depth = stack.pop()
        _check_node(node, path, probs)
        out.append(Node(name, path, node, parent=parent, depth=depth))
        if depth + 1 >= MAX_NESTING:
            if any(k in node for k in _NESTED):
                probs.add(path, f"actions nested deeper than {MAX_NESTING} levels, not read")
            continue
        children = [(n, p, c, name, depth + 1) for n, p, c in _nested(node, path, probs)]
        stack.extend(reversed(children))
    return out


# -- the public readers ---------------------------------------------------------------------------------

def nodes(definition: Any) -> list[Node]:
    """Every readable trigger and action (triggers first, then actions in document order)."""
    return _read(definition, _Problems())


def problems(definition: Any, limit: int = MAX_PROBLEMS) -> list[str]:
    """JSON paths of the parts of `definition` that are not of the documented shape (see the module
    docstring) and that the readers therefore ignore, each as `"<path> (<found>, expected <type>)"`,
    e.g. `$.triggers (list, expected object)`. At most `limit` entries; when more were found, the last
    one says how many were left out. [] for a well-formed definition."""
    probs = _Problems(limit)
    _read(definition, probs)
    return probs.listed()


def node_type(node: Any) -> str:
    """The node's `type` as written ('' when absent or not a string)."""
    t = node.get("type") if isinstance(node, dict) else None
    return t if isinstance(t, str) else ""


def inputs(node: Any) -> Any:
    """The node's `inputs` when readable: an object, or any value for a Compose; None otherwise."""
    if not isinstance(node, dict):
        return None
    value = node.get("inputs")
    if isinstance(value, dict) or node_type(node).lower() in _ANY_INPUTS:
        return value
    return None


def secure_props(node: Any) -> frozenset[str]:
    """The sides a node secures ({'inputs', 'outputs'}, lowercased) from
    runtimeConfiguration.secureData.properties; frozenset() when that is absent or unreadable."""
    return _secure_props(node, "$", _Problems()) if isinstance(node, dict) else frozenset()


def text(value: Any) -> str:
    """A field read as text: a string as written, anything else as absent ('' — not str() of it,
    which could be huge, recurse without end, or put a malformed part into a message)."""
    return value if isinstance(value, str) else ""


def without_nested(node: dict) -> dict:
    """The action node without its nested actions (those are read on their own)."""
    if node_type(node).lower() not in _CONTAINERS:
        return node
    return {k: v for k, v in node.items() if k not in _NESTED}


def strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in obj, in document order, down to MAX_VALUE_DEPTH; iterative."""
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    while stack:
        node, p, depth = stack.pop()
        if isinstance(node, str):
            yield p, node
        elif depth >= MAX_VALUE_DEPTH:
            continue
        elif isinstance(node, dict):
            stack.extend(reversed([(v, key_path(p, str(k)), depth + 1) for k, v in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([(v, f"{p}[{i}]", depth + 1) for i, v in enumerate(node)]))


def unwrap_definition(doc: Any) -> dict | None:
    """The workflow definition inside a bare definition, `{properties:{definition}}` or `{definition}`."""
    for _ in range(_MAX_WRAPPING):
        if not isinstance(doc, dict):
            return None
        if isinstance(doc.get("triggers"), dict) or isinstance(doc.get("actions"), dict):
            return doc
        props = doc.get("properties")
        if isinstance(props, dict) and isinstance(props.get("definition"), dict):
            return props["definition"]
        doc = doc.get("definition")
    return None


def definition_of(doc: Any) -> dict | None:
    """unwrap_definition, or the document itself when it is shaped like a definition (it has
    `triggers` or `actions`) even if those are unreadable: its readable parts are still analysed."""
    d = unwrap_definition(doc)
    if d is None and isinstance(doc, dict) and ("triggers" in doc or "actions" in doc):
        return doc
    return d


def iter_actions(definition: Any) -> Iterator[tuple[str, dict]]:
    """Every action, nested ones included (Scope/If/Switch/Foreach/Until), as (name, action)."""
    for n in nodes(definition):
        if not n.is_trigger:
            yield n.name, n.node


def action_types(definition: Any) -> dict[str, str]:
    """{action or trigger name: its type}; a trigger wins over an action of the same name."""
    found = nodes(definition)
    types = {n.name: node_type(n.node) for n in found if not n.is_trigger}
    types.update({n.name: node_type(n.node) for n in found if n.is_trigger})
    return types


def trigger_type(definition: Any) -> str | None:
    """`type/kind` of the first trigger (`Request/Button`), or its type alone; None without triggers."""
    for n in nodes(definition):
        if n.is_trigger:
            kind = n.node.get("kind")
            t = n.node.get("type")
            t = t if isinstance(t, str) else None
            return f"{t}/{kind}" if isinstance(kind, str) and kind else str(t)
    return None


def connectors(definition: Any) -> list[str]:
    """Connector names used (shared_keyvault, shared_sharepointonline, http, ...), sorted."""
    found: set[str] = set()
    for n in nodes(definition):
        inputs = n.node.get("inputs")
        host = inputs.get("host") if isinstance(inputs, dict) else None
        host = host if isinstance(host, dict) else {}
        api_id = next((v for v in (host.get("apiId"), host.get("connectionName")) if isinstance(v, str) and v), "")
        if api_id:
            found.add(api_id.rsplit("/", 1)[-1])
        elif node_type(n.node).lower() in ("http", "httpwebhook"):
            found.add("http")
    return sorted(found)


def secured_sides(definition: Any) -> dict[str, frozenset[str]]:
    """{action or trigger: {'inputs', 'outputs'} it secures} from runtimeConfiguration.secureData."""
    out: dict[str, frozenset[str]] = {}
    for n in nodes(definition):
        secure = secure_props(n.node)
        if secure:
            out[n.name] = secure
    return out
