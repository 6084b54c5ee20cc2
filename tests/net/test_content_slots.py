"""Content downloads have their own connection slots: a 429 storm on the API never stalls them.

Against the loopback fake (tests/fakeapi): the API listener is rate limited (a token bucket answering
429 + Retry-After), the content listener is not. One HttpClient runs a crawl-shaped workload: many API
reads queued first, then many content fetches, all at once. While the API pacer is paused (waiting
out a Retry-After) content must keep completing, and the content must be done long before the API
work is. With one semaphore for both services, the API requests waiting out the pause hold every
slot and the content queues behind them (see the figures in the test's failure message).

A second test holds the API's connections instead (slow answers, every API slot in flight): the
connection pool must still have room for content, so it is sized for both services' slots.
"""
from __future__ import annotations

import asyncio
import time

from scanner.api.flow_api import FlowApi, content_links, is_secured
from scanner.net.auth import StaticToken
from scanner.net.config import HttpConfig
from scanner.net.http import HttpClient
from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.loopback import ScriptedServer, http_client, ok

AUD = "https://service.flow.microsoft.com/"
API_CALLS = 40       # run reads, queued before the content, as a crawl lists before it downloads
CONTENT_FETCHES = 160
SLOTS = 8


def client(api: FakeFlowApi) -> HttpClient:
    return HttpClient(StaticToken(api.token),
                      HttpConfig(concurrency=SLOTS, max_backoff=0.2, content_host_suffixes=(api.content_host,)))


async def links_and_run_urls(api: FakeFlowApi) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The content links of a few runs, and the (environment, flow, run) names to read again."""
    async with client(api) as http:
        flow_api = FlowApi(http, api.api_url, AUD, pinned_root=True)
        links, runs = [], []
        for env in await flow_api.environments():
            async for flow in flow_api.flows(env.name):
                async for page in flow_api.runs(env.name, flow["name"], None):
                    for run in page:
                        runs.append((env.name, flow["name"], run["name"]))
        for env, flow, run in runs[:6]:
            detail = await flow_api.get_run(env, flow, run)
            props = detail.get("properties") or {}
            steps = [props.get("trigger") or {}] + list((props.get("actions") or {}).values())
            for step in steps:
                for link in content_links(step).values():
                    if not is_secured(link):
                        links.append(link["uri"])
    return links, runs


async def storm(api: FakeFlowApi, links: list[str], runs: list[tuple[str, str, str]]) -> dict:
    """API reads and content fetches at once; when each finished, and whether the API was paused."""
    async with client(api) as http:
        flow_api = FlowApi(http, api.api_url, AUD, pinned_root=True)
        start = time.monotonic()
        api_done: list[float] = []
        content_done: list[tuple[float, bool]] = []  # (seconds since start, API paused then)

        async def read_run(i: int) -> None:
            env, flow, run = runs[i % len(runs)]
            await flow_api.get_run(env, flow, run)
            api_done.append(time.monotonic() - start)

        async def fetch(i: int) -> None:
            await http.fetch_content(links[i % len(links)])
            now = time.monotonic()
            content_done.append((now - start, http.api_pacer.pause_until > now))

        # API tasks first: they reach the slots first, as listing does in a crawl
        tasks = [asyncio.create_task(read_run(i)) for i in range(API_CALLS)]
        tasks += [asyncio.create_task(fetch(i)) for i in range(CONTENT_FETCHES)]
        await asyncio.gather(*tasks)
        return {"api_done": sorted(api_done), "content_done": sorted(content_done),
                "throttled": http.stats.throttled, "requests": http.stats.requests}


def test_content_downloads_continue_while_the_api_is_paused_by_429s():
    tenant = Tenant.generate(seed=11, environments=1, flows_per_env=3, runs_per_flow=4)
    # The bucket starts empty-ish for the storm: burst 4, 10 req/s, Retry-After >= 1 s on the API;
    # the content listener has no limit. 10 ms latency on every request, as a real service has some.
    with FakeFlowApi(tenant, faults=Faults(latency_ms=10, rate_limit_rps=10, burst=4)) as api:
        links, runs = asyncio.run(links_and_run_urls(api))
        assert len(links) >= 20 and runs
        time.sleep(0.5)  # let the bucket refill after the set-up reads
        r = asyncio.run(storm(api, links, runs))
    assert not api.content_auth_headers_seen
    api_end = r["api_done"][-1]
    times = [t for t, _ in r["content_done"]]
    during_pause = sum(1 for _, paused in r["content_done"] if paused)
    p90 = times[int(0.9 * len(times)) - 1]
    figures = (f"{during_pause} of {len(times)} content responses completed while the API was paused; "
               f"90% of content done at {p90:.2f}s, all at {times[-1]:.2f}s; API work done at "
               f"{api_end:.2f}s ({r['throttled']} 429s, {r['requests']} requests)")
    print(figures)
    assert r["throttled"] > 0, f"no 429 storm happened: {figures}"
    assert during_pause >= len(times) // 2, f"content stalled while the API was paused: {figures}"
    assert p90 < api_end / 2, f"content waited for the API work: {figures}"


def test_slow_api_answers_do_not_use_up_the_connections_content_needs():
    """Every API slot is in flight for 1.5 s (a slow answer holds its connection); the content
    fetches, on another host, must all be done before the first API answer arrives."""

    def slow_api(method, path, headers):
        time.sleep(1.5)
        return ok({"ok": True})

    def content(method, path, headers):
        time.sleep(0.01)
        return 200, {"Content-Type": "application/json"}, b'{"body": 1}'

    with ScriptedServer(slow_api) as api, ScriptedServer(content, host="localhost") as host:
        for server in (api, host):  # a backlog of 5 drops the SYNs of a burst of connects (1 s resend)
            server.server.socket.listen(64)
        async def go() -> tuple[float, float]:
            async with http_client("tok", concurrency=SLOTS) as http:
                http.allow_origin(AUD, api.url)
                start = time.monotonic()
                calls = [asyncio.create_task(http.get_json(f"{api.url}/r{i}", AUD)) for i in range(SLOTS)]
                await asyncio.sleep(0.2)  # the API requests are on the wire, holding connections
                await asyncio.gather(*(http.fetch_content(f"{host.url}/c{i}?sig=x") for i in range(40)))
                content_end = time.monotonic() - start
                await asyncio.gather(*calls)
                return content_end, time.monotonic() - start

        content_end, api_end = asyncio.run(go())
    print(f"content done at {content_end:.2f}s, the slow API at {api_end:.2f}s")
    assert content_end < 1.2, f"content done at {content_end:.2f}s, the slow API at {api_end:.2f}s"
