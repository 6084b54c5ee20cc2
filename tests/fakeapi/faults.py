"""What can go wrong, and how often: `Faults`, and the fake's fault injection.

Faults are deterministic (their own seed, rolled per URL and attempt) and transient: a request for the
same URL fails at most `max_consecutive_failures` times in a row, and a malformed body is only ever
served on the first attempt. Only `denied_environments` and `always_expired_links` are permanent.
Rate limits are token buckets (`TokenBucket`) answered with 429 and a Retry-After.
"""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Collection

from .listener import DROP, Reply, error_reply, json_reply


@dataclass
class Faults:
    """What can go wrong, and how often. Rates are fractions in [0, 1]."""
    seed: int = 0
    latency_ms: float = 0                 # added to every request on all three listeners
    rate_limit_rps: float | None = None   # token bucket across the API listener; over it -> 429
    burst: int = 10                       # bucket capacity
    content_rate_limit_rps: float | None = None  # same, for the content listener
    error_rate: float = 0.0               # API and content requests answered 500/502/503
    drop_rate: float = 0.0                # API and content requests closed without an answer
    malformed_rate: float = 0.0           # first attempt of an API/content URL gets a truncated 200 body
    burst_429_every: int = 0              # every Nth API request starts a run of 429s ...
    burst_429_length: int = 3             # ... this long
    http_date_retry_after: bool = False   # Retry-After as an HTTP date instead of seconds
    expire_links_once: bool = False       # first fetch of each content link: 403 expired; re-read links work
    expand_missing_links: float = 0.0     # non-loop actions without links in $expand (present in /actions)
    max_consecutive_failures: int = 3     # errors/drops per URL never exceed this many in a row
    denied_environments: Collection[str] = ()                 # permanent 403 EnvironmentAccessDenied
    always_expired_links: bool | Collection[str] = False      # True, or run names: links always expired
    dataverse_denied: bool = False        # permanent 403 on the Dataverse listener (missing privilege)
    foreign_next_link_rate: float = 0.0   # nextLinks pointing at another origin (the `foreign` listener) ...
    foreign_next_link_path: bool = False  # ... and, with this, at another path too (not a continuation)
    skipped_action_rate: float = 0.0      # non-loop actions that did not run: status Skipped, no links
    drop_links_rate: float = 0.0          # non-loop actions that ran, with no links in $expand or /actions
    links_vanish_on_reread: bool = False  # a run read a second time shows its actions without links


class TokenBucket:
    def __init__(self, rate: float, capacity: int):
        self.rate, self.capacity = rate, max(1, capacity)
        self.tokens, self.stamp = float(self.capacity), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one will be available."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class FaultInjection:
    """FakeFlowApi's fault rolls and replies (needs `faults`, `stats`, `_lock`, `_attempts`,
    `_api_requests`, `_burst_left`)."""

    def _roll(self, *parts: Any) -> float:
        digest = hashlib.blake2b(repr((self.faults.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _attempt(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=12).digest()
        with self._lock:
            n = self._attempts.get(digest, 0)
            self._attempts[digest] = n + 1
        return n

    def _throttle(self, bucket: TokenBucket | None, bursting: bool) -> Reply | None:
        wait = bucket.take() if bucket else 0.0
        if not wait and not bursting:
            return None
        seconds = max(1, math.ceil(wait))
        retry_after = (formatdate(time.time() + seconds + 1, usegmt=True) if self.faults.http_date_retry_after
                       else str(seconds))
        return json_reply(429, {"error": {"code": "TooManyRequests",
                                     "message": f"Rate limit is exceeded. Try again in {seconds} seconds."}},
                     {"Retry-After": retry_after})

    def _bursting(self) -> bool:
        """burst_429_every: every Nth API request starts a run of burst_429_length 429s."""
        every = self.faults.burst_429_every
        if not every:
            return False
        with self._lock:
            self._api_requests += 1
            if self._api_requests % every == 0:
                self._burst_left = self.faults.burst_429_length
            if self._burst_left:
                self._burst_left -= 1
                return True
        return False

    def _transient_fault(self, key: str) -> tuple[Reply | object | None, int]:
        """Drop or 5xx for this URL's attempt, deterministically; returns (fault or None, attempt)."""
        f = self.faults
        if not (f.error_rate or f.drop_rate or f.malformed_rate):
            return None, 0
        attempt = self._attempt(key)
        if attempt < f.max_consecutive_failures:
            if f.drop_rate and self._roll("drop", key, attempt) < f.drop_rate:
                return DROP, attempt
            if f.error_rate and (r := self._roll("error", key, attempt)) < f.error_rate:
                status = (500, 502, 503)[int(r / f.error_rate * 3) % 3]
                return error_reply(status, "ServiceUnavailable" if status == 503 else "InternalServerError",
                              "The server had an error while processing the request."), attempt
        return None, attempt

    def _malform(self, reply: Reply, key: str, attempt: int) -> Reply:
        """Truncate a good JSON 200 on the first attempt of a URL (a retry gets the whole body)."""
        f = self.faults
        if not (reply.json_ok and attempt == 0 and f.malformed_rate
                and self._roll("malformed", key) < f.malformed_rate):
            return reply
        cut = reply.body[: len(reply.body) // 2]
        try:
            json.loads(cut)
            cut = b"{" + cut   # still parseable (e.g. a short scalar): make sure it is not
        except ValueError:
            pass
        self.stats.add(malformed=1)
        return reply._replace(body=cut, json_ok=False)
