"""PA007 (high): an environment variable holding a secret as plain text (String type, or deployment
settings with a literal value instead of a Key Vault reference); medium when only the type is wrong
and no value is present. Its check is `analyze_environment`, over what solution.py reads."""
from __future__ import annotations

import re
from typing import Any, Iterable

from detectors.base import fingerprint as _fingerprint
from detectors.base import preview as _preview
from detectors.placeholders import is_placeholder

from scanner.posture.base import SEVERITY_RANK, PostureFinding, PostureRule
from scanner.posture.literals import engine_hits, engine_session
from scanner.posture.rules.examples import EX_CLIENT_SECRET, EX_PASSWORD
from scanner.posture.solution import ENV_TYPE_JSON, ENV_TYPE_NAMES, ENV_TYPE_SECRET, ENV_TYPE_STRING, EnvVarDef

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


def _value_hits(engine: Any, schema: str, value: str) -> bool:
    if engine is None:
        return False
    return bool(engine_hits(engine, {schema: value}))


def _plain(v: Any) -> bool:
    """A value that is typed in: not empty, not a Key Vault reference, not a placeholder."""
    return isinstance(v, str) and bool(v.strip()) and not is_key_vault_reference(v) and not is_placeholder(v)


def analyze_environment(definitions: Iterable[EnvVarDef | dict] = (), values: dict[str, str] | None = None,
                        settings: dict | None = None, *, settings_artifact: str = "", engine: Any,
                        key: bytes = b"") -> list[PostureFinding]:
    """PA007 over environment variable definitions (+ their current values) and/or a deployment
    settings document (`{EnvironmentVariables:[{SchemaName, Value}], ConnectionReferences:[…]}`).
    `engine`: a detectors.engine.Engine that also flags values by what they look like, or None for
    names alone. `key`: the fingerprint key (findings carry preview + HMAC only)."""
    values = values or {}
    defs = [d if isinstance(d, EnvVarDef) else EnvVarDef(**d) for d in definitions]
    types = {d.schemaname: d.type for d in defs}
    out: list[PostureFinding] = []
    with engine_session(engine):
        for d in defs:
            tname = ENV_TYPE_NAMES.get(d.type, d.type or "unknown")
            named = secret_like_name(d.schemaname, d.displayname)
            if d.type == ENV_TYPE_SECRET:
                continue
            # the literal value(s) this solution carries
            for where, v in (("/environmentvariabledefinition/defaultvalue", d.defaultvalue),
                             ("environmentvariablevalues.json", values.get(d.schemaname))):
                if not _plain(v):
                    continue
                if named or _value_hits(engine, d.schemaname, v):
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
                    if not _plain(v):
                        continue
                    known_secret = types.get(sn) == ENV_TYPE_SECRET
                    if known_secret or secret_like_name(sn) or _value_hits(engine, sn, v):
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


# not definitions: inputs to analyze_environment(**example)
EXAMPLES = {
    "positive": [
        {"definitions": [{"schemaname": "cr6e_ApiPassword", "displayname": "Api Password",
                          "type": "100000000", "defaultvalue": EX_PASSWORD}]},
        {"definitions": [{"schemaname": "cr6e_PartnerToken", "displayname": "Partner token",
                          "type": "100000000"}]},
        {"settings": {"EnvironmentVariables": [{"SchemaName": "cr6e_ClientSecret", "Value": EX_CLIENT_SECRET}]}},
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
}

RULE = PostureRule(
    "PA007", "PlainTextSecretEnvironmentVariable", "high",
    "Environment variable holds a secret as plain text",
    "An environment variable whose name suggests a secret is of type String (100000000) rather than Secret "
    "(100000005), or its value (in the solution or a deployment settings file) is a literal secret instead "
    "of a Key Vault reference (/subscriptions/…/providers/Microsoft.KeyVault/vaults/…/secrets/…). Flows "
    "read it with parameters(), so it shows in run history, and it travels with every solution export.",
    "Use a Secret environment variable backed by Azure Key Vault, and put a Key Vault reference (not the "
    "value) in deployment settings.",
    EXAMPLES)
