"""The Dataverse listener: the Web API's environment variable definitions, `$select`/`$expand` of the
current value and `@odata.nextLink` paging (`Prefer: odata.maxpagesize`), bearer token."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .listener import Reply, error_reply, json_reply
from .paging import read_skiptoken, skiptoken

_DATAVERSE_ROUTE = re.compile(r"^/api/data/v9\.[0-9]/(?P<set>environmentvariabledefinitions)/?$", re.I)
DATAVERSE_VALUES = "environmentvariabledefinition_environmentvariablevalue"


class DataverseRoutes:
    """FakeFlowApi's Dataverse listener (needs `tenant`, `dataverse_url`, `page_sizes`, `faults` and
    the plumbing of server.py)."""

    def _dataverse(self, method: str, target: str, headers: Any) -> Reply:
        self._sleep()
        url = urlsplit(target)
        reply = self._dataverse_route(method, url.path, url.query, headers)
        return self._finish("dataverse", "dataverse", method, url.path, reply)

    def _dataverse_route(self, method: str, path: str, query: str, headers: Any) -> Reply:
        if not self._authorized(headers):
            return json_reply(401, {"error": {"code": "0x80040220", "message": "Bearer token is missing or invalid."}},
                         {"WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/'
                                             f'{self.tenant.tenant_id}/oauth2/authorize"'})
        m = _DATAVERSE_ROUTE.match(path)
        if m is None or method != "GET":
            return error_reply(404, "0x80060888", f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")
        if self.faults.dataverse_denied:
            return error_reply(403, "0x80040220", "Principal user is missing prvReadEnvironmentVariableDefinition "
                                             "privilege on OTC=380 for entity 'environmentvariabledefinition'.")
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        select = [c.strip() for c in q.get("$select", "").split(",") if c.strip()]
        expand = q.get("$expand", "")
        em = re.fullmatch(rf"\s*{DATAVERSE_VALUES}(?:\(\$select=(?P<cols>[\w,]+)\))?\s*", expand) if expand else None
        if expand and em is None:
            return error_reply(400, "0x80060888", f"Could not find a property named '{expand}'.")
        size = self.page_sizes["dataverse"]
        prefer = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer") or "")
        if prefer:
            size = max(1, min(5000, int(prefer[1])))
        try:
            offset = read_skiptoken(q["$skiptoken"])[0] if "$skiptoken" in q else 0
        except (ValueError, KeyError, IndexError):
            return error_reply(400, "0x80040203", "The $skiptoken is not valid.")
        rows = []
        for ev in self.tenant.env_variables[offset:offset + size]:
            full = {"schemaname": ev.schemaname, "displayname": ev.displayname, "type": ev.type,
                    "defaultvalue": ev.defaultvalue, "secretstore": 0 if ev.type == 100000005 else None,
                    "environmentvariabledefinitionid": ev.definition_id}
            row = {"@odata.etag": f'W/"{1000 + offset}"', "environmentvariabledefinitionid": ev.definition_id}
            row.update({c: full.get(c) for c in select} if select else full)
            if em is not None:
                cols = [c for c in (em["cols"] or "value").split(",") if c]
                value_row = {"value": ev.value, "environmentvariablevalueid": ev.definition_id[::-1]}
                row[DATAVERSE_VALUES] = [] if ev.value is None else [
                    {"@odata.etag": 'W/"2000"', **{c: value_row.get(c) for c in cols}}]
            rows.append(row)
        body: dict[str, Any] = {"@odata.context": f"{self.dataverse_url}/api/data/v9.2/$metadata#environmentvariabledefinitions",
                                "value": rows}
        end = offset + size
        if end < len(self.tenant.env_variables):
            kept = "&".join(part for part in query.split("&") if part and not part.startswith("$skiptoken="))
            body["@odata.nextLink"] = (f"{self.dataverse_url}{path}?{kept}&$skiptoken="
                                       f"{quote(skiptoken(end, size), safe='')}")
        return json_reply(200, body)
