"""Dataverse environment variables, read live: every definition and its current value, as typed records.

`GET {org}/api/data/v9.2/environmentvariabledefinitions?$select=…&$expand=
environmentvariabledefinition_environmentvariablevalue($select=value)`, paged by `@odata.nextLink` on
the org's own origin only (shared/docs/power-automate-api.md §6.3; the token audience is the org URL,
§4.1). This module reads and nothing more; the PA007 check of what it returns is the caller's
(scanner/pipeline/sweep.py). A String variable can hold a password, so every default and current value
is a secret: the records returned carry them only for the caller to hand to PA007 (which keeps a
preview and a keyed fingerprint and nothing else, DESIGN invariant 4) and drop at once; their repr
leaves the values out. Nothing here logs a value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scanner.net import paging
from scanner.net.confinement import check_transport_security
from scanner.net.http import HttpClient
from scanner.redact import redact_url

API_PATH = "/api/data/v9.2"
VALUES = "environmentvariabledefinition_environmentvariablevalue"
QUERY = ("/environmentvariabledefinitions?$select=schemaname,displayname,type,defaultvalue,secretstore"
         f"&$expand={VALUES}($select=value)")
MAX_PAGES = 1_000  # 5,000 rows a page by default; a server handing out new nextLinks for ever stops here


@dataclass(frozen=True)
class DataverseTarget:
    """One Dataverse org to read, and the environment name its findings are recorded under."""

    environment: str
    url: str  # the org URL without the /api/data path, e.g. https://org.crm.dynamics.com

    @property
    def audience(self) -> str:
        """The token audience: the org URL itself (scope `<url>/.default`)."""
        p = urlsplit(self.url)
        return f"{p.scheme}://{p.netloc}"


def parse_target(value: str) -> DataverseTarget:
    """`ENV=URL` or `URL` (then the environment is recorded as the URL's host name). A trailing
    `/api/data/...` path, a query and a fragment are dropped; https only, except on loopback."""
    v = value.strip()
    env: str | None = None
    head, sep, tail = v.partition("=")
    if sep and "://" not in head:
        env, v = head.strip(), tail.strip()
    try:
        p = urlsplit(v)
        host = p.hostname
        p.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"not a URL: {v!r}") from None
    if p.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {redact_url(v)}")
    if "@" in p.netloc:
        raise ValueError("credentials in a Dataverse URL are not accepted")
    path = p.path
    cut = path.lower().find("/api/data")
    if cut >= 0:
        path = path[:cut]
    url = f"{p.scheme}://{p.netloc}{path.rstrip('/')}"
    check_transport_security(url)
    if env is not None and not env:
        raise ValueError(f"empty environment name before '=' in {value!r}")
    return DataverseTarget(environment=env or host.lower(), url=url)


@dataclass(frozen=True)
class EnvVariable:
    """One environment variable definition row, with the org's current value if it has one."""

    schemaname: str
    displayname: str = ""
    type: str = ""  # the option value as text, e.g. '100000000' (String)
    defaultvalue: str | None = field(default=None, repr=False)  # a secret, maybe
    secretstore: str | None = None
    value: str | None = field(default=None, repr=False)  # the current value: a secret, maybe


@dataclass
class EnvVarRead:
    """What reading one org produced: the rows, counts, and problems (no value in the repr)."""

    target: DataverseTarget
    variables: list[EnvVariable] = field(default_factory=list, repr=False)
    pages: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


async def _rows(http: HttpClient, target: DataverseTarget, result: EnvVarRead, max_pages: int):
    """Rows of the definitions query; a paging problem is recorded in `result.errors` and ends it."""
    async for page in paging.pages_or_error(http, f"{target.url}{API_PATH}{QUERY}", target.audience, "dataverse",
                                            max_pages, result.errors):
        result.pages += 1
        for item in paging.dict_items(page):
            yield item


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def row_path(schemaname: str, column: str = "") -> str:
    """Where a definition's column sits in the Web API answer: `defaultvalue`, `type`, or `value` (the
    current value, in the expanded values)."""
    row = f"$.value[?(@.schemaname=='{schemaname}')]"
    if column == "value":
        return f"{row}.{VALUES}[0].value"
    return f"{row}.{column}" if column else row


async def read_environment_variables(http: HttpClient, target: DataverseTarget, *,
                                     max_pages: int = MAX_PAGES) -> EnvVarRead:
    """Read every environment variable definition (+ current value) of one org.

    Raises FlowleaksHttpError when the first page cannot be read (no access, no such org); later
    problems (a refused nextLink, a page that is not a list) land in `errors` and the rows read so
    far are still returned."""
    http.allow_origin(target.audience, target.url)
    result = EnvVarRead(target)
    try:
        async for row in _rows(http, target, result, max_pages):
            schema = _text(row.get("schemaname"))
            if not schema:
                continue
            kind = row.get("type")
            current = row.get(VALUES)
            if isinstance(current, list):
                current = next((c for c in current if isinstance(c, dict) and isinstance(c.get("value"), str)),
                               None)
            value = current["value"] if isinstance(current, dict) and isinstance(current.get("value"), str) else None
            result.variables.append(EnvVariable(
                schemaname=schema, displayname=_text(row.get("displayname")) or "",
                type=str(kind) if isinstance(kind, (int, str)) and not isinstance(kind, bool) else "",
                defaultvalue=_text(row.get("defaultvalue")), secretstore=_text(row.get("secretstore")),
                value=value))
    except BaseException:
        result.variables.clear()  # the values read so far go at once: nobody will analyse them
        raise
    return result
