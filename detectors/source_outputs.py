"""Secrets known by where they are, not by what they look like.

A Key Vault "Get secret" action's outputs hold the secret at `body.value`, whatever its shape: a
human password, a random string with symbols, something no pattern or entropy rule would flag. The
crawl knows from the flow definition which actions are such sources (posture.secret_sources) and
asks this detector for the value at the documented field.
"""
from __future__ import annotations

from typing import Any

from .base import Hit

RULE_ID = "secret-source-output"

# source kind -> (field path inside the action's outputs body, as JSONPath, and the key chain)
SOURCE_FIELDS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "keyvault": (("$.body.value", ("body", "value")),),
    "keyvault_http": (("$.body.value", ("body", "value")),),
    "envvar_secret": (("$.body.EnvironmentVariableSecretValue", ("body", "EnvironmentVariableSecretValue")),),
    "token": (("$.body.access_token", ("body", "access_token")),
              ("$.body.refresh_token", ("body", "refresh_token"))),
}
MIN_LENGTH = 4

EXAMPLES = {
    "positive": [("keyvault", {"statusCode": 200, "body": {"value": "Tr0ub4dor&3 horse"}})],
    "negative": [("keyvault", {"statusCode": 200, "body": {"name": "ClientSecret"}}),
                 ("keyvault", {"body": {"value": ""}}),
                 ("unknown-kind", {"body": {"value": "x" * 20}})],
}


def source_output_hits(kind: str, body: Any, side: str = "action_outputs") -> list[Hit]:
    hits = []
    for json_path, keys in SOURCE_FIELDS.get(kind, ()):
        node = body
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, str) and len(node) >= MIN_LENGTH:
            hits.append(Hit(RULE_ID, "pattern", node, json_path, side, "high"))
    return hits
