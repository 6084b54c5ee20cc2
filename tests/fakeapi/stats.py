"""The fake's counters: requests by kind and status, faults served, content bytes."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters; read the attributes directly or take a JSON-ready snapshot()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.by_kind: Counter[str] = Counter()      # environments, flows, flow, runs, run, actions, ...
        self.by_status: Counter[int] = Counter()
        self.throttled = 0                          # 429s sent
        self.server_errors = 0                      # 5xx sent
        self.drops = 0
        self.malformed = 0
        self.expired_links = 0                      # 403s for an expired link
        self.content_bytes = 0                      # bytes of good content bodies served
        self.content_fetches: Counter[str] = Counter()  # link path -> good bodies served

    def record(self, kind: str, status: int | None) -> None:
        with self._lock:
            self.requests += 1
            self.by_kind[kind] += 1
            if status is None:
                self.drops += 1
                return
            self.by_status[status] += 1
            if status == 429:
                self.throttled += 1
            elif status >= 500:
                self.server_errors += 1

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def content_served(self, path: str, size: int) -> None:
        with self._lock:
            self.content_fetches[path] += 1
            self.content_bytes += size

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "by_kind": dict(self.by_kind),
                    "by_status": {str(k): v for k, v in self.by_status.items()}, "throttled": self.throttled,
                    "server_errors": self.server_errors, "drops": self.drops, "malformed": self.malformed,
                    "expired_links": self.expired_links, "content_bytes": self.content_bytes,
                    "content_links_fetched": len(self.content_fetches),
                    "content_fetches_total": sum(self.content_fetches.values())}
