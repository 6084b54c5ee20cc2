"""PA005 (high): a credential typed into the definition: literal HTTP authentication, API-key headers,
secure parameter defaults, and detector hits on the definition's literal strings."""
from __future__ import annotations

import re
from typing import Any

from detectors.base import fingerprint
from detectors.payload import key_path
from detectors.placeholders import is_placeholder

from scanner.posture import model
from scanner.posture.base import PostureFinding, PostureRule
from scanner.posture.canonical import dumps_sorted
from scanner.posture.literals import engine_hits, engine_session, expression_only, literal_only, literal_secret
from scanner.posture.rules.examples import EX_API_KEY, EX_CLIENT_SECRET, EX_PASSWORD, defn, http
from scanner.posture.taint import Action, Analysis

_API_KEY_HEADERS = {"x-api-key", "ocp-apim-subscription-key", "api-key", "apikey", "x-functions-key",
                    "x-auth-token", "x-access-token", "private-token", "x-apikey", "authorization"}
_AUTH_SECRET_FIELDS = {"basic": ("password",), "activedirectoryoauth": ("secret", "pfx", "password"),
                       "clientcertificate": ("pfx", "password"), "raw": ("value",)}


def advice(a: Action) -> str:
    return f"Remove the literal credential from '{a.name}'; read it from Key Vault with Secure Outputs, and rotate it"


def _auth_findings(a: Action, auth: dict, path: str, flow: str, key: bytes) -> list[PostureFinding]:
    """Literal secret fields of an HTTP `authentication` object."""
    out: list[PostureFinding] = []
    label = model.text(auth.get("type"))
    for fld in _AUTH_SECRET_FIELDS.get(label.lower(), ()):
        secret = literal_secret(auth.get(fld), 4)
        if secret is not None:
            out.append(RULE.finding(a.name, f"'{a.name}' has a literal {fld} in its {label} authentication",
                                    advice(a), key_path(path, fld), flow=flow, secret=secret, key=key))
    return out


def _header_findings(a: Action, headers: dict, path: str, flow: str, key: bytes) -> list[PostureFinding]:
    """Literal API-key / Authorization headers."""
    out: list[PostureFinding] = []
    for hk, hv in headers.items():
        hkl = str(hk).lower()
        if hkl not in _API_KEY_HEADERS:
            continue
        secret = literal_secret(hv)
        if secret is None:
            continue
        if hkl == "authorization":
            token = re.sub(r"^(bearer|basic|sharedaccesssignature|token)\s+", "", secret, flags=re.IGNORECASE)
            if len(token) < 8 or is_placeholder(token):
                continue
        out.append(RULE.finding(a.name, f"'{a.name}' sends a literal '{hk}' header",
                                advice(a), key_path(path, str(hk)), flow=flow, secret=secret, key=key))
    return out


def literal_findings(a: Action, flow: str = "", key: bytes = b"") -> list[PostureFinding]:
    """Literal credentials anywhere in the action's inputs (walked iteratively, in document order,
    down to model.MAX_VALUE_DEPTH)."""
    out: list[PostureFinding] = []
    stack: list[tuple[Any, str, int]] = [(model.inputs(a.node), a.path + ".inputs", 0)]
    while stack:
        obj, path, depth = stack.pop()
        if depth >= model.MAX_VALUE_DEPTH:
            continue
        if isinstance(obj, dict):
            for k, v in obj.items():
                kp = key_path(path, str(k))
                kl = str(k).lower()
                if kl == "authentication" and isinstance(v, dict):
                    out.extend(_auth_findings(a, v, kp, flow, key))
                elif kl == "headers" and isinstance(v, dict):
                    out.extend(_header_findings(a, v, kp, flow, key))
            stack.extend(reversed([(v, key_path(path, str(k)), depth + 1) for k, v in obj.items()]))
        elif isinstance(obj, list):
            stack.extend(reversed([(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]))
    return out


def _parameter_findings(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    """Secure parameters with literal default values."""
    out: list[PostureFinding] = []
    params = m.definition.get("parameters")
    if not isinstance(params, dict):
        return out
    for pname, p in params.items():
        if str(pname).startswith("$") or not isinstance(p, dict):
            continue
        if model.text(p.get("type")).lower() in ("securestring", "secureobject"):
            dv = p.get("defaultValue")
            secret = literal_secret(dv, 4) if isinstance(dv, str) else (
                dumps_sorted(dv) if isinstance(dv, dict) and dv else None)
            if secret is not None:
                out.append(RULE.finding(f"parameters.{pname}",
                                        f"Secure parameter '{pname}' has a default value in the definition",
                                        f"Remove the default value of '{pname}' and supply it at deployment from Key Vault",
                                        key_path("$.parameters", str(pname)) + ".defaultValue",
                                        flow=flow, secret=secret, key=key))
    return out


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    return [f for a in m.actions.values() if not a.is_trigger for f in literal_findings(a, flow, key)] + \
        _parameter_findings(m, flow, key)


def _join_path(base: str, sub: str) -> str:
    if not sub or sub == "$":
        return base
    if sub.startswith("$"):
        sub = sub[1:]
    if sub and sub[0] not in ".[<?":
        sub = "." + sub
    return base + sub


def detector_findings(m: Analysis, engine: Any, found: list[PostureFinding], *, flow: str = "",
                      key: bytes = b"") -> list[PostureFinding]:
    """Generic detector hits on the literal strings of each trigger, action and the parameters (their
    expressions blanked, nested actions scanned on their own); a secret already `found` at that action
    is not reported again."""
    out: list[PostureFinding] = []
    seen = {(f.action, f.fingerprint) for f in found if f.fingerprint}
    params = m.definition.get("parameters")
    with engine_session(engine):
        bodies: list[tuple[str, str, Any]] = [(a.name, a.path, literal_only(model.without_nested(a.node)))
                                               for a in m.actions.values()]
        if isinstance(params, dict):
            bodies.append(("parameters", "$.parameters", literal_only(params)))
        for name, base, body in bodies:
            for h in engine_hits(engine, body):
                secret = getattr(h, "secret", None)
                if not isinstance(secret, str) or not secret or expression_only(secret):
                    continue
                fp = fingerprint(key, secret)
                if (name, fp) in seen:
                    continue
                seen.add((name, fp))
                a = m.actions.get(name)
                out.append(RULE.finding(name, f"'{name}' contains a literal credential ({getattr(h, 'rule_id', 'secret')})",
                                        RULE.remediation_for(a) if a else RULE.remediation,
                                        _join_path(base, str(getattr(h, "json_path", "$"))),
                                        flow=flow, secret=secret, key=key,
                                        severity="high" if getattr(h, "confidence", "medium") == "high" else "medium"))
    return out


EXAMPLES = {
    "positive": [
        defn(http("Call_basic", auth={"type": "Basic", "username": "svc", "password": EX_PASSWORD})),
        defn(http("Call_aad", auth={"type": "ActiveDirectoryOAuth", "tenant": "contoso.onmicrosoft.com",
                                    "audience": "https://graph.microsoft.com", "clientId": "abc",
                                    "secret": EX_CLIENT_SECRET})),
        defn(http("Call_apim", headers={"Ocp-Apim-Subscription-Key": EX_API_KEY})),
    ],
    "negative": [
        defn(http("Call_basic", auth={"type": "Basic", "username": "svc",
                                      "password": "@parameters('basicPassword')"})),
        defn(http("Call_apim", headers={"Ocp-Apim-Subscription-Key": "@{body('Get_secret')?['value']}",
                                        "Content-Type": "application/json"})),
    ],
}

RULE = PostureRule(
    "PA005", "CredentialInDefinition", "high",
    "Credential typed into the flow definition",
    "A credential is written literally into the definition (HTTP authentication password/secret/pfx, an "
    "API-key or Authorization header, a secure parameter's default value, or a string a secret detector "
    "recognises). Everyone who can edit, export or copy the flow can read it, and it appears in every "
    "run's inputs.",
    "Remove the literal credential: read it at run time from Key Vault (with Secure Outputs) or a Secret "
    "environment variable, and rotate it.",
    EXAMPLES, check=check, advice=advice)
