"""One shared async HTTP client: its configuration, the requests with a bearer token, and retries.

Why it looks like this:
- One httpx.AsyncClient for the whole scan (connection reuse) with `follow_redirects=False`: a
  redirect would carry our request somewhere we did not choose.
- A bearer token goes only to an origin registered for its audience (`allow_origin`), and never over
  plain http unless the host is loopback (scanner/net/confinement.py). A nextLink to another origin
  is refused, not followed (scanner/net/paging.py).
- Content links (SAS URLs) are fetched with no Authorization header at all (scanner/net/content.py).
- Retries are tenacity's: 429/5xx/connection errors/timeouts, honouring Retry-After (seconds or an
  HTTP date), otherwise jittered exponential backoff, both capped. The policy is built once per kind
  of request; each request iterates its own copy.
- A shared `Pacer` per service (scanner/net/pacer.py): a 429 slows every worker, not just one.
- Connection slots per service too: `api_slots` for requests with a token, `content_slots` for
  content links, and a connection pool sized to hold both at once. A 429 storm on the API pauses
  API requests (each waits out the pause in its pacer holding an API slot) but never takes a slot
  or a connection from content downloads, so they go on while the API is paused.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception,
                      wait_random_exponential)

from scanner.net import content
from scanner.net.auth import TokenProvider
from scanner.net.config import HttpConfig
from scanner.net.confinement import check_transport_security, origin
from scanner.net.errors import (HostNotAllowed, RedirectRefused, RetryableStatus, Throttled, TransportFailed,
                                UnusableUrl, error_from_body)
from scanner.net.pacer import Pacer, parse_retry_after
from scanner.net.proxy import proxy_bypassed, proxy_mounts, ssl_context
from scanner.net.stats import HttpStats, log_request
from scanner.redact import redact_url

log = logging.getLogger("flowleaks.http")

USER_AGENT = "flowleaks/0.1 (+https://github.com/flowleaks/flowleaks)"
RETRYABLE = retry_if_exception(lambda e: isinstance(e, (RetryableStatus, TransportFailed)))


class HttpClient:
    def __init__(self, tokens: TokenProvider, config: HttpConfig,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.tokens = tokens
        self.config = config
        self.stats = HttpStats()
        self.origins: dict[str, set[str]] = {}  # audience -> origins allowed to receive its token
        self.api_pacer = Pacer(self.stats, "api")
        self.content_pacer = Pacer(self.stats, "content")
        self.api_slots = asyncio.Semaphore(config.concurrency)
        self.content_slots = asyncio.Semaphore(config.content_slots)
        # One pool for both services, big enough for both sets of slots to be busy at once: each
        # service is capped by its own slots, so neither can use up the other's connections (httpx
        # closes an idle connection to another host to make room when the pool is full).
        pool = config.concurrency + config.content_slots
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        timeout = httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                write=config.read_timeout, pool=None)
        # trust_env stays off (it would also proxy plain http and read .netrc credentials); the
        # proxy and CA bundle are passed explicitly instead (see HttpConfig).
        verify: Any = ssl_context(config.ca_bundle) if config.ca_bundle else True
        mounts = proxy_mounts(config, verify, limits) if transport is None else None
        if transport is None:  # scanner/net/transport.py: why not httpcore's pool
            from scanner.net.transport import Transport  # aiohttp costs ~80 ms to import: only when used

            transport = Transport(limits, verify)
        self.client = httpx.AsyncClient(follow_redirects=False, timeout=timeout, limits=limits,
                                        transport=transport, headers={"User-Agent": USER_AGENT},
                                        trust_env=False, verify=verify, mounts=mounts)
        self._mounted_proxy = bool(mounts)
        self.on_retry: Any = None  # called with one line (host, why, attempt) before a retry's wait
        self._backoff = wait_random_exponential(multiplier=0.5, max=config.max_backoff)
        self._policies: dict[str, AsyncRetrying] = {}  # kind -> the retry policy, built once

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def allow_origin(self, audience: str, url: str) -> None:
        check_transport_security(url)
        self.origins.setdefault(audience, set()).add(origin(url))

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to `url` goes through (as mounted in __init__), for error messages."""
        p = urlsplit(url)
        if self.config.proxy and p.scheme == "https" and self._mounted_proxy \
                and not proxy_bypassed(p.hostname or "", self.config.no_proxy):
            return self.config.proxy
        return None

    # -- retry policy ------------------------------------------------------------------------

    def retrying(self, kind: str) -> AsyncRetrying:
        """The retry loop for one request of `kind`. tenacity keeps a loop's state on its object, so
        each request iterates a copy of the policy (built once per kind), never a shared one."""
        policy = self._policies.get(kind)
        if policy is None:
            policy = self._policies[kind] = AsyncRetrying(
                retry=RETRYABLE, wait=self._wait, stop=self._stop,
                before_sleep=functools.partial(self._before_sleep, kind), reraise=True)
        return policy.copy()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ra = getattr(exc, "retry_after", None)
        if ra is not None:
            return ra + random.uniform(0, 0.25 * max(ra, 0.2))
        return self._backoff(state)

    def _attempts_for(self, exc: BaseException | None) -> int:
        if isinstance(exc, TransportFailed) and exc.no_connection:
            return min(self.config.max_connect_attempts, self.config.max_attempts)
        return self.config.max_attempts

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return state.attempt_number >= self._attempts_for(exc)

    def _before_sleep(self, kind: str, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        # the exception's text carries the URL already redacted (scheme://host/path)
        log.info("%s: attempt %d of %d failed (%s); retrying in %.1fs", kind, state.attempt_number,
                 self._attempts_for(exc), exc or "?", delay)
        if self.on_retry is not None:
            what = (f"cannot reach {exc.host}: {exc.why}" if isinstance(exc, TransportFailed)
                    else str(exc))
            self.on_retry(f"retrying {kind}: {what}; attempt {state.attempt_number + 1} of "
                          f"{self._attempts_for(exc)} in {delay:.1f}s")

    # -- API calls (bearer token) --------------------------------------------------------------

    async def get_json(self, url: str, audience: str, kind: str = "api") -> Any:
        """GET a JSON document from an API with the token for `audience`. Retries transient errors."""
        if origin(url) not in self.origins.get(audience, ()):
            self.stats.refused += 1
            log.info("%s: not sending a token to %s: not an origin registered for it", kind, redact_url(url))
            raise HostNotAllowed(url, "refusing to send a token to an origin it was not issued for")
        check_transport_security(url)
        async for attempt in self.retrying(kind):
            with attempt:
                return await self._get_json_once(url, audience, kind, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable")

    async def _get_json_once(self, url: str, audience: str, kind: str, attempt: int = 1) -> Any:
        token = await self.tokens.token(audience)
        if self.api_pacer.blocked_for():
            raise Throttled(url, self.api_pacer.blocked_for())
        async with self.api_slots:
            # Paced after taking a connection slot: a pace slot taken first could expire while the
            # request waits for a connection, and late requests bunch into bursts the service rejects.
            # Waiting out a 429 pause here holds an API slot, which only keeps other API requests
            # (paused as well) waiting; content has its own slots. A retry's own sleep (tenacity's
            # wait, in get_json's loop) comes after this returns or raises, with the slot released.
            await self.api_pacer.wait_turn()
            self.stats.requests += 1
            self.stats.api_requests += 1
            self.stats.count(kind)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.config.request_timeout):
                    resp = await self.client.get(url, headers={"Authorization": f"Bearer {token}",
                                                               "Accept": "application/json"})
            except httpx.InvalidURL:  # e.g. a nextLink with control characters: not worth a retry
                log_request(kind, url, "invalid URL", started, attempt)
                raise UnusableUrl(url) from None
            except (httpx.TransportError, TimeoutError) as exc:
                log_request(kind, url, type(exc).__name__, started, attempt)
                raise TransportFailed(url, exc, self.proxy_for(url)) from None
        log_request(kind, url, resp.status_code, started, attempt, len(resp.content))
        return self._json_or_raise(resp, url, self.api_pacer)

    def raise_if_retryable(self, resp: httpx.Response, url: str, pacer: Pacer) -> None:
        """A 429 (retried after its Retry-After, or given up as throttled: Pacer.on_429) or a 5xx."""
        status = resp.status_code
        if status == 429:
            self.stats.throttled += 1
            ra = parse_retry_after(resp.headers.get("Retry-After"))
            if not pacer.on_429(ra, self.config.max_retry_after):
                raise Throttled(url, ra)
            raise RetryableStatus(429, url, ra)
        if status >= 500:
            raise RetryableStatus(status, url, parse_retry_after(resp.headers.get("Retry-After")))

    def _json_or_raise(self, resp: httpx.Response, url: str, pacer: Pacer) -> Any:
        self.raise_if_retryable(resp, url, pacer)
        status = resp.status_code
        if 300 <= status < 400:
            self.stats.refused += 1
            log.info("HTTP %d redirect not followed from %s", status, redact_url(url))
            raise RedirectRefused(url, status)
        if status >= 400:
            raise error_from_body(status, resp.content, url)
        pacer.on_success()
        ctype = resp.headers.get("Content-Type", "")
        try:
            return resp.json()
        except ValueError:
            what = f"response at {redact_url(url)} is not JSON (Content-Type {ctype or 'missing'})"
            raise RetryableStatus(200, url, what=what) from None

    # -- content links (no token) --------------------------------------------------------------

    async def fetch_content(self, uri: str) -> bytes:
        """GET a SAS content link: no Authorization header, allow-listed host, size-capped stream
        (scanner/net/content.py)."""
        return await content.fetch_content(self, uri)
