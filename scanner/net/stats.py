"""What the HTTP client counts (the scan summary's request figures) and logs of each request.

The log line names the URL redacted (scheme://host/path): never the query, so never a sig or a
skiptoken.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from scanner.redact import redact_url

log = logging.getLogger("flowleaks.http")


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


def log_request(kind: str, url: str, outcome: int | str, started: float, attempt: int,
                size: int | None = None) -> None:
    """One DEBUG line per request (-vv): never the query, so never a sig or a skiptoken."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s GET %s -> %s in %.0f ms, attempt %d%s", kind, redact_url(url), outcome,
                  (time.monotonic() - started) * 1000, attempt, f", {size} bytes" if size else "")
