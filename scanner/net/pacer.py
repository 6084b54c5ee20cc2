"""Throttling: one shared `Pacer` per service, and Retry-After.

A 429 pauses every worker until Retry-After and cuts the request rate (AIMD), so one throttled worker
slows all of them instead of sixteen workers hammering on. A Retry-After over the cap is not waited
out: the request is given up as throttled, and a service that keeps asking for one is failed fast.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections import deque

from scanner.net.stats import HttpStats

log = logging.getLogger("flowleaks.http")

BLOCK_AFTER_STRIKES = 3  # Retry-Afters over the cap in a row before a service is failed fast
CUT = 0.9          # a 429 window sets the rate to this share of what the service accepted
RAISE_PER_S = 1.0  # then the rate grows back by this many req/s per second of traffic
MIN_RATE = 4.0  # req/s: the AIMD floor, so one unlucky 429 on a small sweep doesn't crawl at 1 req/s


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


class Pacer:
    """Shared rate control for one service: a pause on 429 for everyone, and AIMD pacing.

    Starts unpaced. A 429 sets the rate to 90% of what the service actually accepted over the last
    two seconds of traffic (successes, not attempts: attempts overshoot most when we are furthest
    over the limit; and not the last pause, when nothing was sent); each success adds a little back (about +1 req/s per second of traffic), and each new
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
        self.resumed = 0.0  # when the last pause ended: the accepted rate is counted from there
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

    def on_429(self, retry_after: float | None, cap: float) -> bool:
        """A 429 answer: True when the request is to be retried (after its Retry-After, or 1 s),
        False when it is given up as throttled (a Retry-After over `cap`)."""
        if retry_after is not None and retry_after > cap:
            # Not waited out. The shared pause is capped; a service that keeps saying "come back
            # tomorrow" is then failed fast (recorded as throttled, the scan incomplete, a rerun
            # resumes) instead of every remaining request paying the cap in turn.
            self.on_throttle(cap)
            self.strikes += 1
            if self.strikes >= BLOCK_AFTER_STRIKES:
                self.block(retry_after)
            return False
        self.on_throttle(retry_after if retry_after is not None else 1.0)
        return True

    def on_throttle(self, retry_after: float | None) -> None:
        now = time.monotonic()
        if self.pause_until <= now:
            self.resumed = self.pause_until
        if retry_after:
            self.pause_until = max(self.pause_until, now + retry_after)
        if now - self.last_cut < 1.0:  # the 429s of one burst cut once, not once per in-flight request
            return
        self.last_cut = now
        # over the last WINDOW seconds of traffic: not before the first success, nor inside the last
        # pause (nothing was sent then: counting it would take the service for slower than it is)
        since = max(now - self.WINDOW, self.first_ok or now - self.WINDOW, self.resumed)
        span = max(0.5, now - since)
        accepted = sum(1 for t in self.ok if t >= since) / span
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
