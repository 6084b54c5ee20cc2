"""Flows built on connectors: Key Vault Get secret (secured or not) feeding an HTTP call, a SharePoint
sync, and a Foreach with a child flow."""
from __future__ import annotations

import base64
import hashlib

from .. import fakes
from ..model import Body, P
from .base import RECURRENCE, SHAREPOINT_API, Template, after, definition, secure_config

KEYVAULT_API = "/providers/Microsoft.PowerApps/apis/shared_keyvault"


class VaultSecret(Template):
    """Key Vault Get secret followed by an HTTP action that sends the value as x-api-key."""
    connectors = ("shared_keyvault",)
    display_names = ("Call partner API", "Invoice push", "Pull exchange rates")

    def __init__(self, name: str, get_secure: tuple[str, ...], consumer_secure: tuple[str, ...]):
        self.name, self.get_secure, self.consumer_secure = name, get_secure, consumer_secure
        risks = []
        if "outputs" not in get_secure:
            risks.append(("keyvault-get-secret-unsecured-outputs", "Get_secret"))
        if "inputs" not in consumer_secure:
            risks.append(("secret-consumer-unsecured-inputs", "Call_API"))
        self.risks = tuple(risks)

    def setup(self, rng, flow, tenant):
        return {"secret_name": rng.choice(tenant.FLOW_VAULT_SECRETS),
                "uri": f"https://api.partner{rng.randint(1, 9)}-fake.example/v2/invoices"}

    def definition(self, flow, tenant):
        s = flow.static
        return definition(RECURRENCE, {
            "Get_secret": {"type": "OpenApiConnection", "inputs": {
                "host": {"connectionName": "shared_keyvault", "operationId": "GetSecret", "apiId": KEYVAULT_API},
                "parameters": {"secretName": s["secret_name"]},
                "authentication": "@parameters('$authentication')"},
                **after(None), **secure_config(self.get_secure)},
            "Call_API": {"type": "Http", "inputs": {
                "uri": s["uri"], "method": "GET", "headers": {"x-api-key": "@{body('Get_secret')?['value']}"}},
                **after("Get_secret"), **secure_config(self.consumer_secure)}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        name = s["secret_name"]
        value = b.tenant.vault_secrets[name]
        version = b.tenant.vault[name].versions[-1].version
        b.trigger("Recurrence", "Recurrence")
        plant = P("keyvault_secret", value, value)
        b.action("Get_secret", "OpenApiConnection", Body({
            "host": {"apiId": KEYVAULT_API, "connectionReferenceName": "shared_keyvault", "operationId": "GetSecret"},
            "parameters": {"secretName": name}}),
            Body({"statusCode": 200, "headers": b.http_headers(),
                  "body": {"value": value, "name": name, "version": version, "contentType": "text/plain",
                           "isEnabled": True, "createdTime": b.iso(), "lastUpdatedTime": b.iso()}}, plant),
            secure=self.get_secure)
        b.action("Call_API", "Http", Body({"uri": s["uri"], "method": "GET", "headers": {"x-api-key": value}}, plant),
                 Body({"statusCode": 200, "headers": b.http_headers(),
                       "body": {"invoices": [{"id": b.guid(), "hash": b.decoy(fakes.sha1_hex(rng))}
                                             for _ in range(rng.randint(1, 3))]}}),
                 secure=self.consumer_secure)


class SharePointSync(Template):
    """SharePoint trigger whose list items sometimes carry pasted AWS keys; a GetItems call full of
    decoys (ETags, GUIDs, digests, a PNG thumbnail, resource ids)."""
    name = "sharepoint_sync"
    connectors = ("shared_sharepointonline",)
    display_names = ("New list item to Teams", "Archive change requests", "Track deployments")

    def setup(self, rng, flow, tenant):
        return {"dataset": "https://contoso-fake.sharepoint.com/sites/Engineering", "table": fakes.guid(rng)}

    def _host(self, operation: str) -> dict:
        return {"connectionName": "shared_sharepointonline", "operationId": operation, "apiId": SHAREPOINT_API}

    def definition(self, flow, tenant):
        params = {"dataset": flow.static["dataset"], "table": flow.static["table"]}
        return definition(
            {"When_an_item_is_created": {"type": "OpenApiConnection", "recurrence": {"frequency": "Minute", "interval": 5},
                                         "inputs": {"host": self._host("GetOnNewItems"), "parameters": params},
                                         "splitOn": "@triggerOutputs()?['body/value']"}},
            {"Get_items": {"type": "OpenApiConnection", "inputs": {
                "host": self._host("GetItems"), "parameters": {**params, "$top": 100}}, **after(None)}})

    def run(self, b):
        s, rng, t = b.flow.static, b.rng, b.tenant
        api_id = f"subscriptions/{t.subscription_id}/providers/Microsoft.Web/locations/westeurope/runtimes/europe-001/apis/sharepointonline"
        params = {"dataset": s["dataset"], "table": s["table"]}
        item_id = rng.randint(1, 5000)
        plants = []
        if rng.random() < 0.4:
            key_id, secret = fakes.aws_key_pair(rng)
            notes = f"build agent creds: {key_id} / {secret} (rotate after release)"
            plants = [P("aws_access_key_id", key_id, notes), P("aws_secret_access_key", secret, notes)]
        else:
            notes = f"Deployed build {b.decoy(fakes.sha1_hex(rng))}; key: {b.decoy(fakes.PLACEHOLDERS[2])}"
        b.trigger("When_an_item_is_created", "OpenApiConnection",
                  Body({"host": {"apiId": api_id, "connectionReferenceName": "shared_sharepointonline",
                                 "operationId": "GetOnNewItems"}, "parameters": params}),
                  Body({"headers": {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": b.guid()},
                        "body": {"@odata.etag": '"1"', "ItemInternalId": str(item_id), "ID": item_id,
                                 "Title": "Release notes", "Notes": notes, "Modified": b.iso(),
                                 "{Identifier}": b.guid()}}, *plants))
        items = [{"@odata.etag": '"%d"' % rng.randint(1, 9), "ID": rng.randint(1, 5000), "GUID": b.guid(),
                  "FileHash": b.decoy(fakes.sha256_hex(rng)), "Checksum": b.decoy(fakes.md5_hex(rng)),
                  "Thumbnail": b.decoy(fakes.png_thumbnail(rng)),
                  "StorageResource": b.decoy(fakes.resource_id(rng, t.subscription_id)), "Modified": b.iso()}
                 for _ in range(rng.randint(1, 3))]
        b.action("Get_items", "OpenApiConnection",
                 Body({"host": {"apiId": api_id, "connectionReferenceName": "shared_sharepointonline",
                                "operationId": "GetItems"}, "parameters": {**params, "$top": 100}}),
                 Body({"statusCode": 200, "headers": b.http_headers(), "body": {"value": items}}))


class LoopChildFlow(Template):
    """Button trigger with a GitHub token typed in; a Foreach uploading blobs to SAS URLs (one
    repetition per file); a child flow receiving the token."""
    name = "loop_childflow"
    display_names = ("Upload exports", "Mirror repository files", "Distribute reports")
    risks = (("hardcoded-secret", "Upload_blob"),)

    def setup(self, rng, flow, tenant):
        return {"account": fakes.storage_account_name(rng), "sig": fakes.sas_sig(rng),
                "token": fakes.github_token(rng), "child": fakes.guid(rng)}

    def _url(self, s: dict, blob: str) -> str:
        return fakes.blob_sas_url(s["account"], "exports", blob, s["sig"])

    def definition(self, flow, tenant):
        s = flow.static
        return definition(
            {"manual": {"type": "Request", "kind": "Button", "inputs": {"schema": {
                "type": "object", "properties": {"text": {"title": "GitHub token", "type": "string"},
                                                 "files": {"type": "array"}},
                "required": ["text"]}}}},
            {"List_files": {"type": "Compose", "inputs": "@triggerBody()?['files']", **after(None)},
             "Apply_to_each": {"type": "Foreach", "foreach": "@outputs('List_files')", "actions": {
                 "Upload_blob": {"type": "Http", "inputs": {
                     "uri": self._url(s, "@{items('Apply_to_each')?['name']}"), "method": "PUT",
                     "headers": {"x-ms-blob-type": "BlockBlob"}, "body": "@items('Apply_to_each')"}, **after(None)}},
                 **after("List_files")},
             "Run_a_Child_Flow": {"type": "Workflow", "inputs": {
                 "host": {"workflowReferenceName": s["child"]},
                 "body": {"text": "@triggerBody()['text']", "number": "@length(outputs('List_files'))"}},
                 **after("Apply_to_each")}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        token = s["token"]
        files = [{"name": f"export-{i:03d}.csv", "md5": b.decoy(fakes.md5_hex(rng))}
                 for i in range(rng.randint(1, b.tenant.max_loop_items))]
        b.trigger("manual", "Request", outputs=Body({
            "headers": {"Content-Type": "application/json", "x-ms-user-name": "Megan Bowen"},
            "body": {"key-button-date": b.iso(), "location": {"timezone": "W. Europe Standard Time"},
                     "text": token, "files": files, "user": {"email": "megan@contoso-fake.example"}}},
            P("github_token", token, token)))
        b.action("List_files", "Compose", Body(files), Body(files))
        reps = []
        for f in files:
            url = self._url(s, f["name"])
            reps.append((Body({"uri": url, "method": "PUT", "headers": {"x-ms-blob-type": "BlockBlob"}, "body": f},
                              P("sas_url", s["sig"], url)),
                         Body({"statusCode": 201, "headers": {
                             **b.http_headers("application/octet-stream"),
                             "Content-MD5": base64.b64encode(hashlib.md5(f["name"].encode()).digest()).decode()},
                             "body": ""})))
        b.foreach("Apply_to_each", "Upload_blob", "Http", reps)
        b.action("Run_a_Child_Flow", "Workflow",
                 Body({"host": {"workflowReferenceName": s["child"]}, "body": {"text": token, "number": len(files)}},
                      P("github_token", token, token)),
                 Body({"statusCode": 200, "headers": {
                     "x-ms-workflow-run-id": f"0858{rng.randint(10**24, 10**25 - 1)}CU{rng.randint(1, 99)}",
                     "x-ms-workflow-name": s["child"], "x-ms-workflow-id": b.decoy(fakes.hex_id(rng))},
                     "body": {"result": "done"}}))
