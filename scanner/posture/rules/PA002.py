"""PA002 (high): an action consumes secret data (directly or through Compose / variables / Parse JSON)
with its inputs visible in run history."""
from __future__ import annotations

from scanner.posture.base import PostureFinding, PostureRule, sources_text
from scanner.posture.rules.examples import compose, defn, http, init_var, kv
from scanner.posture.taint import Action, Analysis, leaks


def advice(a: Action) -> str:
    return f"Turn on Secure Inputs on '{a.name}'"


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    """Consumers (not a Compose, variable, child flow or Response: PA003, PA006) with visible tainted inputs."""
    return [RULE.finding(a.name, f"'{a.name}' uses data from {sources_text(leak.sources)} without Secure Inputs",
                         advice(a), a.path + ".inputs", flow=flow, sources=leak.sources)
            for a, leak in leaks(m, RULE.id)]


EXAMPLES = {
    "positive": [
        # direct consumer of an unsecured source
        defn(kv(), http("HTTP_call_partner", body={"key": "@{body('Get_secret')?['value']}"})),
        # secured source: the direct consumer is hidden, but it re-emits to the next hop
        defn(kv(secure=["outputs"]), compose("Build_payload", {"apiKey": "@body('Get_secret')?['value']"}),
             http("HTTP_call_partner", body="@outputs('Build_payload')")),
        # through a variable
        defn(kv(secure=["outputs"]), init_var("Init_key", "apiKey", "@body('Get_secret')?['value']"),
             http("HTTP_call_partner", headers={"x-api-key": "@variables('apiKey')"})),
    ],
    "negative": [
        defn(kv(secure=["outputs"]), http("HTTP_call_partner", headers={"x-api-key": "@{body('Get_secret')?['value']}"})),
        # Authorization headers are never shown in run history
        defn(kv(), http("HTTP_call_partner", headers={"Authorization": "Bearer @{body('Get_secret')?['value']}"})),
        defn(kv(), http("HTTP_call_partner", body="@{body('Get_secret')?['value']}", secure=["inputs"])),
    ],
}

RULE = PostureRule(
    "PA002", "SecretConsumerWithoutSecureInputs", "high",
    "Action consumes a secret without Secure Inputs",
    "An action's inputs contain data derived from a secret source (directly, or through Compose, Parse "
    "JSON or variables) and are visible in run history. Inputs are hidden only when the action has Secure "
    "Inputs on, or when it explicitly references (body()/outputs()) an action whose Secure Inputs/Outputs "
    "is on; the next hop, a variable or a Compose's outputs, is visible again.",
    "Turn on Secure Inputs on the consuming action (and Secure Outputs if it returns the secret).",
    EXAMPLES, check=check, advice=advice)
