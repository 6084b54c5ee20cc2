"""Flow templates: a Logic Apps definition plus the run content it produces.

Flows cycle through TEMPLATES, so any tenant with at least ten flows holds every case: HTTP with
secrets in headers and in the query string, Compose and Initialize variable holding secrets, Key Vault
Get secret with and without Secure Inputs/Outputs and an HTTP action consuming it, a SharePoint
connector, a Foreach with an inner action, a child flow, a Response, an XML (`$content`) body, a
webhook trigger, a secured trigger and a flow with nothing to find.

Each template's `runtimeConfiguration.secureData` in the definition is exactly what its runs hide.
`risks` lists the posture issues a definition linter should raise for the template:
  keyvault-get-secret-unsecured-outputs  Get secret without Secure Outputs: the value is in history
  secret-consumer-unsecured-inputs       an action using a Key Vault value without Secure Inputs
  hardcoded-secret                       a literal credential written into the definition
"""
from __future__ import annotations

import base64
import hashlib
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
)
