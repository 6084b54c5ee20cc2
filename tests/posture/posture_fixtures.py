"""Fixture definitions and solution builders for the posture tests. All secrets here are fake."""
from __future__ import annotations

import io
import json
import zipfile

# Planted fake secrets: tests grep every output format for these.
PLANTED = {
    "basic_password": "Fake-Basic-Pa55word-4471-zz",
    "apim_key": "0c5e8f7a9b2d4e6f8a1c3e5b7d9f1a2b",
    "fn_code": "dGhpc2lzYWZha2VmdW5jdGlvbmtleTAxMjM0NQ==",
    "env_password": "EnvVar-Plain-Secret-88213-qq",
    "settings_secret": "Ab3Q~fakeclientsecretvalue1234567890xyz",
}

KV_OPENAPI = {
    "type": "OpenApiConnection",
    "inputs": {"host": {"connectionName": "shared_keyvault", "operationId": "GetSecret",
                        "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault"},
               "parameters": {"secretName": "PartnerApiKey"}},
    "runAfter": {},
}


def secured(node: dict, *props: str) -> dict:
    n = json.loads(json.dumps(node))
    n["runtimeConfiguration"] = {"secureData": {"properties": list(props)}}
    return n


def http(uri="https://partner.example.com/api", headers=None, body=None, auth=None, run_after=None) -> dict:
    inputs: dict = {"method": "POST", "uri": uri}
    if headers:
        inputs["headers"] = headers
    if body is not None:
        inputs["body"] = body
    if auth:
        inputs["authentication"] = auth
    return {"type": "Http", "inputs": inputs, "runAfter": run_after or {}}


def compose(value) -> dict:
    return {"type": "Compose", "inputs": value, "runAfter": {}}


def defn(actions: dict, trigger: dict | None = None) -> dict:
    return {"$schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",
            "contentVersion": "1.0.0.0",
            "parameters": {"$connections": {"defaultValue": {}, "type": "Object"},
                           "$authentication": {"defaultValue": {}, "type": "SecureObject"}},
            "triggers": {"manual": trigger or {"type": "Request", "kind": "Button", "inputs": {"schema": {}}}},
            "actions": actions}


# A flow with every kind of risk, nested inside Scope / If / Switch / Foreach.
RISKY = defn({
    "Get_secret": KV_OPENAPI,
    "Try": {
        "type": "Scope", "runAfter": {"Get_secret": ["Succeeded"]},
        "actions": {
            "HTTP_call_partner": http(headers={"x-api-key": "@{body('Get_secret')?['value']}"}),
            "Check": {
                "type": "If", "expression": {"equals": [1, 1]}, "runAfter": {},
                "actions": {"Keep_key": compose("@body('Get_secret')?['value']")},
                "else": {"actions": {
                    "Call_basic": http(auth={"type": "Basic", "username": "svc",
                                             "password": PLANTED["basic_password"]}),
                }},
            },
            "Route": {
                "type": "Switch", "expression": "@triggerBody()?['kind']", "runAfter": {},
                "cases": {"Case_a": {"case": "a", "actions": {
                    "Call_apim": http(headers={"Ocp-Apim-Subscription-Key": PLANTED["apim_key"]})}}},
                "default": {"actions": {
                    "Call_function": http(uri="https://fn-contoso.azurewebsites.net/api/run?code=" + PLANTED["fn_code"])}},
            },
        },
    },
})

SAFE = defn({
    "Get_secret": secured(KV_OPENAPI, "inputs", "outputs"),
    "HTTP_call_partner": http(headers={"x-api-key": "@{body('Get_secret')?['value']}"},
                              run_after={"Get_secret": ["Succeeded"]}),
    "Done": compose("finished"),
})

# Only a medium finding (PA006: a secured source's value reaches a child flow through a Compose):
# passes `--fail-on high`, fails `--fail-on medium`.
MEDIUM_ONLY = {"triggers": {"manual": {"type": "Request", "kind": "Http", "inputs": {}}}, "actions": {
    "Get_secret": SAFE["actions"]["Get_secret"],
    "Keep": {"type": "Compose", "inputs": "@body('Get_secret')?['value']", "runAfter": {}},
    "Child": {"type": "Workflow", "runAfter": {}, "inputs": {"host": {"workflowReferenceName": "x"},
                                                                "body": "@outputs('Keep')"}}}}

ENV_DEF_XML = """<?xml version="1.0" encoding="utf-8"?>
<environmentvariabledefinition schemaname="cr6e_ApiPassword">
  <defaultvalue>{value}</defaultvalue>
  <displayname default="Api Password">
    <label description="Api Password" languagecode="1033" />
  </displayname>
  <introducedversion>1.0.0.0</introducedversion>
  <iscustomizable>1</iscustomizable>
  <isrequired>0</isrequired>
  <secretstore>0</secretstore>
  <type>100000000</type>
</environmentvariabledefinition>
"""

ENV_DEF_SECRET_XML = """<?xml version="1.0" encoding="utf-8"?>
<environmentvariabledefinition schemaname="cr6e_PartnerKey">
  <displayname default="Partner key"><label description="Partner key" languagecode="1033" /></displayname>
  <type>100000005</type>
</environmentvariabledefinition>
"""

DEPLOYMENT_SETTINGS = {
    "EnvironmentVariables": [
        {"SchemaName": "cr6e_SiteUrl", "Value": "https://contoso.sharepoint.com/sites/ops"},
        {"SchemaName": "cr6e_PartnerKey",
         "Value": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-flows/providers/"
                  "Microsoft.KeyVault/vaults/kv-contoso/secrets/PartnerKey"},
        {"SchemaName": "cr6e_ClientSecret", "Value": PLANTED["settings_secret"]},
    ],
    "ConnectionReferences": [
        {"LogicalName": "cr6e_sharedkeyvault_1", "ConnectionId": "", "ConnectorId": "/providers/Microsoft.PowerApps/apis/shared_keyvault"},
    ],
}


def solution_zip(workflows: dict[str, dict], *, env_xml: dict[str, str] | None = None,
                 env_values: dict[str, str] | None = None) -> bytes:
    """A minimal solution export zip: Workflows/<name>.json with properties.definition."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("solution.xml", "<ImportExportXml><SolutionManifest><UniqueName>Ops</UniqueName>"
                                    "</SolutionManifest></ImportExportXml>")
        zf.writestr("customizations.xml", "<ImportExportXml><Workflows/></ImportExportXml>")
        zf.writestr("[Content_Types].xml", "<Types/>")
        for name, d in workflows.items():
            doc = {"properties": {"connectionReferences": {}, "definition": d}, "schemaVersion": "1.0.0.0"}
            zf.writestr(f"Workflows/{name}-8A1C1D5E-0000-4000-8000-000000000001.json", json.dumps(doc, indent=2))
        for schema, xml in (env_xml or {}).items():
            zf.writestr(f"environmentvariabledefinitions/{schema}/environmentvariabledefinition.xml", xml)
        for schema, value in (env_values or {}).items():
            zf.writestr(f"environmentvariabledefinitions/{schema}/environmentvariablevalues.json",
                        json.dumps({"environmentvariablevalues": {"environmentvariablevalue":
                                                                  {"schemaname": schema, "value": value}}}))
    return buf.getvalue()


def legacy_package_zip(definition: dict, flow_id: str = "4b4c7d8e-1111-2222-3333-444455556666") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"schema": "1.0", "details": {"displayName": "Legacy"}}))
        zf.writestr(f"Microsoft.Flow/flows/{flow_id}/definition.json",
                    json.dumps({"name": flow_id, "properties": {"displayName": "Legacy flow", "definition": definition}}))
        zf.writestr(f"Microsoft.Flow/flows/{flow_id}/apisMap.json", "{}")
        zf.writestr(f"Microsoft.Flow/flows/{flow_id}/connectionsMap.json", "{}")
    return buf.getvalue()
