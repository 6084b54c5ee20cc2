"""Pacer benchmark (prints, never asserts): the shared limiter alone against a token-bucket server.

The full crawl benchmark (crawl.py) is CPU-bound on this machine before it reaches a 100 req/s API
limit, so it cannot show how close the limiter gets to a limit. This one sends only API requests
(20 ms latency, 16 in flight) through the real HttpClient to a loopback server that enforces
RATE req/s with a bucket of one second, answering 429 + Retry-After beyond it, for 30 seconds.

    .venv/bin/python benchmarks/pacer.py [--rates 20 50 100] [--seconds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import _harness  # noqa: F401 - puts the repository on sys.path

from tests.fakeapi.faults import TokenBucket
from tests.loopback import ScriptedServer, http_client

AUD = "https://service.flow.microsoft.com/"


def measure(rate: float, seconds: float) -> None:
    bucket = TokenBucket(rate, int(rate))

    def handler(method, path, headers):
        time.sleep(0.02)
        wait = bucket.take()
        if wait:
            return 429, {"Retry-After": str(max(1, int(wait + 0.999)))}, b'{"error":{"code":"TooManyRequests"}}'
        return 200, {"Content-Type": "application/json"}, b"{}"

    with ScriptedServer(handler) as server:
        async def go() -> tuple[int, float, int]:
            n = int(rate * seconds)
            slots = asyncio.Semaphore(16)
            async with http_client("bench-token", max_backoff=2) as client:
                client.allow_origin(AUD, server.url)

                async def one(i: int) -> None:
                    async with slots:
                        await client.get_json(f"{server.url}/r{i}", AUD)

                start = time.monotonic()
                await asyncio.gather(*(one(i) for i in range(n)))
                return n, time.monotonic() - start, client.stats.throttled

        n, wall, throttled = asyncio.run(go())
    print(f"limit {rate:5.0f} req/s: {n} requests answered in {wall:.1f} s = {n / wall:.1f} req/s "
          f"({n / wall / rate:.2f} of the allowed rate), {throttled} 429s "
          f"({100 * throttled / (n + throttled):.1f}% of requests sent)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[20, 50, 100])
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    for rate in a.rates:
        measure(rate, a.seconds)


if __name__ == "__main__":
    main()
