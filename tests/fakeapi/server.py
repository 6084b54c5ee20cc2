"""Loopback fake of the Flow management API, its run-content (SAS link) host, a Key Vault and a
Dataverse org.

Four real HTTP listeners (ThreadingHTTPServer, HTTP/1.1 keep-alive):

- API      `http://127.0.0.1:<p>/providers/Microsoft.ProcessSimple/...`  bearer token + api-version
- content  `http://localhost:<p>/workflows/<hex>/runs/.../contents/<Kind>?...&sig=`  no auth, SAS-checked
- vault    `http://127.0.0.1:<p>/secrets...`  Key Vault data plane 7.x, bearer token
- dataverse `http://127.0.0.1:<p>/api/data/v9.2/environmentvariabledefinitions...`  Web API, bearer token,
  `$select`/`$expand` of the current value, `@odata.nextLink` paging (`Prefer: odata.maxpagesize`)

Shapes follow shared/docs/power-automate-api.md (§1.2-1.8, §2, §3, §4.3, §6.3, §8). One module per
listener (flow_api.py, content.py, vault.py, dataverse.py), each a part of `FakeFlowApi`; the faults
(faults.py: deterministic and transient), the paging (paging.py) and the HTTP plumbing (listener.py)
are shared. This module holds the class itself: its state, its lifecycle and the checks every listener
makes.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .content import ContentLinks
from .dataverse import DataverseRoutes
from .faults import FaultInjection, Faults, TokenBucket
from .flow_api import FlowRoutes
from .listener import DROP, Listener, Reply, error_reply
from .model import TICKS_PER_SECOND, to_ticks
from .paging import Paging
from .stats import Stats
from .tenant import Tenant
from .vault import VaultRoutes


class FakeFlowApi(FlowRoutes, ContentLinks, VaultRoutes, DataverseRoutes, Paging, FaultInjection):
    """The four listeners over one Tenant. Use as a context manager, or start()/stop().

    Attributes: api_url (the Flow service root, for FLOWLEAKS_FLOW_API_URL), content_url and
    content_host ("localhost", for FLOWLEAKS_CONTENT_HOSTS), vault_url, dataverse_url, token, tenant, faults,
    stats (Stats), content_auth_headers_seen (every Authorization header the content host got: must
    stay empty), requests_log ((listener, method, path, status) tuples when log_requests=True).
    """

    def __init__(self, tenant: Tenant, token: str = "test-token", faults: Faults | None = None, *,
                 runs_page_size: int = 50, flows_page_size: int = 50, actions_page_size: int = 30,
                 repetitions_page_size: int = 30, vault_page_size: int = 25, dataverse_page_size: int = 2,
                 link_lifetime_s: float = 4 * 3600, log_requests: bool = False,
                 ports: tuple[int, int, int] = (0, 0, 0), dataverse_port: int = 0):
        self.tenant, self.token, self.faults = tenant, token, faults or Faults()
        self.page_sizes = {"runs": runs_page_size, "flows": flows_page_size, "actions": actions_page_size,
                           "repetitions": repetitions_page_size, "vault": vault_page_size,
                           "dataverse": dataverse_page_size}
        self.link_lifetime_ticks = int(link_lifetime_s * TICKS_PER_SECOND)
        self.stats = Stats()
        # Runs that start after this instant (ticks) are not listed yet: moving it forward makes "new
        # runs arrive" for incremental-scan tests and benchmarks. None: every run is listed.
        self.visible_until: int | None = None
        self.log_requests = log_requests
        self.requests_log: list[tuple[str, str, str, int | None]] = []
        self.content_auth_headers_seen: list[str] = []
        self._sig_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._attempts: dict[bytes, int] = {}     # digest of (listener, method, URL) -> attempts so far
        self._revoked: dict[str, int] = {}        # link path -> newest `se` expired by expire_links_once
        self._last_se = 0
        self._api_requests = 0
        self._burst_left = 0
        f = self.faults
        self._api_bucket = TokenBucket(f.rate_limit_rps, f.burst) if f.rate_limit_rps else None
        self._content_bucket = TokenBucket(f.content_rate_limit_rps, f.burst) if f.content_rate_limit_rps else None
        self._denied = {e.lower() for e in f.denied_environments}

        # Runs that started before this instant (ticks) have aged out: not listed, 404 when read.
        self.retained_from: int | None = None
        self.foreign_requests: list[tuple[str, bool]] = []  # (path, had an Authorization header)
        self._run_reads: dict[str, int] = {}
        self._servers = [Listener(("127.0.0.1", ports[0]), self._api),
                         Listener(("127.0.0.1", ports[1]), self._content),
                         Listener(("127.0.0.1", ports[2]), self._vault),
                         Listener(("127.0.0.1", dataverse_port), self._dataverse),
                         Listener(("127.0.0.1", 0), self._foreign)]
        self.api_url = f"http://127.0.0.1:{self._servers[0].server_port}"
        self.content_host = "localhost"
        self.content_url = f"http://localhost:{self._servers[1].server_port}"
        self.vault_url = f"http://127.0.0.1:{self._servers[2].server_port}"
        self.dataverse_url = f"http://127.0.0.1:{self._servers[3].server_port}"   # the org URL (audience)
        self.foreign_url = f"http://127.0.0.1:{self._servers[4].server_port}"     # another origin: a hijacker
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeFlowApi:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> FakeFlowApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env_vars(self) -> dict[str, str]:
        return {"FLOWLEAKS_FLOW_API_URL": self.api_url, "FLOWLEAKS_ACCESS_TOKEN": self.token,
                "FLOWLEAKS_CONTENT_HOSTS": self.content_host}

    # --- shared request plumbing -----------------------------------------------------------------------

    def _authorized(self, headers: Any) -> bool:
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token)

    def _finish(self, listener: str, kind: str, method: str, path: str, reply: Reply | object) -> Reply | object:
        status = None if reply is DROP else reply.status
        self.stats.record(kind, status)
        if self.log_requests:
            with self._lock:
                self.requests_log.append((listener, method, path, status))
        return reply

    def _foreign(self, method: str, target: str, headers: Any) -> Reply:
        """Another origin a hostile nextLink points at: it only records who came (and with what)."""
        with self._lock:
            self.foreign_requests.append((urlsplit(target).path, bool(headers.get("Authorization"))))
        return error_reply(404, "NotFound", "nothing here")

    def age_out_runs_before(self, when: datetime | None) -> None:
        """Runs that started before `when` are gone, as retention drops them (None: keep all)."""
        self.retained_from = None if when is None else to_ticks(when)

    def _sleep(self) -> None:
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
