"""Paging as the services do it: an opaque `$skiptoken` (offset and page size), `$top`, and the
absolute `nextLink` of the Flow API (which the foreign-next-link fault may point elsewhere)."""
from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

from .listener import Reply, json_reply

MAX_TOP = 250


def skiptoken(offset: int, size: int) -> str:
    raw = json.dumps({"nextRowKey": f"1!{offset}", "pageSize": size}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def read_skiptoken(token: str) -> tuple[int, int]:
    data = json.loads(base64.urlsafe_b64decode(token.encode()))
    return int(data["nextRowKey"].split("!", 1)[1]), int(data["pageSize"])


class BadRequest(Exception):
    """Raised while paging; turned into a 400 by the API listener."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Paging:
    """FakeFlowApi's Flow API pages (needs `page_sizes`, `api_url`, `foreign_url`, `faults`, `_roll`)."""

    @staticmethod
    def _list(items: list, next_link: str | None) -> Reply:
        return json_reply(200, {"value": items, **({"nextLink": next_link} if next_link else {})})

    def _page(self, items: list, path: str, q: dict[str, str], kind: str) -> tuple[list, str | None]:
        """One page of items and the absolute nextLink (None on the last page). The page size rides
        in the opaque $skiptoken; other query parameters ($filter, ...) are carried over as given."""
        size = self.page_sizes[kind]
        offset = 0
        if "$top" in q:
            top = q["$top"]
            if not top.isdigit() or int(top) < 1:
                raise BadRequest("InvalidTopInQueryString",
                                  f"The value for top of '{top}' is not an integer; the value must be an "
                                  "integer value greater than zero.")
            size = min(int(top), MAX_TOP)
        if "$skiptoken" in q:
            try:
                offset, token_size = read_skiptoken(q["$skiptoken"])
            except (ValueError, KeyError, IndexError):
                raise BadRequest("InvalidSkipToken", "The $skiptoken is not valid.") from None
            size = size if "$top" in q else token_size
        end = offset + size
        if end >= len(items):
            return items[offset:], None
        carried = {k: v for k, v in q.items() if k not in ("$top", "$skiptoken")}
        query = urlencode({**carried, "$skiptoken": skiptoken(end, size)}, quote_via=quote)
        base = self.api_url
        if self.faults.foreign_next_link_rate and self._roll("foreign", path, offset) < self.faults.foreign_next_link_rate:
            base = self.foreign_url
            if self.faults.foreign_next_link_path:
                path = path.rsplit("/", 1)[0] + "/elsewhere"
        return items[offset:end], f"{base}{path}?{query}"
