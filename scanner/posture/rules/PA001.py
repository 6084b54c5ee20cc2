"""PA001 (high): a secret source (Key Vault Get secret, RetrieveEnvironmentVariableSecretValue, Key
Vault over HTTP, an OAuth token endpoint) without Secure Outputs."""
from __future__ import annotations

from scanner.posture.base import PostureFinding, PostureRule
from scanner.posture.rules.examples import defn, http, kv
from scanner.posture.sources import SOURCE_LABELS
from scanner.posture.taint import Action, Analysis


def advice(a: Action) -> str:
    return f"Turn on Secure Outputs on '{a.name}'"


def check(m: Analysis, flow: str, key: bytes) -> list[PostureFinding]:
    """The sources whose own outputs run history shows."""
    return [RULE.finding(a.name, f"'{a.name}' ({SOURCE_LABELS[a.source_kind]}) returns a secret without Secure Outputs",
                         advice(a), a.path, flow=flow, sources=[a.name])
            for a in m.actions.values()
            if not a.is_trigger and a.source_kind and not m.outputs_hidden(a.name)]


EXAMPLES = {
    "positive": [
        defn(kv()),
        defn({"Get_env_secret": {
            "type": "OpenApiConnection", "runAfter": {},
            "inputs": {"host": {"connectionName": "shared_commondataserviceforapps",
                                "operationId": "PerformUnboundAction",
                                "apiId": "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps"},
                       "parameters": {"actionName": "RetrieveEnvironmentVariableSecretValue",
                                      "item/EnvironmentVariableName": "sol_MySecret"}}}}),
        defn({"Get_secret_classic": {
            "type": "ApiConnection", "runAfter": {},
            "inputs": {"host": {"connection": {"name": "@parameters('$connections')['keyvault']['connectionId']"}},
                       "method": "get", "path": "/secrets/@{encodeURIComponent('apiKey')}/value"}}}),
        defn(http("Get_token", uri="https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
                  body="grant_type=client_credentials&client_id=abc&client_secret=@{parameters('cs')}")),
    ],
    "negative": [
        defn(kv(secure=["inputs", "outputs"])),
        defn(http("Call_api")),
    ],
}

RULE = PostureRule(
    "PA001", "SecretSourceWithoutSecureOutputs", "high",
    "Secret source without Secure Outputs",
    "An action that returns a secret (Key Vault 'Get secret', Dataverse "
    "RetrieveEnvironmentVariableSecretValue, a Key Vault REST call, or an OAuth token request) does not "
    "have Secure Outputs turned on, so the secret value is stored in the action's outputs in run history "
    "and is readable by everyone who can view the flow's runs.",
    "Turn on Secure Outputs (runtimeConfiguration.secureData.properties: [\"outputs\"]) on the action.",
    EXAMPLES, check=check, advice=advice)
