"""Secret sources: the actions whose outputs are a secret by construction (Key Vault Get secret,
RetrieveEnvironmentVariableSecretValue, a Key Vault or token call over HTTP), whatever their Secure
Outputs setting. PA001 reports the unsecured ones; the taint analysis (taint.py) starts from them.
"""
from __future__ import annotations

import re
from typing import Any

from scanner.posture import model

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


def source_kind(node: dict, is_trigger: bool = False) -> str | None:
    """The kind of secret source a trigger or action node is (a key of SOURCE_LABELS), or None."""
    if is_trigger:
        return None
    inp = node.get("inputs")
    if not isinstance(inp, dict):
        return None
    kind = model.node_type(node).lower()
    host = inp.get("host") if isinstance(inp.get("host"), dict) else {}
    if kind.startswith("openapiconnection"):
        api = model.text(host.get("apiId")).lower()
        op = model.text(host.get("operationId")).lower()
        cn = model.text(host.get("connectionName")).lower()
        if (api.endswith("shared_keyvault") or "keyvault" in cn) and op in ("getsecret", "getsecretversion"):
            return "keyvault"
        params = inp.get("parameters") if isinstance(inp.get("parameters"), dict) else {}
        if op == "performunboundaction" and model.text(params.get("actionName")).lower() == \
                "retrieveenvironmentvariablesecretvalue":
            return "envvar_secret"
    if kind == "apiconnection":
        conn = host.get("connection") if isinstance(host.get("connection"), dict) else {}
        cname = model.text(conn.get("name")).lower()
        path = model.text(inp.get("path"))
        if "keyvault" in cname and re.match(r"^/secrets/.+/value", path, re.IGNORECASE):
            return "keyvault"
        if "retrieveenvironmentvariablesecretvalue" in path.lower():
            return "envvar_secret"
    if kind == "http":
        uri = model.text(inp.get("uri"))
        if _VAULT_URI.search(uri):
            return "keyvault_http"
        if _TOKEN_URI.search(uri):
            return "token"
    return None


def secret_sources(definition: Any) -> dict[str, str]:
    """{action name: source kind} for every secret source of the definition (kinds: SOURCE_LABELS).
    Names are read as the analysis reads them: of two nodes with one name, the later one counts."""
    d = model.definition_of(definition)
    if d is None:
        return {}
    by_name = {n.name: n for n in model.nodes(d)}
    return {name: kind for name, n in by_name.items() if (kind := source_kind(n.node, n.is_trigger))}
