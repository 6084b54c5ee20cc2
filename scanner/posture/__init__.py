"""Posture rules: what in a flow definition (or a solution's environment variables) lets secrets reach
run history. Pure functions over dicts: no HTTP, no store.

Rules (see `RULES` for the help text each one carries):

  PA001 high    secret source (Key Vault Get secret, RetrieveEnvironmentVariableSecretValue, Key Vault
                over HTTP, OAuth token endpoint) without Secure Outputs
  PA002 high    an action consumes secret data (directly or through Compose / variables / Parse JSON)
                with its inputs visible in run history
  PA003 high    secret data passes through a Compose / Parse JSON / Select / variable whose inputs or
                outputs are visible
  PA004 medium  secret in a URI query string (tainted expression or literal credential parameter)
  PA005 high    credential typed into the definition (literal authentication, API-key headers,
                secure parameter defaults, detector hits on literal strings)
  PA006 medium  secret data sent to a child flow or echoed by a Response without Secure Inputs
  PA007 high    environment variable holding a secret as plain text (String type, or deployment
                settings with a literal value instead of a Key Vault reference); medium when only
                the type is wrong and no value is present

Propagation model (AZDOCS `articles/logic-apps/logic-apps-securing-a-logic-app.md`, "Secure data in run
history by using obfuscation", read for this module):

* An action's own `runtimeConfiguration.secureData.properties` hides its inputs / outputs.
* If an action *explicitly references* (`body('X')`, `outputs('X')`, `actions('X')`, `triggerBody()`…)
  the outputs of an action X whose Secure Inputs or Secure Outputs is turned on, its inputs are hidden
  too, but its outputs are not, and its own setting stays off: the next hop is visible again.
* Compose, Parse JSON and Response have only Secure Inputs, which also hides their outputs; when such an
  action is hidden by propagation, both its inputs and outputs are hidden. Their hidden outputs do not
  propagate: an action referencing a secured Compose is visible.
* Variable actions cannot be secured, and `variables('v')` is not an explicit reference to the action
  that set it, so nothing propagates through a variable.
* `Authorization` headers are never shown in run history, so a secret referenced only there does not
  make an HTTP action's inputs leak.

This is a taint analysis: sources are the PA001 actions; taint flows through references
(`body/outputs/actions/result`, `variables`, `items`) to a fixpoint; a finding is a tainted side that is
visible.

Findings never carry a secret: literal credentials are reported as `preview()` + keyed `fingerprint()`.
"""
from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qsl

from detectors.base import fingerprint as _fingerprint
from detectors.base import preview as _preview

from scanner.posture import model as _reader

SEVERITIES = ("high", "medium", "low")
SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}


# ---------------------------------------------------------------------------------------------------
# Public data types


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
class Rule:
    id: str
    name: str  # SARIF rule name (PascalCase)
    severity: str  # default severity
    title: str  # short description
    help: str  # full description / help text (plain)
    remediation: str  # generic one-line remediation
    examples: dict[str, list[dict]] = field(default_factory=dict, compare=False, repr=False)

    def to_sarif(self) -> dict[str, Any]:
        """A SARIF reportingDescriptor; see scanner/report/sarif.py."""
        level = {"high": "error", "medium": "warning", "low": "note"}[self.severity]
        return {
            "id": self.id,
            "name": self.name,
            "shortDescription": {"text": self.title},
            "fullDescription": {"text": self.help},
            "help": {
                "text": f"{self.help}\nRemediation: {self.remediation}",
                "markdown": f"**{self.title}**\n\n{self.help}\n\n**Remediation:** {self.remediation}",
            },
            "defaultConfiguration": {"level": level},
            "properties": {"security-severity": {"high": "8.0", "medium": "5.0", "low": "3.0"}[self.severity],
                           "tags": ["security", "secrets", "power-automate"]},
        }


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a secret seen in run history is there: the posture rule and the action to fix."""

    rule_id: str
    action: str
    remediation: str
    sources: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------
# Definition model

_STRUCTURAL = {"scope", "if", "switch", "foreach", "until"}
_SPECIAL = {"compose", "parsejson", "response"}  # only Secure Inputs, which hides outputs too
_VARIABLE = {"initializevariable", "setvariable", "appendtostringvariable", "appendtoarrayvariable",
             "incrementvariable", "decrementvariable"}
_DATA_OPS = {"compose", "parsejson", "select", "query", "join", "table", "expression"}
# Actions whose outputs are (a function of) their inputs: taint passes through them.
_PASS_THROUGH = _DATA_OPS | {"setvariable", "appendtostringvariable", "appendtoarrayvariable", "response"}
_CHILD = {"workflow"}

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")  # same notation as detectors/payload.py (contract)


def _seg(name: str) -> str:
    if _IDENT.match(name):
        return "." + name
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _qseg(name: str) -> str:
    """A query-parameter marker: `?name`, or `?['x y']` when the name is not `[\\w.~-]+`."""
    if re.fullmatch(r"[\w.~-]+", name):
        return "?" + name
    return "?['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _seg_index(i: int) -> str:
    return f"[{i}]"


@dataclass(slots=True)
class _Action:
    name: str
    node: dict
    path: str  # JSONPath of the action node
    type: str  # lowercased
    is_trigger: bool = False
    parent: str | None = None
    secure: frozenset[str] = frozenset()
    # references: (json_path of the string, kind, target)
    sites: list[tuple[str, str, str]] = field(default_factory=list)
    loop_sites: list[tuple[str, str, str]] = field(default_factory=list)  # Foreach `foreach` expression
    source_kind: str | None = None
    var_name: str | None = None
    children: list[str] = field(default_factory=list)

    @property
    def explicit_refs(self) -> set[str]:
        return {t for _, k, t in self.sites if k == "action"}


def _text(value: Any) -> str:
    """A field read as text: a string as written, anything else as absent ('' — not str() of it,
    which could be huge, recurse without end, or put a malformed part into a message)."""
    return value if isinstance(value, str) else ""


def _children(found: list[_reader.Node], i: int) -> list[str]:
    """Names of the actions nested (at any depth) in found[i]: the nodes after it, in document order,
    until the next one that is not deeper."""
    depth = found[i].depth
    out: list[str] = []
    for n in found[i + 1:]:
        if n.is_trigger or n.depth <= depth:
            break
        out.append(n.name)
    return out


def iter_actions(definition: Any) -> Iterator[tuple[str, str, dict]]:
    """(name, json_path, node) for every trigger and action, nested ones included."""
    for a in _model(definition).actions.values():
        yield a.name, a.path, a.node


# ---------------------------------------------------------------------------------------------------
# Expressions

_FUNC_REF = re.compile(
    r"\b(body|outputs|actions|result|variables|items|iterationIndexes)\s*\(\s*(?:'((?:[^']|'')*)'|\"([^\"]*)\")\s*\)",
    re.IGNORECASE)
_TRIGGER_REF = re.compile(r"\btrigger(?:Body|Outputs|FormDataValue|FormDataMultiValues|MultipartBody)?\s*\(",
                          re.IGNORECASE)


def expression_parts(s: str) -> list[str]:
    """The workflow-language expression text inside a string: the whole string for `@expr`, the
    `@{…}` segments of an interpolated string; `@@` escapes a literal `@`."""
    if not s or "@" not in s:
        return []
    if s.startswith("@@"):
        return []
    if s.startswith("@") and not s.startswith("@{"):
        return [s[1:]]
    parts: list[str] = []
    i = 0
    n = len(s)
    while True:
        j = s.find("@{", i)
        if j < 0:
            break
        depth = 0
        k = j + 1
        quote = False
        while k < n:
            c = s[k]
            if c == "'":
                quote = not quote
            elif not quote and c == "{":
                depth += 1
            elif not quote and c == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        parts.append(s[j + 2:k])
        i = k + 1
    return parts


def is_literal(v: Any) -> bool:
    """A non-empty string that is not (and does not contain) a workflow expression."""
    if not isinstance(v, str) or not v.strip():
        return False
    if v.startswith("@@"):
        return True
    return not expression_parts(v)


_PLACEHOLDER = re.compile(
    r"^(<[^>]*>|\*+|x+|\.+|\*sanitized\*|changeme|password|secret|todo|tbd|none|null|"
    r"@@.*@@|#\{.*\}#|\$\(.*\)|\$\{.*\}|__.*__|\{\{.*\}\}|%.*%)$", re.IGNORECASE)


def _is_placeholder(v: str) -> bool:
    return bool(_PLACEHOLDER.match(v.strip()))


def _refs_in(s: str, trigger_name: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for expr in expression_parts(s):
        for m in _FUNC_REF.finditer(expr):
            fn = m.group(1).lower()
            target = m.group(2) if m.group(2) is not None else m.group(3)
            target = target.replace("''", "'")
            kind = {"body": "action", "outputs": "action", "actions": "action", "result": "result",
                    "variables": "var", "items": "items", "iterationindexes": "items"}[fn]
            out.append((kind, target))
        if trigger_name and _TRIGGER_REF.search(expr):
            out.append(("action", trigger_name))
    return out


# Containers deeper than this (in one action's inputs) are not read: the detection engine's walker
# stops at the same depth, and a recursive helper must not meet a value nested a thousand deep.
_MAX_VALUE_DEPTH = 64


def _iter_strings(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every string in obj, in document order; iterative."""
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    while stack:
        node, p, depth = stack.pop()
        if isinstance(node, str):
            yield p, node
        elif depth >= _MAX_VALUE_DEPTH:
            continue
        elif isinstance(node, dict):
            stack.extend(reversed([(v, p + _seg(str(k)), depth + 1) for k, v in node.items()]))
        elif isinstance(node, list):
            stack.extend(reversed([(v, p + _seg_index(i), depth + 1) for i, v in enumerate(node)]))


# ---------------------------------------------------------------------------------------------------
# Sources

_TOKEN_URI = re.compile(
    r"(login\.microsoftonline\.(com|us|de)|login\.partner\.microsoftonline\.cn|login\.chinacloudapi\.cn)"
    r"/[^?#]*/token\b|/oauth2?/(v2\.0/)?token(\?|$|#)|/connect/token(\?|$|#)",
    re.IGNORECASE)
_VAULT_URI = re.compile(r"\.vault\.(azure\.net|azure\.cn|usgovcloudapi\.net|microsoftazure\.de)[^?#]*/secrets/",
                        re.IGNORECASE)
SOURCE_LABELS = {
    "keyvault": "Key Vault Get secret",
    "keyvault_http": "Key Vault secret over HTTP",
    "envvar_secret": "RetrieveEnvironmentVariableSecretValue",
    "token": "OAuth token request",
}


def _source_kind(a: _Action) -> str | None:
    if a.is_trigger:
        return None
    inp = a.node.get("inputs")
    if not isinstance(inp, dict):
        return None
    host = inp.get("host") if isinstance(inp.get("host"), dict) else {}
    if a.type.startswith("openapiconnection"):
        api = _text(host.get("apiId")).lower()
        op = _text(host.get("operationId")).lower()
        cn = _text(host.get("connectionName")).lower()
        if (api.endswith("shared_keyvault") or "keyvault" in cn) and op in ("getsecret", "getsecretversion"):
            return "keyvault"
        params = inp.get("parameters") if isinstance(inp.get("parameters"), dict) else {}
        if op == "performunboundaction" and _text(params.get("actionName")).lower() == \
                "retrieveenvironmentvariablesecretvalue":
            return "envvar_secret"
    if a.type == "apiconnection":
        conn = host.get("connection") if isinstance(host.get("connection"), dict) else {}
        cname = _text(conn.get("name")).lower()
        path = _text(inp.get("path"))
        if "keyvault" in cname and re.match(r"^/secrets/.+/value", path, re.IGNORECASE):
            return "keyvault"
        if "retrieveenvironmentvariablesecretvalue" in path.lower():
            return "envvar_secret"
    if a.type == "http":
        uri = _text(inp.get("uri"))
        if _VAULT_URI.search(uri):
            return "keyvault_http"
        if _TOKEN_URI.search(uri):
            return "token"
    return None


# ---------------------------------------------------------------------------------------------------
# The analysed model: actions, taint, visibility


@dataclass(slots=True)
class _Model:
    actions: dict[str, _Action]
    trigger: str | None
    tainted_out: set[str] = field(default_factory=set)
    tainted_in: dict[str, set[str]] = field(default_factory=dict)  # action -> sources reaching inputs
    source_of: dict[str, set[str]] = field(default_factory=dict)  # taint: action out -> sources
    tainted_vars: dict[str, set[str]] = field(default_factory=dict)
    tainted_loops: dict[str, set[str]] = field(default_factory=dict)
    var_setters: dict[str, list[str]] = field(default_factory=dict)

    # -- visibility (documented rules) ------------------------------------------------------------
    def propagates(self, x: str) -> bool:
        """True if an explicit reference to x's outputs hides the referencing action's inputs."""
        a = self.actions.get(x)
        if a is None or a.type in _SPECIAL:
            return False
        return bool(a.secure & {"inputs", "outputs"})

    def inputs_hidden(self, name: str) -> bool:
        a = self.actions[name]
        if "inputs" in a.secure:
            return True
        return any(self.propagates(x) for x in a.explicit_refs if x != name)

    def outputs_hidden(self, name: str) -> bool:
        a = self.actions[name]
        if a.type in _SPECIAL:
            return self.inputs_hidden(name)
        if a.type in _VARIABLE:
            return False
        return "outputs" in a.secure


def _model(definition: Any) -> _Model:
    """The analysed model of a bare definition; the parts definition.py cannot read are left out."""
    found = _reader.nodes(definition)
    acts = [_Action(name=n.name, node=n.node, path=n.path, type=_reader.node_type(n.node).lower(),
                    is_trigger=n.is_trigger, parent=n.parent, secure=_reader.secure_props(n.node),
                    children=[] if n.is_trigger else _children(found, i))
            for i, n in enumerate(found)]
    trig_name = next((a.name for a in acts if a.is_trigger), None)
    m = _Model(actions={a.name: a for a in acts}, trigger=trig_name)
    for a in acts:
        if a.is_trigger:
            continue
        for p, s in _iter_strings(_reader.inputs(a.node), a.path + ".inputs"):
            for kind, target in _refs_in(s, trig_name):
                a.sites.append((p, kind, target))
        if a.type == "foreach":
            for p, s in _iter_strings(a.node.get("foreach"), a.path + ".foreach"):
                for kind, target in _refs_in(s, trig_name):
                    a.loop_sites.append((p, kind, target))
        a.source_kind = _source_kind(a)
        if a.type in _VARIABLE:
            inp = a.node.get("inputs") if isinstance(a.node.get("inputs"), dict) else {}
            if a.type == "initializevariable":
                vs = inp.get("variables")
                if isinstance(vs, list) and vs and isinstance(vs[0], dict):
                    a.var_name = _text(vs[0].get("name"))
            else:
                a.var_name = _text(inp.get("name")) or None
            if a.var_name:
                m.var_setters.setdefault(a.var_name, []).append(a.name)
    _taint(m)
    return m


def _resolve(m: _Model, target: str) -> str | None:
    if target in m.actions:
        return target
    alt = target.replace(" ", "_")
    return alt if alt in m.actions else None


def _site_sources(m: _Model, kind: str, target: str) -> set[str]:
    if kind == "action":
        t = _resolve(m, target)
        return set(m.source_of.get(t, ())) if t else set()
    if kind == "var":
        return set(m.tainted_vars.get(target, ()))
    if kind == "items":
        t = _resolve(m, target)
        return set(m.tainted_loops.get(t, ())) if t else set()
    if kind == "result":
        t = _resolve(m, target)
        if not t:
            return set()
        out: set[str] = set()
        for c in m.actions[t].children:
            out |= m.source_of.get(c, set())
        return out
    return set()


def _taint(m: _Model) -> None:
    for a in m.actions.values():
        if a.source_kind:
            m.source_of[a.name] = {a.name}
    for _ in range(len(m.actions) + 2):
        changed = False
        for a in m.actions.values():
            if a.is_trigger:
                continue
            srcs: set[str] = set()
            for _p, kind, target in a.sites:
                srcs |= _site_sources(m, kind, target)
            if srcs != m.tainted_in.get(a.name, set()):
                m.tainted_in[a.name] = srcs
                changed = True
            if srcs and a.type in _PASS_THROUGH:
                cur = m.source_of.setdefault(a.name, set())
                if not srcs <= cur:
                    cur |= srcs
                    changed = True
            if srcs and a.var_name:
                cur = m.tainted_vars.setdefault(a.var_name, set())
                if not srcs <= cur:
                    cur |= srcs
                    changed = True
            if a.type == "foreach":
                ls: set[str] = set()
                for _p, kind, target in a.loop_sites:
                    ls |= _site_sources(m, kind, target)
                if ls:
                    cur = m.tainted_loops.setdefault(a.name, set())
                    if not ls <= cur:
                        cur |= ls
                        changed = True
        if not changed:
            break
    m.tainted_out = {k for k, v in m.source_of.items() if v}


def _sanitized_site(a: _Action, path: str) -> bool:
    """Authorization headers are never shown in run history (AZDOCS)."""
    if a.type != "http":
        return False
    return bool(re.match(re.escape(a.path) + r"\.inputs\.headers(\.|\[')authorization('\])?$", path,
                         re.IGNORECASE))


def _visible_taint(m: _Model, a: _Action) -> set[str]:
    """Sources whose data reaches the visible part of a's inputs (Authorization header excluded)."""
    out: set[str] = set()
    for p, kind, target in a.sites:
        if _sanitized_site(a, p):
            continue
        out |= _site_sources(m, kind, target)
    return out


# ---------------------------------------------------------------------------------------------------
# Rules metadata and examples

def _kv(name: str = "Get_secret", secure: list[str] | None = None, run_after: dict | None = None) -> dict:
    node: dict = {"type": "OpenApiConnection", "runAfter": run_after or {},
                  "inputs": {"host": {"connectionName": "shared_keyvault", "operationId": "GetSecret",
                                      "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault"},
                             "parameters": {"secretName": "PartnerApiKey"}}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def _defn(*action_dicts: dict) -> dict:
    acts: dict = {}
    for d in action_dicts:
        acts.update(d)
    return {"triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {}}}, "actions": acts}


def _http(name: str, uri: str = "https://partner.example.com/api/orders", headers: dict | None = None,
          body: Any = None, secure: list[str] | None = None, auth: dict | None = None) -> dict:
    inputs: dict = {"method": "POST", "uri": uri}
    if headers:
        inputs["headers"] = headers
    if body is not None:
        inputs["body"] = body
    if auth:
        inputs["authentication"] = auth
    node: dict = {"type": "Http", "inputs": inputs, "runAfter": {}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def _compose(name: str, value: Any, secure: list[str] | None = None) -> dict:
    node: dict = {"type": "Compose", "inputs": value, "runAfter": {}}
    if secure:
        node["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return {name: node}


def _init_var(name: str, var: str, value: Any) -> dict:
    return {name: {"type": "InitializeVariable", "runAfter": {},
                   "inputs": {"variables": [{"name": var, "type": "string", "value": value}]}}}


# Fake, non-working credential-shaped strings for the examples (never real secrets).
_EX_PASSWORD = "Pr0d-Basic-Pa55w0rd-Example-7781"
_EX_CLIENT_SECRET = "Xk38Q~examplesecretvalue0123456789abcdEF"
_EX_API_KEY = "4f9b2c7e1d8a4b6f9e0c3a5d7b1e2f40"

_PA008_TRIGGER = {"triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {}}}},
                  "actions": {}}
_PA008_SECURED = {"triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {}},
                                          "runtimeConfiguration": {"secureData": {"properties": ["outputs"]}}}},
                  "actions": {}}

EXAMPLES: dict[str, dict[str, list[dict]]] = {
    # PA008 is cause-only: its examples are (definition, action, side) given to explain().
    "PA008": {
        "positive": [{"explain": {"definition": _PA008_TRIGGER, "action": "manual", "side": "trigger_outputs"}}],
        "negative": [{"explain": {"definition": _PA008_SECURED, "action": "manual", "side": "trigger_outputs"}}],
    },
    "PA001": {
        "positive": [
            _defn(_kv()),
            _defn({"Get_env_secret": {
                "type": "OpenApiConnection", "runAfter": {},
                "inputs": {"host": {"connectionName": "shared_commondataserviceforapps",
                                    "operationId": "PerformUnboundAction",
                                    "apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps"},
                           "parameters": {"actionName": "RetrieveEnvironmentVariableSecretValue",
                                          "item/EnvironmentVariableName": "sol_MySecret"}}}}),
            _defn({"Get_secret_classic": {
                "type": "ApiConnection", "runAfter": {},
                "inputs": {"host": {"connection": {"name": "@parameters('$connections')['keyvault']['connectionId']"}},
                           "method": "get", "path": "/secrets/@{encodeURIComponent('apiKey')}/value"}}}),
            _defn(_http("Get_token", uri="https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
                        body="grant_type=client_credentials&client_id=abc&client_secret=@{parameters('cs')}")),
        ],
        "negative": [
            _defn(_kv(secure=["inputs", "outputs"])),
            _defn(_http("Call_api")),
        ],
    },
    "PA002": {
        "positive": [
            # direct consumer of an unsecured source
            _defn(_kv(), _http("HTTP_call_partner", body={"key": "@{body('Get_secret')?['value']}"})),
            # secured source: the direct consumer is hidden, but it re-emits to the next hop
            _defn(_kv(secure=["outputs"]), _compose("Build_payload", {"apiKey": "@body('Get_secret')?['value']"}),
                  _http("HTTP_call_partner", body="@outputs('Build_payload')")),
            # through a variable
            _defn(_kv(secure=["outputs"]), _init_var("Init_key", "apiKey", "@body('Get_secret')?['value']"),
                  _http("HTTP_call_partner", headers={"x-api-key": "@variables('apiKey')"})),
        ],
        "negative": [
            _defn(_kv(secure=["outputs"]), _http("HTTP_call_partner", headers={"x-api-key": "@{body('Get_secret')?['value']}"})),
            # Authorization headers are never shown in run history
            _defn(_kv(), _http("HTTP_call_partner", headers={"Authorization": "Bearer @{body('Get_secret')?['value']}"})),
            _defn(_kv(), _http("HTTP_call_partner", body="@{body('Get_secret')?['value']}", secure=["inputs"])),
        ],
    },
    "PA003": {
        "positive": [
            _defn(_kv(), _compose("Keep_key", "@body('Get_secret')?['value']")),
            _defn(_kv(secure=["outputs"]), _init_var("Init_key", "apiKey", "@body('Get_secret')?['value']"),
                  {"Set_key2": {"type": "SetVariable", "runAfter": {},
                                "inputs": {"name": "apiKey2", "value": "@{variables('apiKey')}"}}}),
        ],
        "negative": [
            _defn(_kv(), _compose("Keep_key", "@body('Get_secret')?['value']", secure=["inputs"])),
            _defn(_kv(secure=["outputs"]), _compose("Keep_key", "@body('Get_secret')?['value']")),
            _defn(_compose("Greeting", "hello")),
        ],
    },
    "PA004": {
        "positive": [
            _defn(_kv(secure=["outputs"]),
                  _http("HTTP_call_partner", uri="https://partner.example.com/api?api_key=@{body('Get_secret')?['value']}",
                        secure=["inputs"])),
            _defn(_http("Call_function", uri="https://fn-contoso.azurewebsites.net/api/run?code=" + _EX_API_KEY)),
        ],
        "negative": [
            _defn(_http("Call_api", uri="https://partner.example.com/api?page=2&code=@{parameters('fnKey')}")),
            _defn(_kv(secure=["outputs"]),
                  _http("HTTP_call_partner", uri="https://partner.example.com/api?id=@{triggerBody()?['id']}",
                        headers={"x-api-key": "@{body('Get_secret')?['value']}"})),
        ],
    },
    "PA005": {
        "positive": [
            _defn(_http("Call_basic", auth={"type": "Basic", "username": "svc", "password": _EX_PASSWORD})),
            _defn(_http("Call_aad", auth={"type": "ActiveDirectoryOAuth", "tenant": "contoso.onmicrosoft.com",
                                          "audience": "https://graph.microsoft.com", "clientId": "abc",
                                          "secret": _EX_CLIENT_SECRET})),
            _defn(_http("Call_apim", headers={"Ocp-Apim-Subscription-Key": _EX_API_KEY})),
        ],
        "negative": [
            _defn(_http("Call_basic", auth={"type": "Basic", "username": "svc",
                                            "password": "@parameters('basicPassword')"})),
            _defn(_http("Call_apim", headers={"Ocp-Apim-Subscription-Key": "@{body('Get_secret')?['value']}",
                                              "Content-Type": "application/json"})),
        ],
    },
    "PA006": {
        "positive": [
            _defn(_kv(secure=["outputs"]), _compose("Keep_key", "@body('Get_secret')?['value']"),
                  {"Run_child": {"type": "Workflow", "runAfter": {},
                                 "inputs": {"host": {"workflowReferenceName": "0b1c2d3e-0000-0000-0000-000000000001"},
                                            "body": {"text": "@{outputs('Keep_key')}"}}}}),
            _defn(_kv(), {"Response": {"type": "Response", "kind": "Http", "runAfter": {},
                                       "inputs": {"statusCode": 200, "body": "@body('Get_secret')"}}}),
        ],
        "negative": [
            _defn(_kv(), {"Run_child": {"type": "Workflow", "runAfter": {},
                                        "runtimeConfiguration": {"secureData": {"properties": ["inputs"]}},
                                        "inputs": {"host": {"workflowReferenceName": "x"},
                                                   "body": {"text": "@{body('Get_secret')?['value']}"}}}}),
            _defn({"Response": {"type": "Response", "kind": "Http", "runAfter": {},
                                "inputs": {"statusCode": 200, "body": "ok"}}}),
        ],
    },
    "PA007": {
        # not definitions: inputs to analyze_environment(**example)
        "positive": [
            {"definitions": [{"schemaname": "cr6e_ApiPassword", "displayname": "Api Password",
                              "type": "100000000", "defaultvalue": _EX_PASSWORD}]},
            {"definitions": [{"schemaname": "cr6e_PartnerToken", "displayname": "Partner token",
                              "type": "100000000"}]},
            {"settings": {"EnvironmentVariables": [{"SchemaName": "cr6e_ClientSecret", "Value": _EX_CLIENT_SECRET}]}},
        ],
        "negative": [
            {"definitions": [{"schemaname": "cr6e_ApiPassword", "displayname": "Api Password",
                              "type": "100000005"}]},
            {"definitions": [{"schemaname": "cr6e_SiteUrl", "displayname": "Site URL", "type": "100000000",
                              "defaultvalue": "https://contoso.sharepoint.com/sites/ops"}]},
            {"settings": {"EnvironmentVariables": [
                {"SchemaName": "cr6e_ClientSecret",
                 "Value": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
                          "Microsoft.KeyVault/vaults/kv-contoso/secrets/ClientSecret"},
                {"SchemaName": "cr6e_ApiPassword", "Value": "#{ApiPassword}#"}]}},
        ],
    },
}

RULES: dict[str, Rule] = {
    r.id: r for r in [
        Rule("PA001", "SecretSourceWithoutSecureOutputs", "high",
             "Secret source without Secure Outputs",
             "An action that returns a secret (Key Vault 'Get secret', Dataverse "
             "RetrieveEnvironmentVariableSecretValue, a Key Vault REST call, or an OAuth token request) does not "
             "have Secure Outputs turned on, so the secret value is stored in the action's outputs in run history "
             "and is readable by everyone who can view the flow's runs.",
             "Turn on Secure Outputs (runtimeConfiguration.secureData.properties: [\"outputs\"]) on the action.",
             EXAMPLES["PA001"]),
        Rule("PA002", "SecretConsumerWithoutSecureInputs", "high",
             "Action consumes a secret without Secure Inputs",
             "An action's inputs contain data derived from a secret source (directly, or through Compose, Parse "
             "JSON or variables) and are visible in run history. Inputs are hidden only when the action has Secure "
             "Inputs on, or when it explicitly references (body()/outputs()) an action whose Secure Inputs/Outputs "
             "is on; the next hop, a variable or a Compose's outputs, is visible again.",
             "Turn on Secure Inputs on the consuming action (and Secure Outputs if it returns the secret).",
             EXAMPLES["PA002"]),
        Rule("PA003", "SecretThroughComposeOrVariable", "high",
             "Secret passed through a Compose or a variable",
             "Secret data is copied into a Compose, Parse JSON, Select or variable action whose inputs or outputs "
             "are visible. Variable actions cannot be secured at all, and references to a variable or to a secured "
             "Compose do not hide the next action's inputs, so the secret spreads through run history.",
             "Secure the Compose/Parse JSON with Secure Inputs; don't put secrets in variables, reference the "
             "secured source directly from a secured action.",
             EXAMPLES["PA003"]),
        Rule("PA004", "SecretInUriQuery", "medium",
             "Secret in a URI query string",
             "An HTTP action puts a secret (secret-derived expression or a literal credential parameter such as "
             "api_key=, code=, sig=, client_secret=, password=) in the URI query string. URLs are recorded in run "
             "history, server and proxy logs even when the body is protected.",
             "Send the secret in a header or the authentication settings instead of the query string, and turn on "
             "Secure Inputs.",
             EXAMPLES["PA004"]),
        Rule("PA005", "CredentialInDefinition", "high",
             "Credential typed into the flow definition",
             "A credential is written literally into the definition (HTTP authentication password/secret/pfx, an "
             "API-key or Authorization header, a secure parameter's default value, or a string a secret detector "
             "recognises). Everyone who can edit, export or copy the flow can read it, and it appears in every "
             "run's inputs.",
             "Remove the literal credential: read it at run time from Key Vault (with Secure Outputs) or a Secret "
             "environment variable, and rotate it.",
             EXAMPLES["PA005"]),
        Rule("PA006", "SecretToChildFlowOrResponse", "medium",
             "Secret sent to a child flow or echoed by a Response",
             "Secret data is passed to a child flow (Run a Child Flow / Workflow action) or returned by a Response "
             "action without Secure Inputs. It lands in this run's inputs and in the child flow's trigger outputs, "
             "or in the caller's hands.",
             "Turn on Secure Inputs on the action; let the child flow read the secret itself, with Secure Outputs.",
             EXAMPLES["PA006"]),
        Rule("PA007", "PlainTextSecretEnvironmentVariable", "high",
             "Environment variable holds a secret as plain text",
             "An environment variable whose name suggests a secret is of type String (100000000) rather than Secret "
             "(100000005), or its value (in the solution or a deployment settings file) is a literal secret instead "
             "of a Key Vault reference (/subscriptions/…/providers/Microsoft.KeyVault/vaults/…/secrets/…). Flows "
             "read it with parameters(), so it shows in run history, and it travels with every solution export.",
             "Use a Secret environment variable backed by Azure Key Vault, and put a Key Vault reference (not the "
             "value) in deployment settings.",
             EXAMPLES["PA007"]),
        Rule("PA008", "SecretReceivedWithoutSecureSettings", "medium",
             "Secret received and recorded without Secure Inputs/Outputs",
             "A cause-only rule, for run-history findings the definition cannot explain: the secret reached the "
             "trigger or action from outside the flow (a caller's request, a connector's response, an input from "
             "a parent flow), and the side that holds it is recorded in run history because its Secure "
             "Inputs/Outputs setting is off. Static analysis cannot see it; flowleaks reports it as the cause of "
             "such findings.",
             "Turn on Secure Inputs or Secure Outputs on the trigger or action, fix the sender, and rotate the "
             "secret.",
             EXAMPLES["PA008"]),
    ]
}


# ---------------------------------------------------------------------------------------------------
# Finding construction

def _mk(rule_id: str, a_name: str, message: str, remediation: str, json_path: str, *, flow: str = "",
        severity: str | None = None, secret: str | None = None, key: bytes = b"",
        sources: Iterable[str] = ()) -> PostureFinding:
    return PostureFinding(
        rule_id=rule_id, severity=severity or RULES[rule_id].severity, action=a_name, message=message,
        remediation=remediation, json_path=json_path,
        preview=_preview(secret) if secret is not None else None,
        fingerprint=_fingerprint(key, secret) if secret is not None else None,
        flow=flow, sources=tuple(sorted(sources)))


def _src_text(srcs: Iterable[str]) -> str:
    s = sorted(srcs)
    if not s:
        return "a secret source"
    if len(s) == 1:
        return f"'{s[0]}'"
    return "'" + "', '".join(s[:3]) + ("'…" if len(s) > 3 else "'")


def _type_label(a: _Action) -> str:
    return _reader.node_type(a.node) or "action"


# Remediation templates (one line each).
def _rem(rule_id: str, a: _Action, m: _Model | None = None) -> str:
    n = a.name
    if rule_id == "PA001":
        return f"Turn on Secure Outputs on '{n}'"
    if rule_id == "PA002":
        return f"Turn on Secure Inputs on '{n}'"
    if rule_id == "PA003":
        if a.type in _VARIABLE:
            return (f"Don't keep the secret in variable '{a.var_name}' (variables can't be secured): reference "
                    f"the source directly in a secured action")
        return f"Turn on Secure Inputs on '{n}' (it also hides its outputs)"
    if rule_id == "PA004":
        return f"Move the secret out of the query string of '{n}' into a header, and turn on Secure Inputs"
    if rule_id == "PA005":
        return f"Remove the literal credential from '{n}'; read it from Key Vault with Secure Outputs, and rotate it"
    if rule_id == "PA006":
        if a.type == "response":
            return f"Don't return the secret, or turn on Secure Inputs on '{n}' (it also hides its outputs)"
        return f"Turn on Secure Inputs on '{n}' and let the child flow read the secret itself"
    return RULES[rule_id].remediation


def _taint_rule(a: _Action) -> str:
    if a.type in _DATA_OPS or a.type in _VARIABLE:
        return "PA003"
    if a.type in _CHILD or a.type == "response":
        return "PA006"
    return "PA002"


# ---------------------------------------------------------------------------------------------------
# Literal credentials (PA004 literal params, PA005)

_API_KEY_HEADERS = {"x-api-key", "ocp-apim-subscription-key", "api-key", "apikey", "x-functions-key",
                    "x-auth-token", "x-access-token", "private-token", "x-apikey", "authorization"}
_SECRET_QUERY_PARAMS = {"api_key", "apikey", "api-key", "code", "sig", "client_secret", "password", "pwd",
                        "passwd", "access_token", "token", "secret", "subscription-key", "key",
                        "subscription_key", "auth", "apitoken", "api_token"}
_AUTH_SECRET_FIELDS = {"basic": ("password",), "activedirectoryoauth": ("secret", "pfx", "password"),
                       "clientcertificate": ("pfx", "password"), "raw": ("value",)}


def _literal_secret(v: Any, min_len: int = 6) -> str | None:
    if not is_literal(v):
        return None
    s = v[1:] if v.startswith("@@") else v
    s = s.strip()
    if len(s) < min_len or _is_placeholder(s):
        return None
    return s


def _auth_findings(a: _Action, auth: dict, path: str, flow: str, key: bytes) -> list[PostureFinding]:
    """PA005 for literal secret fields of an HTTP `authentication` object."""
    out: list[PostureFinding] = []
    label = _text(auth.get("type"))
    for fld in _AUTH_SECRET_FIELDS.get(label.lower(), ()):
        secret = _literal_secret(auth.get(fld), 4)
        if secret is not None:
            out.append(_mk("PA005", a.name, f"'{a.name}' has a literal {fld} in its {label} authentication",
                           _rem("PA005", a), path + _seg(fld), flow=flow, secret=secret, key=key))
    return out


def _header_findings(a: _Action, headers: dict, path: str, flow: str, key: bytes) -> list[PostureFinding]:
    """PA005 for literal API-key / Authorization headers."""
    out: list[PostureFinding] = []
    for hk, hv in headers.items():
        hkl = str(hk).lower()
        if hkl not in _API_KEY_HEADERS:
            continue
        secret = _literal_secret(hv)
        if secret is None:
            continue
        if hkl == "authorization":
            token = re.sub(r"^(bearer|basic|sharedaccesssignature|token)\s+", "", secret, flags=re.IGNORECASE)
            if len(token) < 8 or _is_placeholder(token):
                continue
        out.append(_mk("PA005", a.name, f"'{a.name}' sends a literal '{hk}' header",
                       _rem("PA005", a), path + _seg(str(hk)), flow=flow, secret=secret, key=key))
    return out


def _literal_findings(a: _Action, flow: str, key: bytes) -> list[PostureFinding]:
    """PA005 for literal credentials anywhere in the action's inputs (walked iteratively, in
    document order, down to _MAX_VALUE_DEPTH)."""
    out: list[PostureFinding] = []
    stack: list[tuple[Any, str, int]] = [(_reader.inputs(a.node), a.path + ".inputs", 0)]
    while stack:
        obj, path, depth = stack.pop()
        if depth >= _MAX_VALUE_DEPTH:
            continue
        if isinstance(obj, dict):
            for k, v in obj.items():
                kp = path + _seg(str(k))
                kl = str(k).lower()
                if kl == "authentication" and isinstance(v, dict):
                    out.extend(_auth_findings(a, v, kp, flow, key))
                elif kl == "headers" and isinstance(v, dict):
                    out.extend(_header_findings(a, v, kp, flow, key))
            stack.extend(reversed([(v, path + _seg(str(k)), depth + 1) for k, v in obj.items()]))
        elif isinstance(obj, list):
            stack.extend(reversed([(v, path + _seg_index(i), depth + 1) for i, v in enumerate(obj)]))
    return out


def _query_findings(m: _Model, a: _Action, flow: str, key: bytes) -> list[PostureFinding]:
    if a.type not in ("http", "httpwebhook"):
        return []
    inp = a.node.get("inputs")
    if not isinstance(inp, dict):
        return []
    out: list[PostureFinding] = []
    uri = inp.get("uri")
    upath = a.path + ".inputs.uri"
    if isinstance(uri, str) and "?" in uri:
        query = uri.split("?", 1)[1].split("#", 1)[0]
        srcs: set[str] = set()
        if "@{" in query and not (uri.startswith("@") and not uri.startswith(("@{", "@@"))):
            # (a whole-string expression URI is skipped: we can't tell which part is the query)
            for kind, target in _refs_in(query, m.trigger):
                srcs |= _site_sources(m, kind, target)
        if srcs:
            out.append(_mk("PA004", a.name, f"'{a.name}' puts data from {_src_text(srcs)} in its URI query string",
                           _rem("PA004", a), upath, flow=flow, sources=srcs))
        literal_query = re.sub(r"@\{[^}]*\}", "", query)
        for pname, pval in parse_qsl(literal_query, keep_blank_values=False):
            if pname.lower() in _SECRET_QUERY_PARAMS:
                secret = _literal_secret(pval, 8)
                if secret is not None:
                    out.append(_mk("PA004", a.name,
                                   f"'{a.name}' has a literal '{pname}' credential in its URI query string",
                                   _rem("PA004", a), upath + _qseg(pname), flow=flow, secret=secret, key=key))
    queries = inp.get("queries")
    if isinstance(queries, dict):
        for qk, qv in queries.items():
            qpath = a.path + ".inputs.queries" + _seg(str(qk))
            srcs = set()
            if isinstance(qv, str):
                for kind, target in _refs_in(qv, m.trigger):
                    srcs |= _site_sources(m, kind, target)
            if srcs:
                out.append(_mk("PA004", a.name,
                               f"'{a.name}' puts data from {_src_text(srcs)} in query parameter '{qk}'",
                               _rem("PA004", a), qpath, flow=flow, sources=srcs))
            elif str(qk).lower() in _SECRET_QUERY_PARAMS:
                secret = _literal_secret(qv, 8)
                if secret is not None:
                    out.append(_mk("PA004", a.name, f"'{a.name}' has a literal '{qk}' credential in its query",
                                   _rem("PA004", a), qpath, flow=flow, secret=secret, key=key))
    return out


_NOISE_KEYS = {"runAfter", "metadata", "type", "kind", "runtimeConfiguration", "operationOptions"}


def _literal_only(obj: Any, depth: int = 0) -> Any:
    """A copy with workflow expressions blanked, so detectors see only what was typed in literally.
    Structure (and so JSON paths) is kept; noisy keys (runAfter, metadata…) are dropped, and so is
    what lies deeper than _MAX_VALUE_DEPTH (the engine would not walk it either)."""
    if depth > _MAX_VALUE_DEPTH:
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
        return {k: _literal_only(v, depth + 1) for k, v in obj.items() if k not in _NOISE_KEYS}
    if isinstance(obj, list):
        return [_literal_only(v, depth + 1) for v in obj]
    return obj


def _structural_copy(node: dict) -> dict:
    """The action node without its nested actions (those are scanned on their own)."""
    t = _reader.node_type(node).lower()
    if t not in _STRUCTURAL:
        return node
    return {k: v for k, v in node.items() if k not in ("actions", "else", "cases", "default")}


def _join_path(base: str, sub: str) -> str:
    if not sub or sub == "$":
        return base
    if sub.startswith("$"):
        sub = sub[1:]
    if sub and sub[0] not in ".[<?":
        sub = "." + sub
    return base + sub


_DEFAULT_ENGINE: Any = None


def default_engine() -> Any:
    """The detection engine, or None when `detectors.engine` is not importable (yet)."""
    global _DEFAULT_ENGINE
    if _DEFAULT_ENGINE is None:
        try:
            from detectors.engine import Engine  # noqa: PLC0415 (optional, written in parallel)
            _DEFAULT_ENGINE = Engine(known=None)
        except Exception:  # noqa: BLE001 - any failure means: no generic detector hits
            _DEFAULT_ENGINE = False
    return _DEFAULT_ENGINE or None


def _engine_hits(engine: Any, body: Any) -> list[Any]:
    """Hits of the detection engine over one body (side='definition'); [] on any engine failure."""
    try:
        res = engine.scan(body, side="definition")
    except Exception:  # noqa: BLE001 - a detector bug must not hide the posture findings
        return []
    return list(getattr(res, "hits", None) or [])


def _session(engine: Any):
    import contextlib
    if engine is None or not hasattr(engine, "session"):
        return contextlib.nullcontext()
    try:
        return engine.session()
    except Exception:  # noqa: BLE001
        return contextlib.nullcontext()


def _dumps_sorted(value: Any) -> str:
    """json.dumps(value, sort_keys=True), and the canonical text when that cannot be made."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return _canonical_json(value)


def _expression_only(secret: str) -> bool:
    return bool(expression_parts(secret)) and not is_literal(secret)


# ---------------------------------------------------------------------------------------------------
# Public entry points


_MAX_WRAPPING = 8  # {definition:{definition:…}} deeper than this is not a flow


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


def definition_hash(definition: Any) -> str:
    """sha256 hex of the canonical JSON (sort_keys=True, separators=(',', ':'), UTF-8)."""
    try:
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # names of mixed types, or nested beyond the encoder
        text = _canonical_json(definition)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _json_name(k: Any) -> str:
    """A member name as json.dumps writes it (it turns int/float/bool/None keys into text)."""
    return k if isinstance(k, str) else json.dumps(k) if isinstance(k, (int, float, bool)) or k is None else str(k)


def _canonical_json(value: Any) -> str:
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


def analyze_definition(definition: dict, *, flow_name: str = "", engine: Any = None,
                       key: bytes = b"") -> list[PostureFinding]:
    """All posture findings (PA001–PA006) of one workflow definition.

    `definition` may be bare (`{triggers, actions}`) or wrapped (`{properties:{definition}}`). Parts
    that are not of the documented shape (see scanner/posture/model.py, whose `problems()` lists them) are
    ignored, so an odd definition never raises; ValueError only for a document that is no definition
    at all (no triggers/actions).
    `engine`: a detectors.engine.Engine for generic detector hits on literal strings (PA005); None uses
    a shared default engine if `detectors.engine` is importable; False skips the engine.
    `key`: the fingerprint key for literal credentials (findings carry preview + HMAC only).
    """
    d = definition_of(definition)
    if d is None:
        raise ValueError("not a workflow definition (no triggers/actions)")
    m = _model(d)
    flow = flow_name
    findings: list[PostureFinding] = []

    for a in m.actions.values():
        if a.is_trigger:
            continue
        # PA001: the source's own outputs
        if a.source_kind and not m.outputs_hidden(a.name):
            findings.append(_mk("PA001", a.name,
                                f"'{a.name}' ({SOURCE_LABELS[a.source_kind]}) returns a secret without Secure Outputs",
                                _rem("PA001", a), a.path, flow=flow, sources=[a.name]))
        # taint rules
        vis = _visible_taint(m, a) - {a.name}
        leak_in = bool(vis) and not m.inputs_hidden(a.name)
        all_in = m.tainted_in.get(a.name, set()) - {a.name}
        leak_out = (bool(all_in) and a.type in _PASS_THROUGH and not m.outputs_hidden(a.name)
                    and a.type != "response")
        if leak_in or leak_out:
            rule = _taint_rule(a)
            srcs = vis if leak_in else all_in
            if rule == "PA003":
                what = "variable '" + str(a.var_name) + "'" if a.type in _VARIABLE else f"{_type_label(a)} '{a.name}'"
                where = "inputs" if leak_in else "outputs"
                if leak_in and leak_out:
                    where = "inputs and outputs"
                msg = f"Secret from {_src_text(srcs)} passes through {what} with visible {where}"
            elif rule == "PA006":
                if a.type == "response":
                    msg = f"Response '{a.name}' returns data from {_src_text(srcs)} without Secure Inputs"
                else:
                    msg = f"'{a.name}' sends data from {_src_text(srcs)} to a child flow without Secure Inputs"
            else:
                msg = f"'{a.name}' uses data from {_src_text(srcs)} without Secure Inputs"
            findings.append(_mk(rule, a.name, msg, _rem(rule, a), a.path + ".inputs", flow=flow, sources=srcs))
        # PA004, PA005 literal checks
        findings.extend(_query_findings(m, a, flow, key))
        findings.extend(_literal_findings(a, flow, key))

    # secure parameters with literal default values
    params = d.get("parameters")
    if isinstance(params, dict):
        for pname, p in params.items():
            if str(pname).startswith("$") or not isinstance(p, dict):
                continue
            if _text(p.get("type")).lower() in ("securestring", "secureobject"):
                dv = p.get("defaultValue")
                secret = _literal_secret(dv, 4) if isinstance(dv, str) else (
                    _dumps_sorted(dv) if isinstance(dv, dict) and dv else None)
                if secret is not None:
                    ppath = "$.parameters" + _seg(str(pname)) + ".defaultValue"
                    findings.append(_mk("PA005", f"parameters.{pname}",
                                        f"Secure parameter '{pname}' has a default value in the definition",
                                        f"Remove the default value of '{pname}' and supply it at deployment from Key Vault",
                                        ppath, flow=flow, secret=secret, key=key))

    # generic detector hits on literal strings (PA005)
    eng = default_engine() if engine is None else (engine or None)
    if eng is not None:
        seen = {(f.action, f.fingerprint) for f in findings if f.fingerprint}
        with _session(eng):
            bodies: list[tuple[str, str, Any]] = [(a.name, a.path, _literal_only(_structural_copy(a.node)))
                                                   for a in m.actions.values()]
            if isinstance(params, dict):
                bodies.append(("parameters", "$.parameters", _literal_only(params)))
            for name, base, body in bodies:
                for h in _engine_hits(eng, body):
                    secret = getattr(h, "secret", None)
                    if not isinstance(secret, str) or not secret or _expression_only(secret):
                        continue
                    fp = _fingerprint(key, secret)
                    if (name, fp) in seen:
                        continue
                    seen.add((name, fp))
                    a = m.actions.get(name)
                    rem = _rem("PA005", a) if a else RULES["PA005"].remediation
                    findings.append(_mk("PA005", name,
                                        f"'{name}' contains a literal credential ({getattr(h, 'rule_id', 'secret')})",
                                        rem, _join_path(base, str(getattr(h, "json_path", "$"))),
                                        flow=flow, secret=secret, key=key,
                                        severity="high" if getattr(h, "confidence", "medium") == "high" else "medium"))

    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.rule_id, f.json_path))
    return findings


def _side(side: str) -> str:
    s = side.lower()
    if s.endswith("inputs"):
        return "inputs"
    if s.endswith("outputs"):
        return "outputs"
    raise ValueError(f"side must be inputs/outputs (or action_/trigger_ prefixed), not {side!r}")


def is_visible(definition: dict, action: str, side: str, json_path: str | None = None) -> bool:
    """True when viewers of run history can see that side of the action (Secure Inputs/Outputs off,
    and not hidden by propagation). Unknown actions are assumed visible. With `json_path` (a path in
    the run-history body, e.g. `$.headers.Authorization`), an HTTP Authorization header is never visible.
    """
    s = _side(side)
    d = definition_of(definition)
    if d is None or not isinstance(action, str):
        return True
    m = _model(d)
    name = _resolve(m, action)
    if name is None:
        return True
    a = m.actions[name]
    if a.is_trigger:
        return s not in a.secure
    if s == "inputs":
        if json_path and a.type == "http" and re.match(r"^\$\.headers(\.|\[')authorization\b", json_path,
                                                       re.IGNORECASE):
            return False
        return not m.inputs_hidden(name)
    return not m.outputs_hidden(name)


def _literal_in_action(a: _Action, value: str) -> str | None:
    """Path of a literal (non-expression) string of the action containing `value`."""
    return literal_path(_action_strings(a), value)


def _action_strings(a: _Action) -> list[tuple[str, str, str | None]]:
    # (path, string, the string without its @{…} expressions, or None when it is all literal)
    return [(p, s, None if is_literal(s) else re.sub(r"@\{[^}]*\}", "", s))
            for p, s in _iter_strings(_structural_copy(a.node), a.path)]


def literal_path(strings: list[tuple[str, str, str | None]], value: str) -> str | None:
    """The first of an action's strings (`action_strings`) that holds `value` as typed text: what makes
    a leaked value PA005 (or PA004 in a URI). Runs where the value is, e.g. in a detection worker."""
    for p, s, stripped in strings:
        if value in s and (stripped is None or value in stripped):
            return p
    return None


def action_strings(definition: dict, action: str) -> list[tuple[str, str, str | None]]:
    """The action's strings with their paths, for `literal_path` (empty when the action is unknown)."""
    d = definition_of(definition)
    if d is None or not isinstance(action, str):
        return []
    m = _model(d)
    name = _resolve(m, action)
    return _action_strings(m.actions[name]) if name is not None else []


def explain(definition: dict, action: str, side: str, value: str | None = None,
            literal: str | None = None) -> Cause | None:
    """The posture rule and action that explain a secret seen in `action`'s run-history `side`.

    PA001 for a source's outputs, PA003 for a Compose/variable, PA006 for a child flow / Response,
    PA002 for other consumers, PA005 when the value is typed into the definition (pass the `value`,
    held in memory only, to check that, or the `literal` path a worker found it at with
    `literal_path`; without either, PA005 is returned when the action has a literal credential and
    no taint explains the side). None when the definition does not explain it.
    """
    s = _side(side)
    d = definition_of(definition)
    if d is None or not isinstance(action, str):
        return None
    m = _model(d)
    name = _resolve(m, action)
    if name is None:
        return None
    a = m.actions[name]
    # `literal`: where a detection worker found the value typed (literal_path), the value staying there
    p = literal if literal is not None else (_literal_in_action(a, value) if value else None)
    if p is not None:
        rule = "PA004" if p.endswith(".inputs.uri") else "PA005"
        return Cause(rule, a.name, _rem(rule, a))
    if a.is_trigger:
        return _received(d, a, side)
    if s == "outputs":
        if a.source_kind:
            return Cause("PA001", a.name, _rem("PA001", a), (a.name,))
        srcs = m.source_of.get(a.name, set()) - {a.name}
        if srcs and a.type in _PASS_THROUGH:
            rule = _taint_rule(a)
            return Cause(rule, a.name, _rem(rule, a), tuple(sorted(srcs)))
    else:
        srcs = m.tainted_in.get(a.name, set()) - {a.name}
        if srcs:
            rule = _taint_rule(a)
            if rule == "PA002" and a.type in ("http", "httpwebhook"):
                uri = a.node["inputs"].get("uri") if isinstance(a.node.get("inputs"), dict) else None
                q = uri.split("?", 1)[1] if isinstance(uri, str) and "?" in uri else ""
                if any(_site_sources(m, k, t) for k, t in _refs_in(q, m.trigger)) and not any(
                        _site_sources(m, k, t) for p, k, t in a.sites if not p.endswith(".inputs.uri")):
                    rule = "PA004"
            return Cause(rule, a.name, _rem(rule, a), tuple(sorted(srcs)))
        if _literal_findings(a, "", b""):
            return Cause("PA005", a.name, _rem("PA005", a))
    return _received(d, a, side)


def _received(d: dict, a: _Action, side: str) -> Cause | None:
    """PA008: nothing in the definition explains the secret (it came from a caller, a connector's
    response, a child flow's input), but the side is recorded because it is not secured."""
    if not is_visible(d, a.name, side):
        return None
    s = _side(side)
    which = "Inputs" if s == "inputs" else "Outputs"
    return Cause("PA008", a.name, f"Turn on Secure {which} on '{a.name}' (the secret reaches it from outside the "
                                  f"flow), and rotate the secret")


# ---------------------------------------------------------------------------------------------------
# PA007: environment variables and deployment settings

ENV_TYPE_NAMES = {"100000000": "String", "100000001": "Number", "100000002": "Boolean", "100000003": "JSON",
                  "100000004": "Data source", "100000005": "Secret"}
ENV_TYPE_STRING = "100000000"
ENV_TYPE_JSON = "100000003"
ENV_TYPE_SECRET = "100000005"

_KV_REF = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/]+/"
                     r"secrets/[^/]+(/[^/]*)?$", re.IGNORECASE)
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "apikey", "token", "connectionstring", "connstring",
                 "connstr", "credential", "privatekey", "sastoken", "signature")
_SECRET_TOKENS = {"key", "keys", "pwd", "pw", "pass", "sas", "pat", "creds", "cred"}
_NOT_SECRET_TAILS = {"url", "uri", "endpoint", "name", "id", "ids", "type", "version", "expiry", "expiration",
                     "length", "scope", "scopes", "audience", "tenant", "host", "path", "vault", "reference",
                     "ref", "header", "location"}


def is_key_vault_reference(value: str) -> bool:
    return bool(_KV_REF.match(value.strip()))


def secret_like_name(*names: str | None) -> bool:
    """Schema/display names that suggest a secret: password, secret, key, token, connection string…"""
    for n in names:
        if not n:
            continue
        # word tokens from camelCase / snake / spaces; 'KeyVaultName', 'SecretName', 'TokenUrl' name
        # where a secret lives, not the secret
        words = [w.lower() for w in re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+",
                                                re.sub(r"(?i)key\s*vault", "Vault", n))]
        if words and words[-1] in _NOT_SECRET_TAILS:
            continue
        low = "".join(words)
        if any(w in low for w in _SECRET_WORDS) or any(w in _SECRET_TOKENS for w in words):
            return True
    return False


@dataclass(frozen=True, slots=True)
class EnvVarDef:
    schemaname: str
    displayname: str = ""
    type: str = ""  # option value as text, e.g. '100000000'
    defaultvalue: str | None = None
    secretstore: str | None = None
    artifact: str = ""


def parse_env_var_definition_xml(text: str | bytes, artifact: str = "") -> EnvVarDef:
    """One `environmentvariabledefinitions/<schema>/environmentvariabledefinition.xml`."""
    if isinstance(text, bytes):
        if b"<!DOCTYPE" in text[:2048].upper() or b"<!ENTITY" in text.upper():
            raise ValueError("DTDs are not accepted in environment variable definitions")
    elif "<!DOCTYPE" in text[:2048].upper() or "<!ENTITY" in text.upper():
        raise ValueError("DTDs are not accepted in environment variable definitions")
    root = ET.fromstring(text)
    schema = root.get("schemaname") or (root.findtext("schemaname") or "")
    disp_el = root.find("displayname")
    disp = ""
    if disp_el is not None:
        disp = disp_el.get("default") or (disp_el.text or "").strip()
        if not disp:
            lab = disp_el.find("label")
            disp = lab.get("description", "") if lab is not None else ""
    dv = root.find("defaultvalue")
    return EnvVarDef(schemaname=schema, displayname=disp, type=(root.findtext("type") or "").strip(),
                     defaultvalue=dv.text if dv is not None and dv.text is not None else None,
                     secretstore=(root.findtext("secretstore") or None), artifact=artifact)


def parse_env_var_values_json(doc: Any) -> dict[str, str]:
    """`environmentvariablevalues.json` → {schemaname: value}. Accepts the solution export shape
    `{environmentvariablevalues:{environmentvariablevalue:[{schemaname,value}] | {…}}}` and plain lists."""
    out: dict[str, str] = {}
    node = doc
    if isinstance(node, dict) and "environmentvariablevalues" in node:
        node = node["environmentvariablevalues"]
    if isinstance(node, dict) and "environmentvariablevalue" in node:
        node = node["environmentvariablevalue"]
    if isinstance(node, dict):
        node = [node]
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                sn = item.get("schemaname") or item.get("SchemaName") or item.get("@schemaname")
                v = item.get("value", item.get("Value"))
                if sn and isinstance(v, str):
                    out[str(sn)] = v
    return out


def _value_hits(engine: Any, schema: str, value: str) -> bool:
    if engine is None:
        return False
    return bool(_engine_hits(engine, {schema: value}))


def analyze_environment(definitions: Iterable[EnvVarDef | dict] = (), values: dict[str, str] | None = None,
                        settings: dict | None = None, *, settings_artifact: str = "", engine: Any = None,
                        key: bytes = b"") -> list[PostureFinding]:
    """PA007 over environment variable definitions (+ their current values) and/or a deployment
    settings document (`{EnvironmentVariables:[{SchemaName, Value}], ConnectionReferences:[…]}`)."""
    eng = default_engine() if engine is None else (engine or None)
    values = values or {}
    defs = [d if isinstance(d, EnvVarDef) else EnvVarDef(**d) for d in definitions]
    types = {d.schemaname: d.type for d in defs}
    out: list[PostureFinding] = []
    with _session(eng):
        for d in defs:
            tname = ENV_TYPE_NAMES.get(d.type, d.type or "unknown")
            named = secret_like_name(d.schemaname, d.displayname)
            if d.type == ENV_TYPE_SECRET:
                continue
            # the literal value(s) this solution carries
            for where, v in (("/environmentvariabledefinition/defaultvalue", d.defaultvalue),
                             ("environmentvariablevalues.json", values.get(d.schemaname))):
                if not isinstance(v, str) or not v.strip() or is_key_vault_reference(v) or _is_placeholder(v):
                    continue
                if named or _value_hits(eng, d.schemaname, v):
                    src = "default value" if where.startswith("/") else "current value"
                    out.append(PostureFinding(
                        "PA007", "high", d.schemaname,
                        f"Environment variable '{d.schemaname}' ({tname}) carries a plain-text secret as its {src}",
                        f"Change '{d.schemaname}' to a Secret environment variable backed by Azure Key Vault, and rotate the value",
                        where if where.startswith("/") else "$.environmentvariablevalues.environmentvariablevalue"
                        f"[?(@.schemaname=='{d.schemaname}')].value",
                        preview=_preview(v), fingerprint=_fingerprint(key, v), artifact=d.artifact))
                    break
            else:
                if named and d.type in (ENV_TYPE_STRING, ENV_TYPE_JSON, ""):
                    out.append(PostureFinding(
                        "PA007", "medium", d.schemaname,
                        f"Environment variable '{d.schemaname}' looks like a secret but is typed {tname}, not Secret",
                        f"Change '{d.schemaname}' to a Secret environment variable backed by Azure Key Vault",
                        "/environmentvariabledefinition/type", artifact=d.artifact))
        if isinstance(settings, dict):
            evs = settings.get("EnvironmentVariables")
            if isinstance(evs, list):
                for i, ev in enumerate(evs):
                    if not isinstance(ev, dict):
                        continue
                    sn = str(ev.get("SchemaName", ""))
                    v = ev.get("Value")
                    if not isinstance(v, str) or not v.strip() or is_key_vault_reference(v) or _is_placeholder(v):
                        continue
                    known_secret = types.get(sn) == ENV_TYPE_SECRET
                    if known_secret or secret_like_name(sn) or _value_hits(eng, sn, v):
                        why = "a Secret variable" if known_secret else "a secret"
                        out.append(PostureFinding(
                            "PA007", "high", sn,
                            f"Deployment settings give {why} '{sn}' a literal value instead of a Key Vault reference",
                            f"Replace the value of '{sn}' with a Key Vault secret reference "
                            f"(/subscriptions/…/providers/Microsoft.KeyVault/vaults/…/secrets/…) and rotate it",
                            f"$.EnvironmentVariables[{i}].Value", preview=_preview(v),
                            fingerprint=_fingerprint(key, v), artifact=settings_artifact))
    out.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.rule_id, f.action))
    return out


def is_deployment_settings(doc: Any) -> bool:
    return isinstance(doc, dict) and (isinstance(doc.get("EnvironmentVariables"), list)
                                      or isinstance(doc.get("ConnectionReferences"), list)) \
        and unwrap_definition(doc) is None


def run_example(rule_id: str, example: dict, *, engine: Any = False) -> list[PostureFinding]:
    """Findings of one of a rule's examples (used by the examples test)."""
    if "explain" in example:
        e = example["explain"]
        cause = explain(e["definition"], e["action"], e["side"])
        return [] if cause is None else [PostureFinding(cause.rule_id, RULES[cause.rule_id].severity, cause.action,
                                                        RULES[cause.rule_id].title, cause.remediation, "$")]
    if rule_id == "PA007":
        return analyze_environment(example.get("definitions", ()), example.get("values"),
                                   example.get("settings"), engine=engine)
    return analyze_definition(example, engine=engine)


def secret_sources(definition: dict) -> dict[str, str]:
    """{action name: source kind} for every action whose outputs are a secret by construction
    (Key Vault Get secret, RetrieveEnvironmentVariableSecretValue, a Key Vault or token call over HTTP),
    whatever its Secure Outputs setting. Kinds: see SOURCE_LABELS."""
    d = definition_of(definition)
    if d is None:
        return {}
    return {name: kind for name, a in _model(d).actions.items() if (kind := _source_kind(a))}
