"""Flows that handle credentials over HTTP: an order webhook, a token client, a legacy SOAP call, a
secured trigger, and a status flow with nothing to find but placeholders."""
from __future__ import annotations

import base64
from urllib.parse import quote

from .. import fakes
from ..model import TICKS_PER_SECOND, Body, P
from .base import RECURRENCE, Template, after, definition, secure_config


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
