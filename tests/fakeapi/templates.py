"""Flow templates: a Logic Apps definition plus the run content it produces.

Flows cycle through TEMPLATES, so any tenant with at least len(TEMPLATES) (13) flows holds every case
(the first ten are the original cases; a ten-flow tenant keeps holding them): HTTP with secrets in
headers and in the query string, Compose and Initialize variable holding secrets, Key Vault Get secret
with and without Secure Inputs/Outputs and an HTTP action consuming it, a SharePoint connector, a
Foreach with an inner action, a child flow, a Response, an XML (`$content`) body, a webhook trigger, a
secured trigger and a flow with nothing to find; then run history full of identifiers (Graph paging
and delta tokens, SharePoint drive and item ids, Blob FileLocators and markers, Dataverse paging
cookies, ETags and row versions, tracking headers) with secrets only entropy can find and providers'
documentation examples as decoys.

Each template's `runtimeConfiguration.secureData` in the definition is exactly what its runs hide.
`risks` lists the posture issues a definition linter should raise for the template:
  keyvault-get-secret-unsecured-outputs  Get secret without Secure Outputs: the value is in history
  secret-consumer-unsecured-inputs       an action using a Key Vault value without Secure Inputs
  hardcoded-secret                       a literal credential written into the definition
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote

from . import fakes
from .model import TICKS_PER_SECOND, Body, P, Repetition, RunHeader, Step, fmt_ticks

if TYPE_CHECKING:
    from .tenant import Flow, Tenant

SCHEMA = "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#"
KEYVAULT_API = "/providers/Microsoft.PowerApps/apis/shared_keyvault"
SHAREPOINT_API = "/providers/Microsoft.PowerApps/apis/shared_sharepointonline"


def definition(triggers: dict, actions: dict) -> dict:
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "$connections": {"defaultValue": {}, "type": "Object"},
            "$authentication": {"defaultValue": {}, "type": "SecureObject"},
        },
        "triggers": triggers,
        "actions": actions,
        "outputs": {},
    }


def secure_config(sides: Iterable[str]) -> dict:
    sides = list(sides)
    return {"runtimeConfiguration": {"secureData": {"properties": sides}}} if sides else {}


def after(previous: str | None) -> dict:
    return {"runAfter": {previous: ["Succeeded"]} if previous else {}}


RECURRENCE = {"Recurrence": {"type": "Recurrence", "recurrence": {"frequency": "Hour", "interval": 1}}}


class RunBuilder:
    """Collects one run's trigger and actions, with plausible, increasing timestamps."""

    def __init__(self, tenant: Tenant, flow: Flow, header: RunHeader, rng: random.Random):
        self.tenant, self.flow, self.header, self.rng = tenant, flow, header, rng
        self.clock = header.start
        self.trigger_step: Step | None = None
        self.actions: dict[str, Step] = {}
        self.decoys: set[str] = set()

    def _span(self) -> tuple[int, int]:
        start = self.clock + self.rng.randint(1, 40) * TICKS_PER_SECOND // 1000
        end = start + self.rng.randint(5, 900) * TICKS_PER_SECOND // 1000 + self.rng.randint(0, 9999)
        self.clock = end
        return start, end

    def decoy(self, value: str) -> str:
        self.decoys.add(value)
        return value

    def guid(self) -> str:
        return self.decoy(fakes.guid(self.rng))

    def iso(self) -> str:
        return self.decoy(fmt_ticks(self.clock))

    def http_headers(self, content_type: str = "application/json; charset=utf-8") -> dict:
        return {"x-ms-request-id": self.guid(), "ETag": self.decoy(fakes.etag(self.rng)),
                "Date": formatdate(self.clock / TICKS_PER_SECOND, usegmt=True),
                "Content-Type": content_type}

    def trigger(self, name: str, type_: str, inputs: Body | None = None, outputs: Body | None = None,
                secure: Iterable[str] = ()) -> None:
        start, end = self._span()
        self.trigger_step = Step(name, type_, start, end, self.header.client_tracking_id, inputs, outputs,
                                 frozenset(secure))

    def action(self, name: str, type_: str, inputs: Body | None = None, outputs: Body | None = None,
               secure: Iterable[str] = ()) -> None:
        start, end = self._span()
        self.actions[name] = Step(name, type_, start, end, fakes.guid(self.rng), inputs, outputs, frozenset(secure))

    def foreach(self, name: str, inner: str, inner_type: str, items: list[tuple[Body, Body]],
                secure: Iterable[str] = ()) -> None:
        """A Foreach and its one inner action; each item becomes a repetition of the inner action."""
        start = self.clock
        reps = []
        for i, (inputs, outputs) in enumerate(items):
            r_start, r_end = self._span()
            reps.append(Repetition(f"{i:06d}", i, r_start, r_end, fakes.guid(self.rng), inputs, outputs))
        self.actions[name] = Step(name, "Foreach", start, self.clock, fakes.guid(self.rng), iterations=len(reps))
        self.actions[inner] = Step(inner, inner_type, reps[0].start if reps else start, self.clock,
                                   fakes.guid(self.rng), secure=frozenset(secure), loop=name, repetitions=reps)


class Template:
    name = ""
    display_names: tuple[str, ...] = ()
    connectors: tuple[str, ...] = ()
    risks: tuple[tuple[str, str], ...] = ()   # (issue, action or trigger name)

    def setup(self, rng: random.Random, flow: Flow, tenant: Tenant) -> dict[str, Any]:
        """Per-flow constants (literal secrets in the definition, hosts, names)."""
        return {}

    def definition(self, flow: Flow, tenant: Tenant) -> dict:
        raise NotImplementedError

    def run(self, b: RunBuilder) -> None:
        raise NotImplementedError


class OrdersApi(Template):
    """HTTP trigger with a password in the body; HTTP action with x-api-key, Bearer JWT and a
    Functions key in the URI query; a Response."""
    name = "orders_api"
    display_names = ("Order intake webhook", "Forward orders to fulfilment", "Partner order bridge")
    risks = (("hardcoded-secret", "HTTP"),)

    def setup(self, rng, flow, tenant):
        code = fakes.function_key(rng)
        return {"code": code, "key": fakes.api_key(rng),
                "jwt": fakes.jwt(rng, tenant.tenant_id, "api://orders-fake", flow.created // TICKS_PER_SECOND),
                "uri": f"https://fn-orders-{fakes.pick(rng, 'abcdefgh', 5)}.azurewebsites.net/api/orders?code={code}"}

    def definition(self, flow, tenant):
        s = flow.static
        return definition(
            {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {
                "type": "object", "properties": {"orderId": {"type": "string"}, "customer": {"type": "object"}}}}}},
            {"HTTP": {"type": "Http", "inputs": {
                "uri": s["uri"], "method": "POST",
                "headers": {"Content-Type": "application/json", "x-api-key": s["key"],
                            "Authorization": "Bearer " + s["jwt"]},
                "body": {"orderId": "@{triggerBody()?['orderId']}"}}, **after(None)},
             "Response": {"type": "Response", "kind": "Http", "inputs": {
                 "statusCode": 200, "body": {"received": True, "orderId": "@{triggerBody()?['orderId']}"}},
                 **after("HTTP")}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        order, pw = b.guid(), fakes.password(rng)
        b.trigger("manual", "Request", outputs=Body({
            "headers": {"Accept": "*/*", "Content-Type": "application/json", "User-Agent": "OrdersPortal/2.4",
                        "x-ms-client-request-id": b.guid(),
                        "traceparent": f"00-{b.decoy(fakes.hex_id(rng))}-{fakes.hex_id(rng, 16)}-01"},
            "body": {"orderId": order, "customer": {"email": f"buyer{rng.randint(1, 999)}@contoso-fake.example",
                                                    "password": pw},
                     "apiKey": b.decoy(fakes.PLACEHOLDERS[0])}}, P("password", pw, pw)))
        b.action("HTTP", "Http", Body({
            "uri": s["uri"], "method": "POST",
            "headers": {"Content-Type": "application/json", "x-api-key": s["key"], "Authorization": "Bearer " + s["jwt"]},
            "body": {"orderId": order, "payloadSha256": b.decoy(fakes.sha256_hex(rng))}},
            P("function_key", s["code"], s["uri"]), P("api_key_header", s["key"], s["key"]),
            P("bearer_jwt", s["jwt"], "Bearer " + s["jwt"])),
            Body({"statusCode": 202, "headers": b.http_headers(),
                  "body": {"id": b.guid(), "status": "Accepted", "trackingId": b.guid()}}))
        b.action("Response", "Response", Body({"statusCode": 200, "body": {"received": True, "orderId": order}}))


class TokenClient(Template):
    """Client secret in an Initialize variable and in a token request form body; a storage connection
    string in a Compose; the token endpoint's Bearer JWT in the outputs."""
    name = "token_client"
    display_names = ("Refresh Graph token", "Nightly storage export", "Sync HR records")
    risks = (("hardcoded-secret", "Initialize_client_secret"), ("hardcoded-secret", "Compose_connection"))

    def setup(self, rng, flow, tenant):
        account = fakes.storage_account_name(rng)
        key = fakes.storage_account_key(rng)
        return {"secret": fakes.azure_client_secret(rng), "client_id": fakes.guid(rng), "key": key,
                "conn": fakes.storage_connection_string(account, key)}

    def _form(self, client_id: str, secret: str) -> str:
        return (f"grant_type=client_credentials&client_id={client_id}&client_secret={quote(secret, safe='~')}"
                "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")

    def _token_uri(self, tenant):
        return f"https://login.microsoftonline.com/{tenant.tenant_id}/oauth2/v2.0/token"

    def definition(self, flow, tenant):
        s = flow.static
        return definition(RECURRENCE, {
            "Initialize_client_secret": {"type": "InitializeVariable", "inputs": {"variables": [
                {"name": "clientSecret", "type": "string", "value": s["secret"]}]}, **after(None)},
            "Compose_connection": {"type": "Compose", "inputs": s["conn"], **after("Initialize_client_secret")},
            "Get_token": {"type": "Http", "inputs": {
                "uri": self._token_uri(tenant), "method": "POST",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                "body": self._form(s["client_id"], "@{variables('clientSecret')}")}, **after("Compose_connection")}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        b.trigger("Recurrence", "Recurrence")  # a Recurrence trigger has no content links
        b.action("Initialize_client_secret", "InitializeVariable", Body({"variables": [
            {"name": "clientSecret", "type": "String", "value": s["secret"]}]},
            P("azure_client_secret", s["secret"], s["secret"])))
        conn = P("storage_connection_string", s["key"], s["conn"])
        b.action("Compose_connection", "Compose", Body(s["conn"], conn), Body(s["conn"], conn))
        form = self._form(s["client_id"], s["secret"])
        token = fakes.jwt(rng, b.tenant.tenant_id, "https://graph.microsoft.com", b.header.start // TICKS_PER_SECOND)
        b.action("Get_token", "Http", Body({
            "uri": self._token_uri(b.tenant), "method": "POST",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": form},
            P("client_secret_form", s["secret"], form)),
            Body({"statusCode": 200, "headers": b.http_headers(),
                  "body": {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}},
                 P("bearer_jwt", token, token)))


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


class LegacySoap(Template):
    """HTTP webhook trigger whose subscription inputs hold a Basic header and the flow's own callback
    URL; an HTTP call with Basic auth returning XML (`$content`) with a storage key inside; a Compose
    of decoys."""
    name = "legacy_soap"
    display_names = ("ERP invoice listener", "SOAP bridge", "Legacy billing sync")
    risks = (("hardcoded-secret", "When_a_webhook_is_called"), ("hardcoded-secret", "Get_invoice_XML"))

    def setup(self, rng, flow, tenant):
        pw = fakes.password(rng) + fakes.pick(rng, fakes.ALNUM, 6)
        callback, sig = fakes.logicapp_trigger_url(rng, flow.workflow_hex)
        return {"pw": pw, "basic": fakes.basic_header("svc-integration", pw), "callback": callback,
                "callback_sig": sig, "key": fakes.storage_account_key(rng)}

    def definition(self, flow, tenant):
        s = flow.static
        return definition(
            {"When_a_webhook_is_called": {"type": "HttpWebhook", "inputs": {
                "subscribe": {"method": "POST", "uri": "https://events.legacy-fake.example/api/subscriptions",
                              "headers": {"Authorization": s["basic"]}, "body": {"callbackUrl": "@{listCallbackUrl()}"}},
                "unsubscribe": {"method": "DELETE",
                                "uri": "https://events.legacy-fake.example/api/subscriptions/@{triggerOutputs()?['body/id']}"}}}},
            {"Get_invoice_XML": {"type": "Http", "inputs": {
                "uri": "https://erp.legacy-fake.example/soap/invoices/@{triggerBody()?['invoiceId']}", "method": "GET",
                "headers": {"Authorization": s["basic"], "Accept": "application/xml"}}, **after(None)},
             "Compose_metadata": {"type": "Compose", "inputs": {"receivedAt": "@utcNow()"}, **after("Get_invoice_XML")}})

    def run(self, b):
        s, rng, t = b.flow.static, b.rng, b.tenant
        invoice = b.guid()
        basic = P("basic_auth", s["pw"], s["basic"])
        b.trigger("When_a_webhook_is_called", "HttpWebhook",
                  Body({"subscribe": {"method": "POST", "uri": "https://events.legacy-fake.example/api/subscriptions",
                                      "headers": {"Authorization": s["basic"]}, "body": {"callbackUrl": s["callback"]}},
                        "unsubscribe": {"method": "DELETE",
                                        "uri": f"https://events.legacy-fake.example/api/subscriptions/{invoice}"}},
                       basic, P("logicapp_trigger_url", s["callback_sig"], s["callback"])),
                  Body({"headers": {"Content-Type": "application/json"},
                        "body": {"event": "invoice.created", "invoiceId": invoice, "occurredAt": b.iso()}}))
        xml = (f'<?xml version="1.0" encoding="utf-8"?><Invoice id="{invoice}"><Amount>{rng.randint(10, 9999)}.00'
               f'</Amount><Archive><Account>{fakes.storage_account_name(rng)}</Account><AccountKey>{s["key"]}'
               f'</AccountKey></Archive><Digest>{b.decoy(fakes.sha256_hex(rng))}</Digest></Invoice>')
        b.action("Get_invoice_XML", "Http",
                 Body({"uri": f"https://erp.legacy-fake.example/soap/invoices/{invoice}", "method": "GET",
                       "headers": {"Authorization": s["basic"], "Accept": "application/xml"}}, basic),
                 Body({"statusCode": 200, "headers": b.http_headers("application/xml; charset=utf-8"),
                       "body": {"$content-type": "application/xml; charset=utf-8",
                                "$content": base64.b64encode(xml.encode()).decode()}},
                      P("storage_account_key", s["key"], xml)))
        meta = {"thumbnail": b.decoy(fakes.png_thumbnail(rng)), "sha1": b.decoy(fakes.sha1_hex(rng)),
                "md5": b.decoy(fakes.md5_hex(rng)), "resourceId": b.decoy(fakes.resource_id(rng, t.subscription_id)),
                "apiKey": b.decoy(fakes.PLACEHOLDERS[1]), "receivedAt": b.iso()}
        b.action("Compose_metadata", "Compose", Body(meta), Body(meta))


class SecureTrigger(Template):
    """Everything sensitive is secured: the trigger (password, client secret) and the token call.
    Only the Compose is visible, and it holds no secret."""
    name = "secure_trigger"
    display_names = ("Provision service account", "Rotate credentials", "Onboard vendor")

    def definition(self, flow, tenant):
        token_uri = f"https://login.microsoftonline.com/{tenant.tenant_id}/oauth2/v2.0/token"
        return definition(
            {"manual": {"type": "Request", "kind": "Http", "inputs": {"schema": {"type": "object"}},
                        **secure_config(["inputs", "outputs"])}},
            {"Get_token": {"type": "Http", "inputs": {
                "uri": token_uri, "method": "POST", "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                "body": "grant_type=client_credentials&client_secret=@{triggerBody()?['clientSecret']}"},
                **after(None), **secure_config(["inputs", "outputs"])},
             "Compose_ack": {"type": "Compose", "inputs": "Accepted @{triggerOutputs()['headers']['x-ms-client-request-id']}",
                             **after("Get_token")}})

    def run(self, b):
        rng, t = b.rng, b.tenant
        pw, client_secret = fakes.password(rng), fakes.azure_client_secret(rng)
        request_id = b.guid()
        b.trigger("manual", "Request", outputs=Body(
            {"headers": {"Content-Type": "application/json", "x-ms-client-request-id": request_id},
             "body": {"username": "svc-onboarding", "password": pw, "clientSecret": client_secret}},
            P("password", pw, pw), P("azure_client_secret", client_secret, client_secret)),
            secure=("inputs", "outputs"))
        form = f"grant_type=client_credentials&client_secret={client_secret}"
        token = fakes.jwt(rng, t.tenant_id, "https://graph.microsoft.com", b.header.start // TICKS_PER_SECOND)
        b.action("Get_token", "Http", Body({
            "uri": f"https://login.microsoftonline.com/{t.tenant_id}/oauth2/v2.0/token", "method": "POST",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": form},
            P("client_secret_form", client_secret, form)),
            Body({"statusCode": 200, "headers": b.http_headers(),
                  "body": {"token_type": "Bearer", "expires_in": 3599, "access_token": token}},
                 P("bearer_jwt", token, token)),
            secure=("inputs", "outputs"))
        ack = f"Accepted {request_id}"
        b.action("Compose_ack", "Compose", Body(ack), Body(ack))


class SafeStatus(Template):
    """Nothing to find: only decoys and placeholders."""
    name = "safe"
    display_names = ("Daily status digest", "Weather to Teams", "Service health check")

    def definition(self, flow, tenant):
        return definition(RECURRENCE, {
            "Get_status": {"type": "Http", "inputs": {
                "uri": "https://status.contoso-fake.example/api/v1/summary", "method": "GET"}, **after(None)},
            "Compose_summary": {"type": "Compose", "inputs": {"status": "@body('Get_status')?['status']",
                                                              "apiKey": "<your-key>"}, **after("Get_status")}})

    def run(self, b):
        rng, t = b.rng, b.tenant
        b.trigger("Recurrence", "Recurrence")
        b.action("Get_status", "Http",
                 Body({"uri": "https://status.contoso-fake.example/api/v1/summary", "method": "GET"}),
                 Body({"statusCode": 200, "headers": b.http_headers(), "body": {
                     "status": "operational", "correlationId": b.guid(), "build": b.decoy(fakes.sha1_hex(rng)),
                     "resource": b.decoy(fakes.resource_id(rng, t.subscription_id)), "checkedAt": b.iso()}}))
        summary = {"status": "operational", "apiKey": b.decoy(fakes.PLACEHOLDERS[0]),
                   "token": b.decoy(fakes.PLACEHOLDERS[1]), "password": b.decoy(fakes.PLACEHOLDERS[4]),
                   "secret": b.decoy(fakes.PLACEHOLDERS[2]), "digest": b.decoy(fakes.sha256_hex(rng)),
                   "trackingId": b.guid()}
        b.action("Compose_summary", "Compose", Body(summary), Body(summary))


GRAPH = "https://graph.microsoft.com/v1.0"
BLOB_API = "/providers/Microsoft.PowerApps/apis/shared_azureblob"
DATAVERSE_API = "/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps"
GRAPH_MSI = {"type": "ManagedServiceIdentity", "audience": "https://graph.microsoft.com"}
FIRST_NAMES = ("Megan", "Adele", "Alex", "Diego", "Isaiah", "Johanna", "Lidia", "Nestor", "Patti", "Pradeep")


def _host(api_id: str, connection: str, operation: str) -> dict:
    return {"connectionName": connection, "operationId": operation, "apiId": api_id}


def _run_host(api_id: str, connection: str, operation: str) -> dict:
    return {"apiId": api_id, "connectionReferenceName": connection, "operationId": operation}


def _graph_headers(b: RunBuilder) -> dict:
    """Headers of a Graph response as run history records them (ids and diagnostics, no secret)."""
    return {"Content-Type": "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
                            "charset=utf-8",
            "request-id": b.guid(), "client-request-id": b.guid(),
            "x-ms-ags-diagnostic": json.dumps({"ServerInfo": {"DataCenter": "West Europe", "Slice": "E",
                                                              "Ring": "5", "ScaleUnit": "003",
                                                              "RoleInstance": "AM2PEPF0001" + str(b.rng.randint(1000, 9999))}}),
            "x-ms-resource-unit": "1", "X-Azure-Ref": b.decoy(fakes.azure_ref(b.rng)),
            "Date": formatdate(b.clock / TICKS_PER_SECOND, usegmt=True)}


class GraphFiles(Template):
    """SharePoint file trigger (drive / item ids, `{Identifier}`), Graph calls whose paging links carry
    skip and delta tokens (a drive listing, the directory, a mailbox with change keys); a vendor access
    key pasted into a file's description, which only the entropy stage can find."""
    name = "graph_files"
    connectors = ("shared_sharepointonline",)
    display_names = ("Index new contracts", "Contract review intake", "Sync library to HR")

    def setup(self, rng, flow, tenant):
        return {"site": "https://contoso-fake.sharepoint.com/sites/Legal", "library": fakes.guid(rng),
                "drive": fakes.drive_id(rng), "mailbox": f"legal{rng.randint(1, 9)}@contoso-fake.example"}

    def _calls(self, s: dict) -> dict:
        return {"List_children": f"{GRAPH}/drives/{s['drive']}/root:/Contracts:/children?$top=3",
                "List_users": f"{GRAPH}/users?$top=3&$select=id,displayName,mail",
                "Users_delta": f"{GRAPH}/users/delta?$select=displayName,mail",
                "Get_mail": f"{GRAPH}/users/{s['mailbox']}/messages?$top=2&$select=subject,changeKey"}

    def definition(self, flow, tenant):
        s = flow.static
        actions, prev = {}, None
        for name, uri in self._calls(s).items():
            actions[name] = {"type": "Http", "inputs": {"uri": uri, "method": "GET", "authentication": GRAPH_MSI},
                             **after(prev)}
            prev = name
        return definition(
            {"When_a_file_is_created": {"type": "OpenApiConnection", "recurrence": {"frequency": "Minute", "interval": 5},
                                        "inputs": {"host": _host(SHAREPOINT_API, "shared_sharepointonline",
                                                                 "GetOnNewFileItems"),
                                                   "parameters": {"dataset": s["site"], "table": s["library"]}},
                                        "splitOn": "@triggerOutputs()?['body/value']"}},
            actions)

    def _drive_item(self, b: RunBuilder, s: dict, name: str) -> dict:
        rng, item_guid = b.rng, fakes.guid(b.rng)
        return {"@odata.etag": b.decoy(fakes.graph_etag(rng, item_guid)), "id": b.decoy(fakes.drive_item_id(rng)),
                "name": name, "eTag": fakes.graph_etag(rng, item_guid), "cTag": fakes.graph_etag(rng, item_guid, True),
                "createdDateTime": b.iso(), "lastModifiedDateTime": b.iso(), "size": rng.randint(20_000, 900_000),
                "webUrl": f"{s['site']}/Shared%20Documents/Contracts/{quote(name)}",
                "createdBy": {"user": {"email": f"{rng.choice(FIRST_NAMES).lower()}@contoso-fake.example",
                                       "id": b.guid(), "displayName": rng.choice(FIRST_NAMES)}},
                "parentReference": {"driveType": "documentLibrary", "driveId": b.decoy(s["drive"]),
                                    "id": b.decoy(fakes.drive_item_id(rng)), "name": "Contracts",
                                    "path": f"/drives/{s['drive']}/root:/Contracts",
                                    "siteId": f"contoso-fake.sharepoint.com,{b.guid()},{b.guid()}"},
                "file": {"mimeType": "application/pdf", "hashes": {"quickXorHash": b.decoy(fakes.quick_xor_hash(rng))}},
                "shared": {"scope": "users"}}

    def run(self, b):
        s, rng = b.flow.static, b.rng
        calls = self._calls(s)
        n = rng.randint(1, 999)
        name = f"MSA-{rng.randint(1000, 9999)}-{rng.choice(('Fabrikam', 'Northwind', 'Litware'))}"
        plants, description = [], "Countersigned copy, filed by Legal."
        if rng.random() < 0.6:  # a maker pasted the vendor portal's access key into the file's description
            secret = fakes.random_secret(rng)
            description = f"Countersigned copy. Vendor portal access for the renewal: {secret} (do not share)"
            plants = [P("random_secret", secret, description)]
        item = {"@odata.etag": f'"{rng.randint(1, 9)}"', "ItemInternalId": str(n), "ID": n, "Modified": b.iso(),
                "Created": b.iso(), "Editor": {"Claims": "i:0#.f|membership|megan@contoso-fake.example",
                                               "DisplayName": "Megan Bowen", "Email": "megan@contoso-fake.example"},
                "Description": description,
                "{Identifier}": f"Shared%2bDocuments%252fContracts%252f{quote(name)}.pdf", "{IsFolder}": False,
                "{Link}": f"{s['site']}/Shared%20Documents/Contracts/{quote(name)}.pdf", "{Name}": name,
                "{FilenameWithExtension}": f"{name}.pdf", "{Path}": "Shared Documents/Contracts/",
                "{FullPath}": f"Shared Documents/Contracts/{name}.pdf",
                "{ContentTypeId}": "0x010100" + fakes.hex_id(rng).upper(),
                "{DriveId}": b.decoy(s["drive"]), "{DriveItemId}": b.decoy(fakes.drive_item_id(rng)),
                "{ItemId}": n, "{VersionNumber}": "1.0"}
        b.trigger("When_a_file_is_created", "OpenApiConnection",
                  Body({"host": _run_host(SHAREPOINT_API, "shared_sharepointonline", "GetOnNewFileItems"),
                        "parameters": {"dataset": s["site"], "table": s["library"]}}),
                  Body({"headers": {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": b.guid(),
                                    "x-ms-apihub-cached-response": "true", "x-ms-apihub-obo": "false",
                                    "X-Azure-Ref": b.decoy(fakes.azure_ref(rng))},
                        "body": item}, *plants))

        def call(action: str, body: dict) -> None:
            b.action(action, "Http", Body({"uri": calls[action], "method": "GET", "authentication": GRAPH_MSI}),
                     Body({"statusCode": 200, "headers": _graph_headers(b), "body": body}))

        items = [self._drive_item(b, s, f"{name}-{i}.pdf") for i in range(3)]
        token = b.decoy(fakes.sharepoint_skiptoken(items[-1]["name"], rng.randint(10, 900)))
        call("List_children", {"@odata.context": f"{GRAPH}/$metadata#drives('{quote(s['drive'], safe='')}')/root/children",
                               "@odata.nextLink": f"{calls['List_children']}&$skiptoken={token}", "value": items})
        users = [{"id": b.guid(), "displayName": f"{first} {rng.choice(('Bowen', 'Vance', 'Wilber'))}",
                  "mail": f"{first.lower()}@contoso-fake.example"} for first in rng.sample(FIRST_NAMES, 3)]
        dir_token = b.decoy(fakes.directory_skiptoken(rng, users[-1]["mail"]))
        call("List_users", {"@odata.context": f"{GRAPH}/$metadata#users(id,displayName,mail)",
                            "@odata.nextLink": f"{calls['List_users']}&$skiptoken={quote(dir_token, safe='')}",
                            "value": users})
        delta = b.decoy(fakes.delta_token(rng))
        call("Users_delta", {"@odata.context": f"{GRAPH}/$metadata#users(displayName,mail)",
                             "@odata.deltaLink": f"{GRAPH}/users/delta?$deltatoken={delta}",
                             "value": [{"id": u["id"], "displayName": u["displayName"]} for u in users]})
        mails = []
        for _ in range(2):
            ck = b.decoy(fakes.change_key(rng))
            mid = b.decoy("AAMkAG" + base64.b64encode(rng.randbytes(105)).decode().replace("+", "-").replace("/", "_"))
            mails.append({"@odata.etag": f'W/"{ck}"', "id": mid, "changeKey": ck,
                          "subject": f"Contract {name} ready for review",
                          "conversationId": b.decoy("AAQkAG" + base64.b64encode(rng.randbytes(45)).decode()),
                          "internetMessageId": f"<{fakes.hex_id(rng, 24)}@contoso-fake.example>"})
        call("Get_mail", {"@odata.context": f"{GRAPH}/$metadata#users('{quote(s['mailbox'])}')/messages(subject,changeKey)",
                          "value": mails})


def _blob_meta(b: RunBuilder, path: str) -> dict:
    """Azure Blob connector BlobMetadata: `Id` and `FileLocator` are base64 of the encoded path."""
    locator = b.decoy(fakes.blob_file_locator(path))
    name = path.rsplit("/", 1)[-1]
    return {"Id": locator, "Name": name, "DisplayName": name, "Path": path, "LastModified": b.iso(),
            "Size": b.rng.randint(20_000, 400_000), "MediaType": "text/csv", "IsFolder": False,
            "ETag": b.decoy(fakes.etag(b.rng)), "FileLocator": locator, "LastModifiedBy": None}


class BlobArchive(Template):
    """Azure Blob trigger (`Id` / `FileLocator` / ETag), Get blob content (a CSV `$content`, Content-MD5,
    CRC64, x-ms-* headers), List blobs (`nextPageMarker`), a child flow (workflow tracking headers); a
    manifest Compose carrying a generated delivery key (only entropy finds it) and the Azurite docs'
    development connection string (a documentation example: a decoy)."""
    name = "blob_archive"
    connectors = ("shared_azureblob",)
    display_names = ("Archive invoices", "Blob to records", "Nightly scan archive")

    def setup(self, rng, flow, tenant):
        return {"account": fakes.storage_account_name(rng), "child": fakes.guid(rng),
                "settings": {"IsEncrypted": False, "Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                                                              "ArchiveStorage": fakes.AZURITE_CONNECTION}}}

    def definition(self, flow, tenant):
        s = flow.static
        blob = lambda op, params, prev: {"type": "OpenApiConnection", "inputs": {  # noqa: E731
            "host": _host(BLOB_API, "shared_azureblob", op), "parameters": params}, **after(prev)}
        return definition(
            {"When_a_blob_is_added_or_modified": {
                "type": "OpenApiConnection", "recurrence": {"frequency": "Minute", "interval": 3},
                "inputs": {"host": _host(BLOB_API, "shared_azureblob", "GetOnUpdatedFiles_V2"),
                           "parameters": {"dataset": "AccountNameFromSettings", "folderId": "JTJmaW52b2ljZXM="}},
                "splitOn": "@triggerOutputs()?['body']"}},
            {"Get_blob_content": blob("GetFileContent_V2", {"dataset": "AccountNameFromSettings",
                                                            "id": "@triggerOutputs()?['body/Id']"}, None),
             "List_blobs": blob("ListFolder_V4", {"dataset": "AccountNameFromSettings", "id": "JTJmaW52b2ljZXM="},
                                "Get_blob_content"),
             "Compose_manifest": {"type": "Compose", "inputs": {"files": "@body('List_blobs')?['value']"},
                                  **after("List_blobs")},
             "Compose_local_settings": {"type": "Compose", "inputs": s["settings"], **after("Compose_manifest")},
             "Run_a_Child_Flow": {"type": "Workflow", "inputs": {"host": {"workflowReferenceName": s["child"]},
                                                                 "body": {"files": "@outputs('Compose_manifest')"}},
                                  **after("Compose_local_settings")}})

    def run(self, b):
        s, rng = b.flow.static, b.rng
        year = rng.randint(2024, 2026)
        paths = [f"/invoices/{year}/Inv-{rng.randint(1000, 9999)}.csv" for _ in range(3)]
        meta = _blob_meta(b, paths[0])
        b.trigger("When_a_blob_is_added_or_modified", "OpenApiConnection",
                  Body({"host": _run_host(BLOB_API, "shared_azureblob", "GetOnUpdatedFiles_V2"),
                        "parameters": {"dataset": "AccountNameFromSettings", "folderId": "JTJmaW52b2ljZXM="}}),
                  Body({"headers": {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": b.guid(),
                                    "x-ms-apihub-cached-response": "false"}, "body": meta}))
        blob_headers = {"Content-Type": "text/csv", "Content-MD5": b.decoy(fakes.md5_b64(rng)),
                        "x-ms-content-crc64": b.decoy(fakes.crc64_b64(rng)), "ETag": meta["ETag"],
                        "x-ms-request-id": b.guid(), "x-ms-client-request-id": b.guid(), "x-ms-version": "2021-08-06",
                        "x-ms-blob-type": "BlockBlob", "x-ms-lease-status": "unlocked", "x-ms-server-encrypted": "true",
                        "x-ms-creation-time": formatdate(b.clock / TICKS_PER_SECOND, usegmt=True)}
        b.action("Get_blob_content", "OpenApiConnection",
                 Body({"host": _run_host(BLOB_API, "shared_azureblob", "GetFileContent_V2"),
                       "parameters": {"dataset": "AccountNameFromSettings", "id": meta["Id"]}}),
                 Body({"statusCode": 200, "headers": blob_headers,
                       "body": {"$content-type": "text/csv",
                                "$content": base64.b64encode(fakes.invoice_csv(rng).encode()).decode()}}))
        listing = [_blob_meta(b, p) for p in paths]
        marker = b.decoy(fakes.blob_next_marker(f"invoices/{year}/Inv-9999.csv"))
        b.action("List_blobs", "OpenApiConnection",
                 Body({"host": _run_host(BLOB_API, "shared_azureblob", "ListFolder_V4"),
                       "parameters": {"dataset": "AccountNameFromSettings", "id": "JTJmaW52b2ljZXM="}}),
                 Body({"statusCode": 200, "headers": {"Content-Type": "application/json", "x-ms-request-id": b.guid()},
                       "body": {"value": listing, "nextPageMarker": marker}}))
        manifest = {"container": "invoices", "count": len(listing),
                    "files": [{k: m[k] for k in ("Name", "FileLocator", "ETag", "Size")} for m in listing]}
        plants = []
        if rng.random() < 0.6:  # the archive partner's delivery key, generated once and pasted in
            secret = fakes.random_secret(rng)
            manifest["delivery"] = {"endpoint": "https://archive.partner-fake.example/v1/drop", "handoff": secret}
            plants = [P("random_secret", secret, secret)]
        b.action("Compose_manifest", "Compose", Body(manifest, *plants), Body(manifest, *plants))
        b.decoy(fakes.AZURITE_KEY)
        b.action("Compose_local_settings", "Compose", Body(s["settings"]), Body(s["settings"]))
        b.action("Run_a_Child_Flow", "Workflow",
                 Body({"host": {"workflowReferenceName": s["child"]}, "body": {"files": manifest["files"]}}),
                 Body({"statusCode": 200, "headers": {
                     "x-ms-workflow-run-id": f"0858{rng.randint(10**24, 10**25 - 1)}CU{rng.randint(1, 99)}",
                     "x-ms-workflow-name": s["child"], "x-ms-workflow-id": b.decoy(fakes.hex_id(rng)),
                     "x-ms-workflow-system-id": fakes.workflow_system_id(b.flow.workflow_hex),
                     "x-ms-workflow-version": f"08584{rng.randint(10**14, 10**15 - 1)}",
                     "x-ms-tracking-id": b.guid(), "x-ms-correlation-id": b.guid(),
                     "x-ms-client-tracking-id": b.header.client_tracking_id,
                     "x-ms-request-id": f"{b.guid()}:{rng.randint(1, 9)}"},
                     "body": {"archived": len(listing)}}))


class DataverseRows(Template):
    """Dataverse List rows (a paging cookie in `@odata.nextLink`, weak ETags, row versions, an entity
    image, lookup annotations), Update a row; a migration note holding a generated partner key (only
    entropy finds it) and a Compose of the AWS CLI docs' example profile (documentation examples:
    decoys)."""
    name = "dataverse_rows"
    connectors = ("shared_commondataserviceforapps",)
    display_names = ("Accounts to ERP", "Refresh partner accounts", "CRM nightly export")
    SELECT = "name,accountnumber,description,versionnumber"
    DEV_PROFILE = {"readme": ("Local development: run `aws configure` and enter\n[default]\n"
                              f"aws_access_key_id = {fakes.AWS_DOC_KEY_ID}\n"
                              f"aws_secret_access_key = {fakes.AWS_DOC_SECRET}\nregion = us-west-2\n"),
                   "sample": {"accessKeyId": fakes.AWS_DOC_KEY_ID, "secretAccessKey": fakes.AWS_DOC_SECRET}}

    def setup(self, rng, flow, tenant):
        return {"org": f"https://orgfake{fakes.pick(rng, '0123456789abcdef', 6)}.crm4.dynamics.com"}

    def definition(self, flow, tenant):
        dv = lambda op, params, prev: {"type": "OpenApiConnection", "inputs": {  # noqa: E731
            "host": _host(DATAVERSE_API, "shared_commondataserviceforapps", op), "parameters": params}, **after(prev)}
        return definition(RECURRENCE, {
            "List_rows": dv("ListRecords", {"entityName": "accounts", "$select": self.SELECT, "$top": 3}, None),
            "Update_a_row": dv("UpdateRecord", {"entityName": "accounts",
                                                "recordId": "@first(body('List_rows')?['value'])?['accountid']",
                                                "item/description": "Synced to ERP"}, "List_rows"),
            "Compose_dev_profile": {"type": "Compose", "inputs": self.DEV_PROFILE, **after("Update_a_row")}})

    def run(self, b):
        s, rng, t = b.flow.static, b.rng, b.tenant
        api = f"{s['org']}/api/data/v9.1"
        plants, rows = [], []
        for i in range(3):
            account, image_id = b.guid(), b.guid()
            note = "Key account; renewal in Q3."
            if i == 1 and rng.random() < 0.6:  # a generated partner key kept in the notes during a migration
                secret = fakes.random_secret(rng)
                note = f"Migrated from the legacy CRM. Partner API handoff {secret}, rotate after go-live."
                plants.append(P("random_secret", secret, note))
            rows.append({
                "@odata.etag": b.decoy(fakes.dataverse_etag(rng)), "accountid": account,
                "name": rng.choice(("Fabrikam", "Northwind Traders", "Litware", "Contoso Pharma")),
                "accountnumber": f"ACC-{rng.randint(10000, 99999)}", "description": note,
                # the old CRM's record key: short, random-looking, not a secret (a low-confidence
                # candidate: reported only with --min-confidence low)
                "new_legacyref": b.decoy(fakes.pick(rng, fakes.ALNUM, 24)),
                "versionnumber": rng.randint(1_000_000, 9_999_999_999), "modifiedon": b.iso(),
                "_ownerid_value": b.guid(),
                "_ownerid_value@OData.Community.Display.V1.FormattedValue": "Megan Bowen",
                "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
                "entityimage": b.decoy(fakes.png_thumbnail(rng)), "entityimageid": image_id,
                "entityimage_timestamp": rng.randint(10**17, 10**18),
                "entityimage_url": f"/Image/download.aspx?Entity=account&Attribute=entityimage&Id={image_id}",
                "ItemInternalId": account})
        cookie = fakes.dataverse_paging_cookie(rng, "account", rows[0]["accountid"], rows[-1]["accountid"])
        body = {"@odata.context": f"{api}/$metadata#accounts({self.SELECT})",
                "@Microsoft.Dynamics.CRM.totalrecordcount": -1,
                "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded": False,
                "@Microsoft.Dynamics.CRM.globalmetadataversion": str(rng.randint(10**7, 10**8)),
                "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": cookie,
                "@odata.nextLink": f"{api}/accounts?$select={self.SELECT}&$skiptoken={quote(cookie, safe='')}",
                "value": rows}
        headers = {"OData-Version": "4.0", "Preference-Applied": "odata.include-annotations=\"*\"",
                   "x-ms-service-request-id": b.guid(), "REQ_ID": b.guid(),
                   "x-ms-ratelimit-burst-remaining-xrm-requests": str(rng.randint(5000, 5999)),
                   "x-ms-ratelimit-time-remaining-xrm-requests": f"{rng.randint(1100, 1200)},00",
                   "X-Azure-Ref": b.decoy(fakes.azure_ref(rng)), "Content-Type": "application/json; odata.metadata=full"}
        b.trigger("Recurrence", "Recurrence")
        b.action("List_rows", "OpenApiConnection",
                 Body({"host": _run_host(DATAVERSE_API, "shared_commondataserviceforapps", "ListRecords"),
                       "parameters": {"entityName": "accounts", "$select": self.SELECT, "$top": 3}}),
                 Body({"statusCode": 200, "headers": headers, "body": body}, *plants))
        updated = rows[0]
        b.action("Update_a_row", "OpenApiConnection",
                 Body({"host": _run_host(DATAVERSE_API, "shared_commondataserviceforapps", "UpdateRecord"),
                       "parameters": {"entityName": "accounts", "recordId": updated["accountid"],
                                      "item/description": "Synced to ERP"}}),
                 Body({"statusCode": 200, "headers": {**headers, "ETag": fakes.dataverse_etag(rng)},
                       "body": {"@odata.context": f"{api}/$metadata#accounts/$entity",
                                "@odata.etag": b.decoy(fakes.dataverse_etag(rng)), "accountid": updated["accountid"],
                                "versionnumber": updated["versionnumber"] + 1, "description": "Synced to ERP"}}))
        b.decoy(fakes.AWS_DOC_KEY_ID)
        b.decoy(fakes.AWS_DOC_SECRET)
        b.action("Compose_dev_profile", "Compose", Body(self.DEV_PROFILE), Body(self.DEV_PROFILE))


TEMPLATES: tuple[Template, ...] = (
    OrdersApi(),
    TokenClient(),
    VaultSecret("vault_unsecured", (), ()),
    VaultSecret("vault_secured", ("inputs", "outputs"), ("inputs",)),
    SharePointSync(),
    LoopChildFlow(),
    VaultSecret("vault_outputs_visible", ("inputs",), ("inputs",)),
    LegacySoap(),
    SecureTrigger(),
    SafeStatus(),
    # run history full of identifiers (Graph, SharePoint, Blob, Dataverse): the precision test's bodies
    GraphFiles(),
    BlobArchive(),
    DataverseRows(),
)
