"""The Key Vault listener: the data plane's secrets list, versions and values (API 7.x, bearer token)."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .listener import Reply, error_reply, json_reply
from .paging import read_skiptoken, skiptoken

_VAULT_ROUTE = re.compile(r"^/secrets(?:/(?P<name>[0-9A-Za-z-]+)(?:/(?P<version>[0-9A-Za-z]+))?)?/?$")


class VaultRoutes:
    """FakeFlowApi's Key Vault listener (needs `tenant`, `vault_url`, `page_sizes` and the plumbing of
    server.py)."""

    def _vault(self, method: str, target: str, headers: Any) -> Reply:
        self._sleep()
        url = urlsplit(target)
        reply = self._vault_route(method, url.path, url.query, headers)
        return self._finish("vault", "vault", method, url.path, reply)

    def _vault_route(self, method: str, path: str, query: str, headers: Any) -> Reply:
        if not self._authorized(headers):
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{self.tenant.tenant_id}", '
                         'resource="https://vault.azure.net"')
            return json_reply(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                         {"WWW-Authenticate": challenge})
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        if not q.get("api-version", "").startswith("7."):
            return error_reply(400, "BadParameter", f"The specified version ({q.get('api-version')}) is not recognized.")
        m = _VAULT_ROUTE.match(path)
        if m is None or method != "GET":
            return error_reply(404, "NotFound", "No such operation.")
        vault = self.tenant.vault
        if m["name"] is None:
            items = [{"id": f"{self.vault_url}/secrets/{e.name}", "contentType": "text/plain",
                      "attributes": self._attributes(e.enabled, e.versions[-1])} for e in vault.values()]
            return self._vault_page(items, "/secrets", q)
        entry = vault.get(m["name"])
        if entry is None:
            return error_reply(404, "SecretNotFound", f"A secret with (name/id) {m['name']} was not found in this key vault.")
        if m["version"] == "versions":
            items = [{"id": f"{self.vault_url}/secrets/{entry.name}/{v.version}", "contentType": "text/plain",
                      "attributes": self._attributes(entry.enabled, v)} for v in entry.versions]
            return self._vault_page(items, f"/secrets/{entry.name}/versions", q)
        version = (entry.versions[-1] if m["version"] is None
                   else next((v for v in entry.versions if v.version == m["version"]), None))
        if version is None:
            return error_reply(404, "SecretNotFound", f"A secret with (name/id) {m['name']}/{m['version']} was not found.")
        if not entry.enabled:
            return error_reply(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                          innererror={"code": "SecretDisabled"})
        return json_reply(200, {"value": version.value, "id": f"{self.vault_url}/secrets/{entry.name}/{version.version}",
                           "contentType": "text/plain", "attributes": self._attributes(True, version)})

    @staticmethod
    def _attributes(enabled: bool, version: Any) -> dict:
        return {"enabled": enabled, "created": version.created, "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}

    def _vault_page(self, items: list, path: str, q: dict[str, str]) -> Reply:
        size = self.page_sizes["vault"]
        if "maxresults" in q:
            if not q["maxresults"].isdigit() or not 1 <= int(q["maxresults"]) <= 25:
                return error_reply(400, "BadParameter", "maxresults must be between 1 and 25.")
            size = int(q["maxresults"])
        try:
            offset = read_skiptoken(q["$skiptoken"])[0] if "$skiptoken" in q else 0
        except (ValueError, KeyError, IndexError):
            return error_reply(400, "BadParameter", "The $skiptoken is not valid.")
        end = offset + size
        body: dict[str, Any] = {"value": items[offset:end], "nextLink": None}
        if end < len(items):
            body["nextLink"] = (f"{self.vault_url}{path}?api-version=7.4&$skiptoken={skiptoken(end, size)}"
                                f"&maxresults={size}")
        return json_reply(200, body)
