"""PA008 (medium), cause-only: a secret seen in run history that the definition does not explain (it
came from a caller, a connector's response, a child flow's input), recorded because the side that
holds it is not secured. Static analysis cannot find it; explain() gives it as the cause."""
from __future__ import annotations

from scanner.posture.base import Cause, PostureRule
from scanner.posture.taint import Action, Analysis

_TRIGGER = {"triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {}}}},
            "actions": {}}
_SECURED = {"triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {}},
                                    "runtimeConfiguration": {"secureData": {"properties": ["outputs"]}}}},
            "actions": {}}


def cause(m: Analysis, a: Action, side: str) -> Cause | None:
    """PA008 for a secret in `a`'s `side` ('inputs' or 'outputs') when that side is recorded; None
    when it is secured (then nothing in run history shows it)."""
    if not m.visible(a.name, side):
        return None
    which = "Inputs" if side == "inputs" else "Outputs"
    return Cause(RULE.id, a.name, f"Turn on Secure {which} on '{a.name}' (the secret reaches it from outside the "
                                  f"flow), and rotate the secret")


# Its examples are (definition, action, side) given to explain().
EXAMPLES = {
    "positive": [{"explain": {"definition": _TRIGGER, "action": "manual", "side": "trigger_outputs"}}],
    "negative": [{"explain": {"definition": _SECURED, "action": "manual", "side": "trigger_outputs"}}],
}

RULE = PostureRule(
    "PA008", "SecretReceivedWithoutSecureSettings", "medium",
    "Secret received and recorded without Secure Inputs/Outputs",
    "A cause-only rule, for run-history findings the definition cannot explain: the secret reached the "
    "trigger or action from outside the flow (a caller's request, a connector's response, an input from "
    "a parent flow), and the side that holds it is recorded in run history because its Secure "
    "Inputs/Outputs setting is off. Static analysis cannot see it; flowleaks reports it as the cause of "
    "such findings.",
    "Turn on Secure Inputs or Secure Outputs on the trigger or action, fix the sender, and rotate the "
    "secret.",
    EXAMPLES)
