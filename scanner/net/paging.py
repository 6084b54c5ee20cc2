"""Following `nextLink`s safely: the one paging loop for the Flow API, Key Vault and Dataverse.

A nextLink is followed exactly as given (never re-adding `$top`), only on the origin that served the
page (the token must not travel anywhere else), never twice, and for a bounded number of pages.

A nextLink on another origin whose path continues the same listing (same resource path; only the
query, e.g. `$skiptoken`, differs) is re-homed: the same path and query are requested from the origin
that served the page, so the token stays home and no page is lost. The caller is told (`on_rehome`),
so the event is on record. A foreign nextLink to any other path is refused.
"""
from __future__ import annotations

import logging
from typing import AsyncIterator, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

from scanner.net.confinement import origin
from scanner.net.errors import FlowleaksHttpError, UrlError
from scanner.net.http import HttpClient
from scanner.redact import redact_url

log = logging.getLogger("flowleaks.paging")

MAX_PAGES = 100_000  # a sanity bound; loops are caught earlier by the seen-link check
NEXT_LINK_KEYS = ("nextLink", "@odata.nextLink")


class PagingError(FlowleaksHttpError):
    reason = "paging error"


class ForeignNextLink(PagingError, UrlError):
    reason = "nextLink refused"
    template = "nextLink points to another origin and another path, not followed: {url}"


class NextLinkLoop(PagingError, UrlError):
    reason = "nextLink loop"
    template = "nextLink repeats (endless paging stopped): {url}"


class TooManyPages(PagingError, UrlError):
    reason = "nextLink loop"
    template = "paging stopped after {0} pages (a nextLink without end?): {url}"  # (link, pages)


def rehome(link: str, home: str) -> str | None:
    """`link` moved onto `home`'s origin when its path continues `home`'s listing, else None."""
    lp, hp = urlsplit(link), urlsplit(home)
    if lp.path.rstrip("/").lower() != hp.path.rstrip("/").lower():
        return None
    return urlunsplit((hp.scheme, hp.netloc, hp.path, lp.query, ""))


async def pages(http: HttpClient, url: str, audience: str, kind: str,
                max_pages: int = MAX_PAGES, on_rehome: Callable[[str], None] | None = None) -> AsyncIterator[dict]:
    """Each page (a JSON object) of a list, first to last. Raises a PagingError subclass on a page that
    is not an object, a nextLink to another origin and path, a repeated nextLink, or more than
    `max_pages`. `on_rehome(message)` hears of each foreign nextLink that was re-homed."""
    seen: set[str] = {url}
    first = url
    for _ in range(max_pages):
        page = await http.get_json(url, audience, kind)
        if not isinstance(page, dict):
            raise PagingError(f"expected a JSON object page at {redact_url(url)}")
        yield page
        link = next((page[k] for k in NEXT_LINK_KEYS if page.get(k)), None)
        if not link:
            return
        try:
            link = urljoin(url, str(link))  # absolute in practice; tolerate a relative one
            foreign = origin(link) != origin(url)
        except ValueError:  # 'http://[::1', a port over 65535: nothing we would follow
            raise PagingError(f"unparseable nextLink at {redact_url(url)}") from None
        if foreign:
            home = rehome(link, first)
            if home is None:
                http.stats.refused += 1
                raise ForeignNextLink(link)
            note = f"nextLink pointed to {origin(link)}; the same page was read from {origin(url)}"
            log.warning("%s (%s listing)", note, kind)
            if on_rehome is not None:
                on_rehome(note)
            link = home
        if link in seen:
            raise NextLinkLoop(link)
        seen.add(link)
        url = link
    raise TooManyPages(url, max_pages)


async def pages_or_error(http: HttpClient, url: str, audience: str, kind: str, max_pages: int,
                         errors: list[str]) -> AsyncIterator[dict]:
    """`pages`, for a list read as far as it goes (Key Vault, Dataverse): a paging problem is recorded
    in `errors` ("reason: message") and ends the list; an HTTP error still propagates."""
    try:
        async for page in pages(http, url, audience, kind, max_pages):
            yield page
    except PagingError as exc:
        errors.append(f"{exc.reason}: {exc}")


async def items_or_error(http: HttpClient, url: str, audience: str, kind: str, max_pages: int,
                         errors: list[str]) -> AsyncIterator[dict]:
    """The object items of `pages_or_error`'s pages."""
    async for page in pages_or_error(http, url, audience, kind, max_pages, errors):
        for item in dict_items(page):
            yield item


def dict_items(page: dict) -> list[dict]:
    """The page's `value` items that are objects (anything else in a list is ignored)."""
    items = page.get("value")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
