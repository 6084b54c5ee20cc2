"""PA006 (medium): secret data sent to a child flow or echoed by a Response without Secure Inputs."""
from __future__ import annotations

from scanner.posture.base import PostureFinding, PostureRule, sources_text
from scanner.posture.rules.examples import compose, defn, kv
from scanner.posture.taint import Action, Analysis, leaks


def advice(a: Action) -> str:
    if a.type == "response":
        return f"Don't return the secret, or turn on Secure Inputs on '{a.name}' (it also hides its outputs)"
    return f"Turn on Secure Inputs on '{a.name}' and let the child flow read the secret itself"


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    out: list[PostureFinding] = []
    for a, leak in leaks(m, RULE.id):
        srcs = sources_text(leak.sources)
        if a.type == "response":
            msg = f"Response '{a.name}' returns data from {srcs} without Secure Inputs"
        else:
            msg = f"'{a.name}' sends data from {srcs} to a child flow without Secure Inputs"
        out.append(RULE.finding(a.name, msg, advice(a), a.path + ".inputs", flow=flow, sources=leak.sources))
    return out


EXAMPLES = {
    "positive": [
        defn(kv(secure=["outputs"]), compose("Keep_key", "@body('Get_secret')?['value']"),
             {"Run_child": {"type": "Workflow", "runAfter": {},
                            "inputs": {"host": {"workflowReferenceName": "0b1c2d3e-0000-0000-0000-000000000001"},
                                       "body": {"text": "@{outputs('Keep_key')}"}}}}),
        defn(kv(), {"Response": {"type": "Response", "kind": "Http", "runAfter": {},
                                 "inputs": {"statusCode": 200, "body": "@body('Get_secret')"}}}),
    ],
    "negative": [
        defn(kv(), {"Run_child": {"type": "Workflow", "runAfter": {},
                                  "runtimeConfiguration": {"secureData": {"properties": ["inputs"]}},
                                  "inputs": {"host": {"workflowReferenceName": "x"},
                                             "body": {"text": "@{body('Get_secret')?['value']}"}}}}),
        defn({"Response": {"type": "Response", "kind": "Http", "runAfter": {},
                           "inputs": {"statusCode": 200, "body": "ok"}}}),
    ],
}

RULE = PostureRule(
    "PA006", "SecretToChildFlowOrResponse", "medium",
    "Secret sent to a child flow or echoed by a Response",
    "Secret data is passed to a child flow (Run a Child Flow / Workflow action) or returned by a Response "
    "action without Secure Inputs. It lands in this run's inputs and in the child flow's trigger outputs, "
    "or in the caller's hands.",
    "Turn on Secure Inputs on the action; let the child flow read the secret itself, with Secure Outputs.",
    EXAMPLES, check=check, advice=advice)
