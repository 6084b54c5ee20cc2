"""How the one HTTP client behaves: concurrency, timeouts, retries, caps, the content hosts and the
corporate network (proxy, CA bundle). Filled from flags and FLOWLEAKS_* variables (scanner/settings.py).

API requests and content downloads have separate connection slots (`concurrency` and
`content_concurrency`): a service that is throttling us must not hold the other one's slots."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HttpConfig:
    concurrency: int = 16               # API requests in flight at most
    content_concurrency: int | None = None  # content downloads in flight at most; None: twice `concurrency`
    connect_timeout: float = 10.0
    read_timeout: float = 60.0          # per read; a trickling server can't hold us longer
    request_timeout: float = 300.0      # whole request including the body
    max_attempts: int = 8
    max_backoff: float = 30.0
    max_retry_after: float = 120.0      # a Retry-After beyond this gives up on the request
    max_content_bytes: int = 64 * 1024 * 1024
    content_host_suffixes: tuple[str, ...] = ()
    max_connect_attempts: int = 3       # no connection at all (DNS, refused): give up sooner than on 5xx
    # Corporate networks (scanner/net/proxy.py). Only https is ever proxied: a proxy then sees a
    # CONNECT host:port and never a header; plain http (loopback only) never goes through a proxy.
    proxy: str | None = None            # HTTPS_PROXY
    no_proxy: str = ""                  # NO_PROXY
    ca_bundle: str | None = None        # --ca-bundle / SSL_CERT_FILE: replaces the default CA set

    @property
    def content_slots(self) -> int:
        """Content downloads in flight at most (`content_concurrency`, or twice `concurrency` when unset:
        a run has about four content links per API read, and the blob host behind the links takes far
        more concurrent requests than the management API; 16 slots held the crawl at ~590 downloads/s
        at 20 ms latency, benchmarks/crawl.py)."""
        return self.content_concurrency or 2 * self.concurrency
