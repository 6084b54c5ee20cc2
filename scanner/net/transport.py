"""The connection layer under httpx: aiohttp's connector, with httpx-aiohttp's response stream.

Why: httpcore's connection pool checks every pooled connection on every request (a `poll` per idle
connection), so its CPU cost grows with the pool; with the 32 connections a crawl keeps (API and
content slots) it was most of the client's CPU. benchmarks/client.py measured 0.66-0.68 ms of CPU
per request with httpx's own transport and 0.36-0.39 ms with this one (median of 3 x 2,000 requests,
no detection); in the whole crawl profile, httpcore's pool bookkeeping was over half the CPU.
httpx stays the API the client is written against (requests, streaming, timeouts,
`follow_redirects=False`); only the wire below it changes.

What is kept, and where:
- the URL is sent byte for byte as httpx built it (`yarl.URL(..., encoded=True)`): aiohttp would
  otherwise re-quote it, turning a SAS link's `se=...%3A...` and `sp=%2F...` into other bytes than
  the link the API gave;
- redirects: httpx follows none (the client), and aiohttp is asked for none;
- the timeouts: httpx's connect and per-read timeouts become aiohttp's `sock_connect`/`sock_read`;
- body caps: the body is streamed in chunks, counted by scanner/net/content.py;
- no cookies kept between requests, no proxy or .netrc read from the environment (`trust_env`);
  a proxy (HTTPS_PROXY) keeps httpx's own transports, mounted by scanner/net/proxy.py;
- errors become httpx's (httpx-aiohttp's table), with two corrections (`_as_httpx`): a connection
  that could not be made at all is `httpx.ConnectError` (the short retry budget), not the
  `ConnectTimeout` the table gives; and what the table leaves out (a malformed answer: a bad status
  line or header, `ClientResponseError`) is `httpx.RemoteProtocolError`, retried and then recorded
  as a skip like any transport failure, never an unexpected error that stops the scan. Only the
  aiohttp type's name goes into the message (aiohttp's texts can quote the URL).
"""
from __future__ import annotations

import ssl
from contextlib import contextmanager
from typing import Any, AsyncIterator, Iterator

import aiohttp
import httpx
import yarl
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

KEEPALIVE_S = 30.0


@contextmanager
def _as_httpx(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors as httpx's: the table, corrected (see the module's docstring)."""
    try:
        with map_aiohttp_exceptions():
            yield
    except httpx.TransportError as exc:
        if isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(exc, httpx.ConnectError):
            raise httpx.ConnectError(type(exc.__cause__).__name__, request=request) from exc.__cause__
        raise
    except aiohttp.ClientError as exc:
        raise httpx.RemoteProtocolError(type(exc).__name__, request=request) from exc


class _Body(AiohttpResponseStream):
    """The response body in chunks, its read errors mapped as the request's are."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request):
        super().__init__(response)
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx(self._request):
            async for chunk in super().__aiter__():
                yield chunk


class Transport(httpx.AsyncBaseTransport):
    """One aiohttp session (built on first use, inside the event loop) under one httpx client."""

    def __init__(self, limits: httpx.Limits, verify: Any = True):
        self.tls = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        self.size = limits.max_connections or 100
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.size, limit_per_host=0, keepalive_timeout=KEEPALIVE_S,
                                             ssl=self.tls)
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                 trust_env=False, auto_decompress=False)
            # aiohttp re-sends a GET once, unseen, when a kept-alive connection drops: every retry is
            # to go through the client's own policy (counted, paced, logged), so that one is off.
            # A private switch (aiohttp 3.9-3.14): tests/net/test_http.py goes red if it stops working.
            self.session._retry_connection = False
        return self.session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        with _as_httpx(request):
            response = await self._session().request(
                request.method, yarl.URL(str(request.url), encoded=True), headers=request.headers,
                data=request.content or None, allow_redirects=False, compress=False,
                timeout=aiohttp.ClientTimeout(sock_connect=timeout.get("connect"),
                                              sock_read=timeout.get("read"), connect=timeout.get("pool")),
            ).__aenter__()
        return httpx.Response(status_code=response.status, headers=response.raw_headers,
                              stream=_Body(response, request), request=request,
                              extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
