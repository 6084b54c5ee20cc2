"""Power Automate (Flow, `Microsoft.ProcessSimple`) management API: environments, flows, runs, actions.

Paths and shapes: ../shared/docs/power-automate-api.md §1.2-1.8. Paging follows `nextLink` exactly as
given until it is absent (never re-adding `$top`), and a nextLink must stay on the origin that served
the page: anything else is refused (token confinement) and reported as a `ForeignNextLink`
(scanner/net/paging.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable
from urllib.parse import quote, urlencode

from scanner.net import paging
from scanner.net.errors import FlowleaksHttpError
from scanner.net.http import HttpClient
from scanner.net.paging import PagingError
from scanner.redact import redact_url

API_VERSION = "2016-11-01"
PREFIX = "/providers/Microsoft.ProcessSimple"
Rehome = Callable[[str], None] | None  # told when a foreign nextLink was re-read from the API's own origin


class UnexpectedShape(FlowleaksHttpError):
    reason = "parse error"


def odata_time(dt: datetime) -> str:
    """An OData datetime literal, unquoted ISO-8601 in UTC with 7 fractional digits."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


_API_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)?")


def parse_api_time(value: str | None) -> str | None:
    """The API's timestamps as DuckDB-ready text (UTC, no 'Z'; up to 7 fractional digits kept).
    Anything that is not an ISO-8601 date-time (a hostile or broken response) gives None."""
    if not value or not isinstance(value, str):
        return None
    v = value.strip()
    try:
        if v.endswith("Z"):
            v = v[:-1]
        elif len(v) > 6 and v[-6] in "+-" and v[-3] == ":":
            base = v[:-6]
            if not _API_TIME.fullmatch(base):
                return None
            parsed = datetime.fromisoformat(base[:26] + v[-6:])  # at most 6 fractional digits
            return parsed.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
        if not _API_TIME.fullmatch(v):
            return None
        datetime.fromisoformat(v[:26])  # ranges: month 13 or hour 25 are not times
    except (ValueError, OverflowError):
        return None
    return v


def run_filter(since: datetime | None, until: datetime | None, status: str | None,
               after_raw: str | None = None) -> str | None:
    """Server-side `$filter`: status and a start-time window (CLIM365 syntax)."""
    parts = []
    if status:
        parts.append(f"status eq '{status}'")
    if after_raw:  # watermark: strictly after the newest run already scanned (7-digit precision)
        parts.append(f"startTime gt {after_raw}")
    elif since:
        parts.append(f"startTime ge {odata_time(since)}")
    if until:
        parts.append(f"startTime lt {odata_time(until)}")
    return " and ".join(parts) or None


@dataclass
class Environment:
    name: str
    display_name: str | None
    location: str | None
    is_default: bool
    flow_endpoint: str | None  # regional runtime endpoint, when the API publishes one


class FlowApi:
    def __init__(self, http: HttpClient, root: str, audience: str, *, as_admin: bool = False,
                 pinned_root: bool = False, max_pages: int | None = None):
        """root: the service root (https://api.flow.microsoft.com). pinned_root (FLOWLEAKS_FLOW_API_URL):
        every call goes to root, regional runtime endpoints included. max_pages: pages of one list
        followed at most (a server handing out a new nextLink for ever is stopped there)."""
        self.http = http
        self.max_pages = max_pages or paging.MAX_PAGES  # read at construction: tests may lower it
        self.root = root.rstrip("/")
        self.audience = audience
        self.as_admin = as_admin
        self.pinned_root = pinned_root
        self.roots: dict[str, str] = {}  # environment -> regional root
        http.allow_origin(audience, self.root)

    # -- URL building ------------------------------------------------------------------------

    def _env_root(self, env: str) -> str:
        return self.root if self.pinned_root else self.roots.get(env, self.root)

    def _env_path(self, env: str) -> str:
        scope = "/scopes/admin" if self.as_admin else ""
        return f"{self._env_root(env)}{PREFIX}{scope}/environments/{quote(env, safe='')}"

    def _flow_path(self, env: str, flow: str) -> str:
        return f"{self._env_path(env)}/flows/{quote(flow, safe='')}"

    def _run_path(self, env: str, flow: str, run: str) -> str:
        return f"{self._flow_path(env, flow)}/runs/{quote(run, safe='')}"

    @staticmethod
    def _url(base: str, **params: str | None) -> str:
        q = {"api-version": API_VERSION}
        q.update({k: v for k, v in params.items() if v is not None})
        return f"{base}?{urlencode(q, quote_via=quote, safe='/')}"

    # -- paging ------------------------------------------------------------------------------

    async def pages(self, url: str, kind: str, on_rehome: Rehome = None) -> AsyncIterator[list[dict]]:
        async for page in paging.pages(self.http, url, self.audience, kind, self.max_pages, on_rehome):
            if "value" in page and not isinstance(page["value"], list):
                raise PagingError(f"'value' is not a list at {redact_url(url)}")
            yield paging.dict_items(page)

    async def items(self, url: str, kind: str, on_rehome: Rehome = None) -> AsyncIterator[dict]:
        async for page in self.pages(url, kind, on_rehome):
            for item in page:
                yield item

    # -- operations --------------------------------------------------------------------------

    async def environments(self, on_rehome: Rehome = None) -> list[Environment]:
        url = self._url(f"{self.root}{PREFIX}/environments")
        envs = []
        async for item in self.items(url, "environments", on_rehome):
            props = item.get("properties") or {}
            endpoint = (props.get("runtimeEndpoints") or {}).get("microsoft.Flow")
            env = Environment(name=str(item.get("name")), display_name=props.get("displayName"),
                              location=item.get("location"), is_default=bool(props.get("isDefault")),
                              flow_endpoint=endpoint)
            if endpoint and not self.pinned_root and self._regional_ok(endpoint):
                self.roots[env.name] = endpoint.rstrip("/")
                self.http.allow_origin(self.audience, endpoint)
            envs.append(env)
        return envs

    def _regional_ok(self, endpoint: str) -> bool:
        """A regional root gets our token only if it is a subdomain of the service root's host."""
        from urllib.parse import urlsplit

        host, root_host = urlsplit(endpoint).hostname or "", urlsplit(self.root).hostname or ""
        return urlsplit(endpoint).scheme == "https" and host.endswith("." + root_host)

    def flows(self, env: str, on_rehome: Rehome = None) -> AsyncIterator[dict]:
        if self.as_admin:
            base = f"{self._env_root(env)}{PREFIX}/scopes/admin/environments/{quote(env, safe='')}/v2/flows"
        else:
            base = f"{self._env_path(env)}/flows"
        return self.items(self._url(base), "flows", on_rehome)

    async def _object(self, url: str, kind: str) -> dict:
        obj = await self.http.get_json(url, self.audience, kind)
        if not isinstance(obj, dict):
            raise UnexpectedShape(f"expected a JSON object at {redact_url(url)}, got {type(obj).__name__}")
        return obj

    async def get_flow(self, env: str, flow: str) -> dict:
        return await self._object(
            self._url(self._flow_path(env, flow), **{"$expand": "properties.definition"}), "flow")

    def runs(self, env: str, flow: str, filter_: str | None, top: int | None = None,
             on_rehome: Rehome = None) -> AsyncIterator[list[dict]]:
        url = self._url(f"{self._flow_path(env, flow)}/runs", **{
            "$filter": filter_, "$top": str(top) if top else None})
        return self.pages(url, "runs", on_rehome)

    async def get_run(self, env: str, flow: str, run: str) -> dict:
        return await self._object(
            self._url(self._run_path(env, flow, run), **{"$expand": "properties/actions"}), "run")

    async def actions(self, env: str, flow: str, run: str, on_rehome: Rehome = None) -> list[dict]:
        url = self._url(f"{self._run_path(env, flow, run)}/actions")
        return [a async for a in self.items(url, "actions", on_rehome)]

    async def repetitions(self, env: str, flow: str, run: str, action: str, on_rehome: Rehome = None) -> list[dict]:
        base = f"{self._run_path(env, flow, run)}/actions/{quote(action, safe='')}/repetitions"
        return [r async for r in self.items(self._url(base), "repetitions", on_rehome)]


def as_dict(value: Any) -> dict:
    """API objects are dicts in every documented shape; anything else is treated as empty, not a crash."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def content_links(obj: dict) -> dict[str, Any]:
    """{'inputs': link, 'outputs': link} of a trigger/action/repetition `properties` object."""
    if not isinstance(obj, dict):
        return {"inputs": None, "outputs": None}
    return {"inputs": obj.get("inputsLink"), "outputs": obj.get("outputsLink")}


def is_secured(link: Any) -> bool:
    """Secured when `secureData` is present or there is no `uri` (the designer's rule, §3)."""
    return not isinstance(link, dict) or bool(link.get("secureData")) or not link.get("uri")


def link_key(link: dict) -> str | None:
    """Identity of a content body for dedup: md5 contentHash + contentSize (never the URI)."""
    if not isinstance(link, dict):
        return None
    ch = link.get("contentHash")
    h = ch.get("value") if isinstance(ch, dict) else None
    size = link.get("contentSize")
    return f"{h}:{size}" if h and size is not None else None
