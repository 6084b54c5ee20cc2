"""PA004 (medium): a secret in a URI query string (a tainted expression, or a literal credential
parameter such as api_key=, code=, sig=)."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl

from detectors.payload import key_path, query_path

from scanner.posture.base import PostureFinding, PostureRule, sources_text
from scanner.posture.literals import literal_secret
from scanner.posture.rules.examples import EX_API_KEY, defn, http, kv
from scanner.posture.taint import Action, Analysis, refs_in, site_sources

_SECRET_QUERY_PARAMS = {"api_key", "apikey", "api-key", "code", "sig", "client_secret", "password", "pwd",
                        "passwd", "access_token", "token", "secret", "subscription-key", "key",
                        "subscription_key", "auth", "apitoken", "api_token"}


def advice(a: Action) -> str:
    return f"Move the secret out of the query string of '{a.name}' into a header, and turn on Secure Inputs"


def in_query_only(m: Analysis, a: Action) -> bool:
    """True when the secret data in an HTTP action's inputs reaches them only through expressions in
    its URI query string: explain() gives PA004 for it, not PA002."""
    if a.type not in ("http", "httpwebhook"):
        return False
    uri = a.node["inputs"].get("uri") if isinstance(a.node.get("inputs"), dict) else None
    q = uri.split("?", 1)[1] if isinstance(uri, str) and "?" in uri else ""
    return any(site_sources(m, k, t) for k, t in refs_in(q, m.trigger)) and not any(
        site_sources(m, k, t) for p, k, t in a.sites if not p.endswith(".inputs.uri"))


def _action_findings(m: Analysis, a: Action, flow: str, key: bytes) -> list[PostureFinding]:
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
            for kind, target in refs_in(query, m.trigger):
                srcs |= site_sources(m, kind, target)
        if srcs:
            out.append(RULE.finding(a.name, f"'{a.name}' puts data from {sources_text(srcs)} in its URI query string",
                                    advice(a), upath, flow=flow, sources=srcs))
        literal_query = re.sub(r"@\{[^}]*\}", "", query)
        for pname, pval in parse_qsl(literal_query, keep_blank_values=False):
            if pname.lower() in _SECRET_QUERY_PARAMS:
                secret = literal_secret(pval, 8)
                if secret is not None:
                    out.append(RULE.finding(a.name, f"'{a.name}' has a literal '{pname}' credential in its URI query string",
                                            advice(a), query_path(upath, pname), flow=flow, secret=secret, key=key))
    queries = inp.get("queries")
    if isinstance(queries, dict):
        for qk, qv in queries.items():
            qpath = key_path(a.path + ".inputs.queries", str(qk))
            srcs = set()
            if isinstance(qv, str):
                for kind, target in refs_in(qv, m.trigger):
                    srcs |= site_sources(m, kind, target)
            if srcs:
                out.append(RULE.finding(a.name, f"'{a.name}' puts data from {sources_text(srcs)} in query parameter '{qk}'",
                                        advice(a), qpath, flow=flow, sources=srcs))
            elif str(qk).lower() in _SECRET_QUERY_PARAMS:
                secret = literal_secret(qv, 8)
                if secret is not None:
                    out.append(RULE.finding(a.name, f"'{a.name}' has a literal '{qk}' credential in its query",
                                            advice(a), qpath, flow=flow, secret=secret, key=key))
    return out


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    return [f for a in m.actions.values() if not a.is_trigger for f in _action_findings(m, a, flow, key)]


EXAMPLES = {
    "positive": [
        defn(kv(secure=["outputs"]),
             http("HTTP_call_partner", uri="https://partner.example.com/api?api_key=@{body('Get_secret')?['value']}",
                  secure=["inputs"])),
        defn(http("Call_function", uri="https://fn-contoso.azurewebsites.net/api/run?code=" + EX_API_KEY)),
    ],
    "negative": [
        defn(http("Call_api", uri="https://partner.example.com/api?page=2&code=@{parameters('fnKey')}")),
        defn(kv(secure=["outputs"]),
             http("HTTP_call_partner", uri="https://partner.example.com/api?id=@{triggerBody()?['id']}",
                  headers={"x-api-key": "@{body('Get_secret')?['value']}"})),
    ],
}

RULE = PostureRule(
    "PA004", "SecretInUriQuery", "medium",
    "Secret in a URI query string",
    "An HTTP action puts a secret (secret-derived expression or a literal credential parameter such as "
    "api_key=, code=, sig=, client_secret=, password=) in the URI query string. URLs are recorded in run "
    "history, server and proxy logs even when the body is protected.",
    "Send the secret in a header or the authentication settings instead of the query string, and turn on "
    "Secure Inputs.",
    EXAMPLES, check=check, advice=advice)
