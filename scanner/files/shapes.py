"""One exported document → the bodies to scan in it, each attributed as far as the document says.

Recognised shapes (power-automate-api.md §1.3–1.7):

- a **run** (`m365 flow run get`, the Flow/Logic Apps run object): `properties.trigger` and/or
  `properties.actions`. `--withActions` adds each action's fetched content as `input`/`output`, on
  `actions.<name>` and (the same object, printed twice) on `properties.actions.<name>`; `--withTrigger`
  adds the trigger's outputs as `triggerInformation`. Inline `inputs`/`outputs` (Logic Apps) count
  too. environment, flow and run come from the run's `id`
  (`/environments/{env}/flows/{flow}/runs/{run}`, or `/workflows/{workflow}/runs/{run}`) and `name`.
- an **action** or **repetition** object (`az logicapp run action show`, the ARM action/repetition
  GET): `properties.inputs`/`outputs` beside the links; run, action and repetition from its `id`.
- a **flow definition**: bare (`$schema`/`triggers`/`actions`), `{properties: {definition}}` (flow
  GET, a solution's `Workflows/*.json`) or `{definition}`: side `definition`.
- a **list** of those: a top-level array, `{value: [...]}` (API list responses) or ARM
  `{resources: [...]}`.
- anything else is a **content body** (a content link's raw inputs/outputs JSON, the output of
  `az logicapp run action show-content`, an attachment): side `file`, unless the file's path says
  more: directories named like the content-link URL (`…/runs/{run}/actions/{action}[/repetitions/{rep}]/`,
  `…/environments/{env}/flows/{flow}/`) give run, action and repetition, and a file name naming a side
  (`ActionOutputs.json`, `trigger_inputs.json`, `http-action-outputs.json`) gives the side.

Of a recognised document, the part that is not a body (run metadata, content links with their SAS
`sig`, correlation ids) is scanned too, as one more body with side `file` and the document's
attribution: nothing in a file goes unscanned.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterator

from detectors.payload import key_path

from scanner.posture.model import unwrap_definition

FILE_SIDE = "file"  # a body whose place in run history the file does not say
RUN_SIDES = frozenset({"trigger_inputs", "trigger_outputs", "action_inputs", "action_outputs"})
# body key in an exported trigger/action → inputs or outputs
_BODY_KEYS = (("inputs", "inputs"), ("outputs", "outputs"), ("input", "inputs"), ("output", "outputs"))
_ID = re.compile(r"(?i)(?:/environments/(?P<environment>[^/?#]+))?/(?:flows|workflows)/(?P<flow_id>[^/?#]+)"
                 r"(?:/runs/(?P<run_id>[^/?#]+)(?:/actions/(?P<action>[^/?#]+)"
                 r"(?:/(?:scope)?repetitions/(?P<repetition>[^/?#]+))?)?)?")
# directories laid out like a content link's URL; `runs/{run}` at least (a `flows/` directory alone
# is too common a name to mean a flow id)
_CONTENT_DIRS = re.compile(r"(?i)(?:/environments/(?P<environment>[^/]+))?(?:/(?:flows|workflows)/(?P<flow_id>[^/]+))?"
                           r"/runs/(?P<run_id>[^/]+)(?:/actions/(?P<action>[^/]+)"
                           r"(?:/(?:scope)?repetitions/(?P<repetition>[^/]+))?)?/")
_NAMED_SIDE = re.compile(r"(?i)(trigger|action)[ _.-]?(input|output)s?(?![a-z])")
_MAX_WRAPPING = 8


@dataclass(frozen=True, slots=True)
class Where:
    environment: str | None = None
    flow_id: str | None = None
    run_id: str | None = None
    action: str | None = None
    repetition: str | None = None
    side: str = FILE_SIDE
    run_start: str | None = None  # the run's startTime as exported (findings.run_start)

    @property
    def visible(self) -> bool | None:
        """Exported run content was readable in run history; of anything else the file cannot tell."""
        return True if self.side in RUN_SIDES else None


@dataclass(frozen=True, slots=True)
class Body:
    where: Where
    path: str   # JSONPath of the body in its document ('$': all of it)
    value: Any


def hint_from_name(name: str) -> Where:
    """What a file's path says about its content (see module docstring)."""
    parts = [p for p in re.split(r"[/\\]", name) if p]
    dirs = _CONTENT_DIRS.search("/" + "/".join(parts[:-1]) + "/")
    found = {k: v for k, v in dirs.groupdict().items() if v} if dirs else {}
    side = FILE_SIDE
    m = _NAMED_SIDE.search(parts[-1]) if parts else None
    if m:
        side = f"{m.group(1).lower()}_{m.group(2).lower()}s"
    return Where(side=side, **found)


def bodies(doc: Any, hint: Where) -> list[Body]:
    """Every body of one parsed JSON document, attributed; together they cover all of it."""
    if isinstance(doc, list) and any(_recognised(item) for item in doc):
        return [b for i, item in enumerate(doc) for b in _one(item, f"$[{i}]", hint)]
    if isinstance(doc, dict) and not _recognised(doc):
        for key in ("value", "resources"):
            items = doc.get(key)
            if isinstance(items, list) and any(_recognised(item) for item in items):
                out = [b for i, item in enumerate(items) for b in _one(item, f"$.{key}[{i}]", hint)]
                rest = {k: v for k, v in doc.items() if k != key}
                return out + ([Body(_meta(hint), "$", rest)] if rest else [])
    return list(_one(doc, "$", hint))


def _recognised(doc: Any) -> bool:
    return _is_run(doc) or _is_action(doc) or _definition(doc) is not None


def _one(doc: Any, path: str, hint: Where) -> Iterator[Body]:
    if _is_run(doc):
        yield from _run(doc, path, _from_id(doc, hint))
    elif _is_action(doc):
        yield from _action(doc, path, _from_id(doc, hint))
    elif (found := _definition(doc)) is not None:
        yield from _flow(doc, path, found, _from_id(doc, hint))
    else:
        yield Body(hint, path, doc)


# -- runs --------------------------------------------------------------------------------------------

def _is_run(doc: Any) -> bool:
    props = doc.get("properties") if isinstance(doc, dict) else None
    return isinstance(props, dict) and "definition" not in props and (
        isinstance(props.get("trigger"), dict) or isinstance(props.get("actions"), dict))


def _run(doc: dict, path: str, where: Where) -> Iterator[Body]:
    props = doc["properties"]
    where = replace(where, run_id=where.run_id or _text(doc.get("name")) or None,
                    run_start=_text(props.get("startTime")) or None)
    found: list[tuple[tuple, Body]] = []  # (key path below the run, body)
    trigger = props.get("trigger")
    if isinstance(trigger, dict):
        name = _text(trigger.get("name")) or "trigger"
        found += _executions({"": trigger}, ("properties", "trigger"), f"{path}.properties.trigger",
                             replace(where, action=name), "trigger", named=False)
        if "triggerInformation" in doc:  # m365 --withTrigger: the trigger's outputs (their `body`)
            found.append((("triggerInformation",), Body(replace(where, action=name, side="trigger_outputs"),
                                                        f"{path}.triggerInformation", doc["triggerInformation"])))
    for keys in (("actions",), ("properties", "actions")):  # m365 prints the same actions twice
        actions = doc.get(keys[0]) if len(keys) == 1 else props.get("actions")
        if isinstance(actions, dict):
            found += _executions(actions, keys, path + "".join(f".{k}" for k in keys), where, "action")
    yield from _unique(found)
    rest = _prune(doc, [keys for keys, _ in found])
    if rest:
        yield Body(_meta(where), path, rest)


def _executions(container: dict, keys: tuple, path: str, where: Where, kind: str,
                named: bool = True) -> list[tuple[tuple, Body]]:
    """The bodies of trigger/action executions: `container` maps names to execution objects (the
    trigger's container has one unnamed entry)."""
    out = []
    for name, execution in container.items():
        if not isinstance(execution, dict):
            continue
        at = replace(where, action=str(name)) if named else where
        base = key_path(path, str(name)) if named else path
        for key, io in _BODY_KEYS:
            if key in execution:
                out.append(((*keys, *((name,) if named else ()), key),
                            Body(replace(at, side=f"{kind}_{io}"), f"{base}.{key}", execution[key])))
    return out


def _unique(found: list[tuple[tuple, Body]]) -> Iterator[Body]:
    """Each execution's body once: m365 prints `actions.X` and `properties.actions.X` from one object.
    A second copy that differs is scanned too (it is not the same data)."""
    seen: dict[tuple, list[Any]] = {}
    for _, body in found:
        copies = seen.setdefault((body.where.action, body.where.repetition, body.where.side), [])
        if any(body.value == other for other in copies):  # deep equality, in C
            continue
        copies.append(body.value)
        yield body


# -- actions and repetitions -------------------------------------------------------------------------

def _is_action(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("properties"), dict):
        return False
    kind = _text(doc.get("type")).lower()
    return "/actions/" in _text(doc.get("id")) or kind.endswith(("/actions", "/repetitions", "/scoperepetitions"))


def _action(doc: dict, path: str, where: Where) -> Iterator[Body]:
    if where.action is None and not _text(doc.get("type")).lower().endswith("repetitions"):
        where = replace(where, action=_text(doc.get("name")) or None)
    found = _executions({"": doc["properties"]}, ("properties",), f"{path}.properties", where, "action", named=False)
    yield from (body for _, body in found)
    rest = _prune(doc, [keys for keys, _ in found])
    if rest:
        yield Body(_meta(where), path, rest)


# -- flow definitions --------------------------------------------------------------------------------

def _definition(doc: Any) -> tuple[tuple, dict] | None:
    """(key path, definition) when the document is or wraps a flow definition (as `lint` reads them)."""
    found = unwrap_definition(doc)
    if found is None:
        return None
    keys: tuple = ()
    node = doc
    for _ in range(_MAX_WRAPPING):  # follow the wrappings unwrap_definition followed, to name the path
        if node is found:
            return keys, found
        props = node.get("properties")
        if isinstance(props, dict) and props.get("definition") is found:
            return (*keys, "properties", "definition"), found
        node, keys = node.get("definition"), (*keys, "definition")
    return None


def _flow(doc: Any, path: str, found: tuple[tuple, dict], where: Where) -> Iterator[Body]:
    keys, definition = found
    if where.flow_id is None and keys and isinstance(doc, dict):
        where = replace(where, flow_id=_text(doc.get("name")) or None)
    where = replace(where, run_id=None, action=None, repetition=None)
    yield Body(replace(where, side="definition"), path + "".join(f".{k}" for k in keys), definition)
    rest = _prune(doc, [keys]) if keys else None
    if rest:
        yield Body(_meta(where), path, rest)


# -- helpers -----------------------------------------------------------------------------------------

def _from_id(doc: Any, hint: Where) -> Where:
    """The hint, overridden by what the object's resource `id` says."""
    m = _ID.search(_text(doc.get("id"))) if isinstance(doc, dict) else None
    if not m:
        return hint
    return replace(hint, **{k: v for k, v in m.groupdict().items() if v})


def _meta(where: Where) -> Where:
    """Where the non-body part of a document is recorded: the document's place, side `file`."""
    return replace(where, side=FILE_SIDE)


def _prune(doc: dict, paths: list[tuple]) -> dict:
    """A copy of `doc` without the members at `paths` (key tuples), sharing what is untouched: the
    rest of a document, once its bodies are scanned on their own."""
    here = {p[0] for p in paths if len(p) == 1}
    below: dict[Any, list[tuple]] = {}
    for p in paths:
        if len(p) > 1:
            below.setdefault(p[0], []).append(p[1:])
    out = {}
    for k, v in doc.items():
        if k in here:
            continue
        if k in below and isinstance(v, dict):
            v = _prune(v, below[k])
            if not v:
                continue
        out[k] = v
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
