"""Content links (SAS URLs): fetched with no Authorization header at all, from allowed hosts only,
streamed with a size cap. Their query (the `sig`) never reaches a log or an error.

The request goes through the client's retries as an API request does, but with its own connection
slots (`content_slots`) and its own `content` pacer: a throttled API never holds up a download. Only
the slots, the pacer, the headers, the host rule and the body handling differ.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import httpx

from scanner.net.confinement import content_host_allowed
from scanner.net.errors import (ContentTooLarge, HostNotAllowed, LinkExpired, RedirectRefused, Throttled,
                                TransportFailed, UnusableUrl, error_from_body)
from scanner.net.stats import log_request
from scanner.redact import redact_url

if TYPE_CHECKING:
    from scanner.net.http import HttpClient

log = logging.getLogger("flowleaks.http")


async def fetch_content(http: HttpClient, uri: str) -> bytes:
    """GET a SAS content link: no Authorization header, allow-listed host, size-capped stream."""
    if not content_host_allowed(uri, http.config.content_host_suffixes):
        http.stats.refused += 1
        log.info("content link not fetched: %s is not an allowed content host (or not https)",
                 redact_url(uri))
        raise HostNotAllowed(uri)
    async for attempt in http.retrying("content"):
        with attempt:
            return await _fetch_content_once(http, uri, attempt.retry_state.attempt_number)
    raise AssertionError("unreachable")


async def _fetch_content_once(http: HttpClient, uri: str, attempt: int = 1) -> bytes:
    limit = http.config.max_content_bytes
    pacer = http.content_pacer
    if pacer.blocked_for():
        raise Throttled(uri, pacer.blocked_for())
    async with http.content_slots:
        await pacer.wait_turn()
        http.stats.requests += 1
        http.stats.content_requests += 1
        http.stats.count("content")
        started, outcome, size = time.monotonic(), "no answer", 0
        try:
            async with asyncio.timeout(http.config.request_timeout):
                # A fresh request object with only our default headers: no Authorization.
                async with http.client.stream("GET", uri) as resp:
                    status = outcome = resp.status_code
                    if status == 429 or status >= 500:
                        await resp.aread()
                        http.raise_if_retryable(resp, uri, pacer)
                    if 300 <= status < 400:
                        http.stats.refused += 1
                        log.info("HTTP %d redirect not followed from content link %s", status,
                                 redact_url(uri))
                        raise RedirectRefused(uri, status)
                    if status in (401, 403):
                        log.debug("content link refused by the server (HTTP %d, expired?): %s", status,
                                  redact_url(uri))
                        raise LinkExpired(uri)
                    if status == 204:
                        return b"{}"
                    if status >= 400:
                        await resp.aread()
                        raise error_from_body(status, resp.content, uri)
                    declared = resp.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise ContentTooLarge(uri, limit)
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > limit:  # Content-Length can lie; count what arrives
                            raise ContentTooLarge(uri, limit)
                        chunks.append(chunk)
        except httpx.InvalidURL:
            outcome = "invalid URL"
            raise UnusableUrl(uri) from None
        except (httpx.TransportError, TimeoutError) as exc:
            outcome = f"{outcome}, then {type(exc).__name__}" if isinstance(outcome, int) else type(exc).__name__
            raise TransportFailed(uri, exc, http.proxy_for(uri)) from None
        finally:
            log_request("content", uri, outcome, started, attempt, size)
    pacer.on_success()
    http.stats.bytes_downloaded += size
    return b"".join(chunks)
