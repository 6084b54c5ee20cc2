"""PA003 (high): secret data passes through a Compose / Parse JSON / Select / variable whose inputs or
outputs are visible."""
from __future__ import annotations

from scanner.posture import model
from scanner.posture.base import PostureFinding, PostureRule, sources_text
from scanner.posture.rules.examples import compose, defn, init_var, kv
from scanner.posture.taint import VARIABLE, Action, Analysis, leaks


def advice(a: Action) -> str:
    if a.type in VARIABLE:
        return (f"Don't keep the secret in variable '{a.var_name}' (variables can't be secured): reference "
                f"the source directly in a secured action")
    return f"Turn on Secure Inputs on '{a.name}' (it also hides its outputs)"


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    out: list[PostureFinding] = []
    for a, leak in leaks(m, RULE.id):
        what = ("variable '" + str(a.var_name) + "'" if a.type in VARIABLE
                else f"{model.node_type(a.node) or 'action'} '{a.name}'")
        where = "inputs and outputs" if leak.inputs and leak.outputs else "inputs" if leak.inputs else "outputs"
        out.append(RULE.finding(a.name, f"Secret from {sources_text(leak.sources)} passes through {what} with "
                                        f"visible {where}",
                                advice(a), a.path + ".inputs", flow=flow, sources=leak.sources))
    return out


EXAMPLES = {
    "positive": [
        defn(kv(), compose("Keep_key", "@body('Get_secret')?['value']")),
        defn(kv(secure=["outputs"]), init_var("Init_key", "apiKey", "@body('Get_secret')?['value']"),
             {"Set_key2": {"type": "SetVariable", "runAfter": {},
                           "inputs": {"name": "apiKey2", "value": "@{variables('apiKey')}"}}}),
    ],
    "negative": [
        defn(kv(), compose("Keep_key", "@body('Get_secret')?['value']", secure=["inputs"])),
        defn(kv(secure=["outputs"]), compose("Keep_key", "@body('Get_secret')?['value']")),
        defn(compose("Greeting", "hello")),
    ],
}

RULE = PostureRule(
    "PA003", "SecretThroughComposeOrVariable", "high",
    "Secret passed through a Compose or a variable",
    "Secret data is copied into a Compose, Parse JSON, Select or variable action whose inputs or outputs "
    "are visible. Variable actions cannot be secured at all, and references to a variable or to a secured "
    "Compose do not hide the next action's inputs, so the secret spreads through run history.",
    "Secure the Compose/Parse JSON with Secure Inputs; don't put secrets in variables, reference the "
    "secured source directly from a secured action.",
    EXAMPLES, check=check, advice=advice)
