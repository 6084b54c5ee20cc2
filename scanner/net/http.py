"""One shared async HTTP client: retries, throttling, token confinement, content-link fetching.

Why it looks like this:
- One httpx.AsyncClient for the whole scan (connection reuse) with `follow_redirects=False`: a
  redirect would carry our request somewhere we did not choose.
- A bearer token goes only to an origin registered for its audience (`allow_origin`), and never over
  plain http unless the host is loopback. A nextLink to another origin is refused, not followed.
- Content links (SAS URLs) are fetched with no Authorization header at all, only from allowed host
  suffixes, streamed with a size cap. Their query (the `sig`) never reaches a log or an error.
- Retries are tenacity's: 429/5xx/connection errors/timeouts, honouring Retry-After (seconds or an
  HTTP date), otherwise jittered exponential backoff, both capped.
- A shared `Pacer` per service: a 429 pauses every worker until Retry-After and cuts the request
  rate (AIMD), so one throttled worker slows all of them instead of sixteen workers hammering on.
"""
from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception,
                      wait_random_exponential)

from scanner.net.auth import TokenProvider
from scanner.redact import redact_text, redact_url

log = logging.getLogger("flowleaks.http")

USER_AGENT = "flowleaks/0.1 (+https://github.com/flowleaks/flowleaks)"
BLOCK_AFTER_STRIKES = 3  # Retry-Afters over the cap in a row before a service is failed fast
CUT = 0.8          # a 429 window sets the rate to this share of what the service accepted
RAISE_PER_S = 1.0  # then the rate grows back by this many req/s per second of traffic
MIN_RATE = 4.0  # req/s: the AIMD floor, so one unlucky 429 on a small sweep doesn't crawl at 1 req/s


# -- errors ------------------------------------------------------------------------------------

class FlowleaksHttpError(Exception):
    """Base of our HTTP errors. Messages carry a redacted URL (scheme://host/path), never a query."""

    reason = "HTTP error"  # the `skipped.reason` this error becomes


class ApiError(FlowleaksHttpError):
    def __init__(self, status: int, code: str, message: str, url: str):
        # the server's text may echo our URL (its sig) or a secret it was sent: redacted before kept
        message, code = redact_text(message), redact_text(code)
        self.status, self.code, self.url = status, code, redact_url(url)
        self.api_message = message
        super().__init__(f"{status} {code}: {message} ({self.url})")


class TokenRejected(FlowleaksHttpError):
    """A 401/403 on the environment listing: every later request would fail the same way, so the
    scan ends at once with the likely fix instead of an 'HTTP error' count in the summary."""

    reason = "token rejected"

    def __init__(self, err: ApiError, audience: str, as_admin: bool):
        host = urlsplit(err.url).netloc
        if err.status == 401:
            fix = (f"the token must be for the Flow API (audience {audience.rstrip('/')}) and unexpired; "
                   "get a new one, or check --cloud")
        elif as_admin:
            fix = ("--as-admin needs a Power Platform admin; for an app, register it as a Power Platform "
                   "management app (pac admin application register --application-id <client-id>), or use --as-maker")
        else:
            fix = "the identity has no Power Automate access here; check its licence and environment roles"
        self.status = err.status
        super().__init__(f"token rejected by {host}: {err.status} {err.code}: {err.api_message.rstrip('. ')}; likely fix: {fix}")


class Throttled(FlowleaksHttpError):
    reason = "throttled"

    def __init__(self, url: str, retry_after: float | None):
        self.url, self.retry_after = redact_url(url), retry_after
        super().__init__(f"throttled (Retry-After {retry_after:.0f}s is over the cap) at {self.url}"
                         if retry_after else f"throttled at {self.url}")


class RetryableStatus(FlowleaksHttpError):
    """A 429/5xx answer, or a 200 with a body that is not JSON; tried again by tenacity."""

    def __init__(self, status: int, url: str, retry_after: float | None = None, what: str = ""):
        self.status, self.url, self.retry_after = status, redact_url(url), retry_after
        self.reason = "parse error" if status == 200 else ("throttled" if status == 429 else "HTTP error")
        super().__init__(what or f"HTTP {status} at {self.url}")


class LinkExpired(FlowleaksHttpError):
    reason = "expired"

    def __init__(self, url: str):
        super().__init__(f"content link expired or refused (403) at {redact_url(url)}")


class ContentTooLarge(FlowleaksHttpError):
    reason = "too large"

    def __init__(self, url: str, limit: int):
        super().__init__(f"content over {limit} bytes at {redact_url(url)}")


class HostNotAllowed(FlowleaksHttpError):
    reason = "host not allowed"

    def __init__(self, url: str, why: str = "host not on the allow-list"):
        super().__init__(f"{why}: {redact_url(url)}")


class RedirectRefused(FlowleaksHttpError):
    reason = "redirect not followed"

    def __init__(self, url: str, status: int):
        super().__init__(f"HTTP {status} redirect not followed from {redact_url(url)}")


class UnusableUrl(FlowleaksHttpError):
    reason = "bad url"

    def __init__(self, url: str):
        super().__init__(f"URL the HTTP client cannot send (control characters, too long): {redact_url(url)}")


class TransportFailed(FlowleaksHttpError):
    reason = "connection error"

    def __init__(self, url: str, exc: BaseException, proxy: str | None = None):
        self.host = urlsplit(str(url)).netloc.rpartition("@")[2]
        if proxy:  # host:port only: a proxy URL may carry user:password
            self.host += f" through the proxy {urlsplit(proxy).netloc.rpartition('@')[2]}"
        # No connection at all (DNS, refused, TLS): retried on a small budget of its own, because
        # waiting longer rarely brings a host back; timeouts and 5xx keep the full budget.
        self.no_connection = isinstance(exc, (httpx.ConnectError, httpx.ProxyError))
        self.why = unreachable_reason(exc)
        super().__init__(f"cannot reach {self.host}: {self.why} ({redact_url(url)})")


def unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in words, from the exception chain's types (httpx, requests and
    urllib3 wrap the OS error several levels deep). Fixed phrases only: never the library's text."""
    import socket
    import ssl

    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
                 if isinstance(x, BaseException)]
    names = {type(e).__name__ for e in seen}
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in seen) or "SSLError" in names:
        return ("TLS certificate verification failed (a proxy inspecting TLS? give its CA with --ca-bundle "
                "or SSL_CERT_FILE)")
    if "ProxyError" in names:
        return "the proxy (HTTPS_PROXY) refused or could not open the connection"
    if any(isinstance(e, socket.gaierror) for e in seen) or "NameResolutionError" in names:
        return "DNS lookup failed (unknown host name, or no network)"
    if any(isinstance(e, ConnectionRefusedError) for e in seen):
        return "connection refused (nothing listening at that address and port)"
    if any(isinstance(e, (TimeoutError, httpx.TimeoutException)) for e in seen) or \
            {"ConnectTimeout", "ReadTimeout", "Timeout"} & names:
        return "timed out"
    if any(isinstance(e, ConnectionResetError) for e in seen) or "RemoteProtocolError" in names:
        return "the connection was closed before an answer"
    return type(exc).__name__


def proxy_bypassed(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl and requests read it: '*', or comma-separated host suffixes."""
    host = (host or "").lower().strip("[]")
    for raw in (e.strip().lower() for e in (no_proxy or "").split(",")):
        entry = raw.lstrip("*").lstrip(".")
        if raw == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


FRIENDLY = {
    "EnvironmentAccessDenied": "no access to environment",
    "InvalidAuthenticationToken": "the access token was rejected (expired or wrong audience)",
    "AuthorizationFailed": "the identity is not authorised",
    "ConnectionAuthorizationFailed": "no permission for a connection used by the flow",
    "FlowNotFound": "flow not found",
    "WorkflowRunNotFound": "run not found (aged out of the 30-day history?)",
}


# -- small helpers -----------------------------------------------------------------------------

# `redact_url` lives in redact.py; it is imported above and stays importable from here.


def origin(url: str) -> str:
    p = urlsplit(str(url))
    port = p.port or (443 if p.scheme == "https" else 80)
    return f"{p.scheme}://{(p.hostname or '').lower()}:{port}"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport_security(url: str) -> None:
    """Tokens go over https only; plain http is for loopback fakes (DESIGN: Configuration)."""
    p = urlsplit(url)
    if p.scheme == "https" or (p.scheme == "http" and is_loopback(p.hostname)):
        return
    raise HostNotAllowed(url, "refusing a non-https URL outside loopback")


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_body(status: int, body: bytes, url: str) -> ApiError:
    code, message = f"HTTP{status}", ""
    try:
        err = json.loads(body).get("error") or {}
        code = err.get("code") or code
        message = err.get("message") or ""
    except (ValueError, AttributeError):
        message = ""
    # The Flow API wraps Logic Apps errors: surface the inner code when there is one.
    if code == "AzureResourceManagerRequestFailed" and "WorkflowRunNotFound" in message:
        code = "WorkflowRunNotFound"
    friendly = FRIENDLY.get(code)
    text = f"{friendly}: {message}" if friendly and message else (friendly or message or "no details")
    # redacted before it is cut: a cut could leave a secret's tail that no pattern recognises
    return ApiError(status, code, redact_text(text)[:500], url)


def _log_request(kind: str, url: str, outcome: int | str, started: float, attempt: int,
                 size: int | None = None) -> None:
    """One DEBUG line per request (-vv): never the query, so never a sig or a skiptoken."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s GET %s -> %s in %.0f ms, attempt %d%s", kind, redact_url(url), outcome,
                  (time.monotonic() - started) * 1000, attempt, f", {size} bytes" if size else "")


# -- statistics --------------------------------------------------------------------------------

@dataclass
class HttpStats:
    requests: int = 0
    api_requests: int = 0
    content_requests: int = 0
    throttled: int = 0          # 429 answers received
    retries: int = 0
    throttle_wait_s: float = 0.0
    bytes_downloaded: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    refused: int = 0            # nextLinks / redirects / hosts refused by confinement

    def count(self, kind: str) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


# -- pacing (shared limiter) ---------------------------------------------------------------------

class Pacer:
    """Shared rate control for one service: a pause on 429 for everyone, and AIMD pacing.

    Starts unpaced. A 429 sets the rate to 80% of what the service actually accepted over the last
    two seconds (successes, not attempts: attempts overshoot most when we are furthest over the
    limit); each success adds a little back (about +1 req/s per second of traffic), and each new
    429 window cuts again. This settles just under the server's limit without knowing it
    (benchmarks/crawl.py measures how close, and how many 429s it costs).
    """

    WINDOW = 2.0  # seconds of successes that estimate the accepted rate

    def __init__(self, stats: HttpStats, name: str = "api"):
        self.stats = stats
        self.name = name  # which service, for the log lines
        self.rate: float | None = None
        self.pause_until = 0.0
        self.blocked_until = 0.0
        self.strikes = 0  # Retry-Afters over the cap in a row
        self.next_slot = 0.0
        self.ok: deque[float] = deque()  # times of recent successes
        self.first_ok = 0.0
        self.last_cut = 0.0
        self.lock = asyncio.Lock()

    async def wait_turn(self) -> None:
        async with self.lock:
            now = time.monotonic()
            slot = max(now, self.pause_until, self.next_slot)
            if self.rate:
                self.next_slot = slot + 1.0 / self.rate
        delay = slot - time.monotonic()
        if delay > 0:
            self.stats.throttle_wait_s += delay
            await asyncio.sleep(delay)

    def on_success(self) -> None:
        self.strikes = 0
        now = time.monotonic()
        self.ok.append(now)
        self.first_ok = self.first_ok or now
        while self.ok and self.ok[0] < now - self.WINDOW:
            self.ok.popleft()
        if self.rate:
            self.rate += RAISE_PER_S / self.rate

    def on_throttle(self, retry_after: float | None) -> None:
        now = time.monotonic()
        if retry_after:
            self.pause_until = max(self.pause_until, now + retry_after)
        if now - self.last_cut < 1.0:  # the 429s of one burst cut once, not once per in-flight request
            return
        self.last_cut = now
        # over the last WINDOW seconds, or since the first success if the scan is younger than that
        span = max(0.5, min(self.WINDOW, now - self.first_ok)) if self.first_ok else self.WINDOW
        accepted = sum(1 for t in self.ok if t >= now - self.WINDOW) / span
        before = self.rate
        self.rate = max(MIN_RATE, min(self.rate or accepted, accepted) * CUT)
        log.info("%s throttled (429): rate %s -> %.1f req/s, every %s request paused %.1fs",
                 self.name, f"{before:.1f} req/s" if before else "unpaced", self.rate, self.name,
                 max(0.0, self.pause_until - now))

    def block(self, seconds: float) -> None:
        """The service asked us to stay away longer than we will wait: every later request to it
        fails fast as throttled (recorded, the scan incomplete) instead of queueing for hours."""
        if not self.blocked_for():
            log.info("%s keeps asking for a Retry-After over the cap (%.0fs): its requests fail fast "
                     "as throttled for that long", self.name, seconds)
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)

    def blocked_for(self) -> float:
        return max(0.0, self.blocked_until - time.monotonic())


# -- the client --------------------------------------------------------------------------------

def ssl_context(ca_bundle: str):
    """A CA bundle (PEM file, or a folder of hashed certificates) as the only trusted roots."""
    import os
    import ssl

    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)


def proxy_mounts(config: "HttpConfig", verify: Any, limits: httpx.Limits) -> dict | None:
    """https:// through HTTPS_PROXY, except NO_PROXY hosts; http:// never proxied (it carries a token
    in clear to loopback only, and a proxy must never see one)."""
    if not config.proxy:
        return None
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        "https://": httpx.AsyncHTTPTransport(proxy=config.proxy, verify=verify, limits=limits)}
    for entry in (e.strip().lower() for e in config.no_proxy.split(",")):
        if entry == "*":
            return None
        entry = entry.lstrip("*").lstrip(".")
        if entry:
            for pattern in (f"https://{entry}", f"https://*.{entry}"):
                mounts[pattern] = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    return mounts

@dataclass
class HttpConfig:
    concurrency: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 60.0          # per read; a trickling server can't hold us longer
    request_timeout: float = 300.0      # whole request including the body
    max_attempts: int = 8
    max_backoff: float = 30.0
    max_retry_after: float = 120.0      # a Retry-After beyond this gives up on the request
    max_content_bytes: int = 64 * 1024 * 1024
    content_host_suffixes: tuple[str, ...] = ()
    max_connect_attempts: int = 3       # no connection at all (DNS, refused): give up sooner than on 5xx
    # Corporate networks. Only https is ever proxied: a proxy then sees a CONNECT host:port and
    # never a header; plain http (loopback only) never goes through a proxy.
    proxy: str | None = None            # HTTPS_PROXY
    no_proxy: str = ""                  # NO_PROXY
    ca_bundle: str | None = None        # --ca-bundle / SSL_CERT_FILE: replaces the default CA set


class HttpClient:
    def __init__(self, tokens: TokenProvider, config: HttpConfig,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.tokens = tokens
        self.config = config
        self.stats = HttpStats()
        self.origins: dict[str, set[str]] = {}  # audience -> origins allowed to receive its token
        self.api_pacer = Pacer(self.stats, "api")
        self.content_pacer = Pacer(self.stats, "content")
        self.slots = asyncio.Semaphore(config.concurrency)
        limits = httpx.Limits(max_connections=config.concurrency,
                              max_keepalive_connections=config.concurrency)
        timeout = httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                write=config.read_timeout, pool=None)
        # trust_env stays off (it would also proxy plain http and read .netrc credentials); the
        # proxy and CA bundle are passed explicitly instead (see HttpConfig).
        verify: Any = ssl_context(config.ca_bundle) if config.ca_bundle else True
        mounts = proxy_mounts(config, verify, limits) if transport is None else None
        self.client = httpx.AsyncClient(follow_redirects=False, timeout=timeout, limits=limits,
                                        transport=transport, headers={"User-Agent": USER_AGENT},
                                        trust_env=False, verify=verify, mounts=mounts)
        self._mounted_proxy = bool(mounts)
        self.on_retry: Any = None  # called with one line (host, why, attempt) before a retry's wait

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

    def content_host_allowed(self, url: str) -> bool:
        p = urlsplit(url)
        host = (p.hostname or "").lower()
        if p.scheme != "https" and not (p.scheme == "http" and is_loopback(host)):
            return False
        for suffix in self.config.content_host_suffixes:
            s = suffix.strip().lower()
            if s and (host == s.lstrip(".") or host.endswith("." + s.lstrip("."))):
                return True
        return False

    # -- retry policy ------------------------------------------------------------------------

    def _retrying(self, kind: str) -> AsyncRetrying:
        backoff = wait_random_exponential(multiplier=0.5, max=self.config.max_backoff)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            ra = getattr(exc, "retry_after", None)
            if ra is not None:
                return ra + random.uniform(0, 0.25 * max(ra, 0.2))
            return backoff(state)

        def attempts_for(exc: BaseException | None) -> int:
            if isinstance(exc, TransportFailed) and exc.no_connection:
                return min(self.config.max_connect_attempts, self.config.max_attempts)
            return self.config.max_attempts

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return state.attempt_number >= attempts_for(exc)

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            # the exception's text carries the URL already redacted (scheme://host/path)
            log.info("%s: attempt %d of %d failed (%s); retrying in %.1fs", kind, state.attempt_number,
                     attempts_for(exc), exc or "?", delay)
            if self.on_retry is not None:
                what = (f"cannot reach {exc.host}: {exc.why}" if isinstance(exc, TransportFailed)
                        else str(exc))
                self.on_retry(f"retrying {kind}: {what}; attempt {state.attempt_number + 1} of "
                              f"{attempts_for(exc)} in {delay:.1f}s")

        return AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, (RetryableStatus, TransportFailed))),
            wait=wait, stop=stop, before_sleep=before_sleep, reraise=True)

    # -- API calls (bearer token) --------------------------------------------------------------

    async def get_json(self, url: str, audience: str, kind: str = "api") -> Any:
        """GET a JSON document from an API with the token for `audience`. Retries transient errors."""
        if origin(url) not in self.origins.get(audience, ()):
            self.stats.refused += 1
            log.info("%s: not sending a token to %s: not an origin registered for it", kind, redact_url(url))
            raise HostNotAllowed(url, "refusing to send a token to an origin it was not issued for")
        check_transport_security(url)
        async for attempt in self._retrying(kind):
            with attempt:
                return await self._get_json_once(url, audience, kind, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable")

    async def _get_json_once(self, url: str, audience: str, kind: str, attempt: int = 1) -> Any:
        token = await self.tokens.token(audience)
        if self.api_pacer.blocked_for():
            raise Throttled(url, self.api_pacer.blocked_for())
        async with self.slots:
            # Paced after taking a connection slot: a pace slot taken first could expire while the
            # request waits for a connection, and late requests bunch into bursts the service rejects.
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
                _log_request(kind, url, "invalid URL", started, attempt)
                raise UnusableUrl(url) from None
            except (httpx.TransportError, TimeoutError) as exc:
                _log_request(kind, url, type(exc).__name__, started, attempt)
                raise TransportFailed(url, exc, self.proxy_for(url)) from None
        _log_request(kind, url, resp.status_code, started, attempt, len(resp.content))
        return self._json_or_raise(resp, url, self.api_pacer)

    def _json_or_raise(self, resp: httpx.Response, url: str, pacer: Pacer) -> Any:
        status = resp.status_code
        if status == 429:
            self.stats.throttled += 1
            ra = parse_retry_after(resp.headers.get("Retry-After"))
            if ra is not None and ra > self.config.max_retry_after:
                # Not waited out. The shared pause is capped; a service that keeps saying "come back
                # tomorrow" is then failed fast (recorded as throttled, the scan incomplete, a rerun
                # resumes) instead of every remaining request paying the cap in turn.
                pacer.on_throttle(self.config.max_retry_after)
                pacer.strikes += 1
                if pacer.strikes >= BLOCK_AFTER_STRIKES:
                    pacer.block(ra)
                raise Throttled(url, ra)
            pacer.on_throttle(ra if ra is not None else 1.0)
            raise RetryableStatus(429, url, ra)
        if status >= 500:
            raise RetryableStatus(status, url, parse_retry_after(resp.headers.get("Retry-After")))
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
        """GET a SAS content link: no Authorization header, allow-listed host, size-capped stream."""
        if not self.content_host_allowed(uri):
            self.stats.refused += 1
            log.info("content link not fetched: %s is not an allowed content host (or not https)",
                     redact_url(uri))
            raise HostNotAllowed(uri)
        async for attempt in self._retrying("content"):
            with attempt:
                return await self._fetch_content_once(uri, attempt.retry_state.attempt_number)
        raise AssertionError("unreachable")

    async def _fetch_content_once(self, uri: str, attempt: int = 1) -> bytes:
        limit = self.config.max_content_bytes
        if self.content_pacer.blocked_for():
            raise Throttled(uri, self.content_pacer.blocked_for())
        async with self.slots:
            await self.content_pacer.wait_turn()
            self.stats.requests += 1
            self.stats.content_requests += 1
            self.stats.count("content")
            started, outcome, size = time.monotonic(), "no answer", 0
            try:
                async with asyncio.timeout(self.config.request_timeout):
                    # A fresh request object with only our default headers: no Authorization.
                    async with self.client.stream("GET", uri) as resp:
                        status = outcome = resp.status_code
                        if status == 429 or status >= 500:
                            await resp.aread()
                            self._json_or_raise(resp, uri, self.content_pacer)
                        if 300 <= status < 400:
                            self.stats.refused += 1
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
                raise TransportFailed(uri, exc, self.proxy_for(uri)) from None
            finally:
                _log_request("content", uri, outcome, started, attempt, size)
        self.content_pacer.on_success()
        self.stats.bytes_downloaded += size
        return b"".join(chunks)
