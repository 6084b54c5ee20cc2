"""Hostile API behaviour against real loopback servers (issue 6.4).

Hang detection uses `asyncio.wait_for` with a bound far above the expected cost (seconds vs. the
day a broken client would wait): the assertions are about which error is raised and how many
requests were made, never about elapsed time.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import time

import pytest

from scanner.api.flow_api import FlowApi, parse_api_time
from scanner.net import paging
from scanner.net.errors import RetryableStatus, Throttled, TransportFailed
from scanner.net.paging import NextLinkLoop, PagingError, TooManyPages
from tests.hardening.helpers import AUD, RawServer, Scripted, client, ok, run

HANG = 30.0  # seconds: only ever reached by a client that hangs


def guarded(coro):
    return run(asyncio.wait_for(coro, HANG))


# -- endless paging ----------------------------------------------------------------------------------

def test_next_link_to_itself_is_a_loop_with_a_clear_message():
    with Scripted(lambda m, p, h: ok({"value": [{"name": "r"}], "nextLink": s.url + p})) as s:
        async def go():
            async with client() as c:
                api = FlowApi(c, s.url, AUD)
                with pytest.raises(NextLinkLoop) as e:
                    async for _ in api.pages(s.url + "/runs?api-version=1&$skiptoken=SECRET", "runs"):
                        pass
                return e.value
        exc = guarded(go())
    assert "endless paging stopped" in str(exc) and "SECRET" not in str(exc)
    assert exc.reason == "nextLink loop" and len(s.requests) == 1


def test_next_link_cycle_of_two_pages_is_a_loop():
    def h(m, path, hd):
        other = "/b" if path.startswith("/a") else "/a"
        return ok({"value": [{"name": path}], "nextLink": f"{s.url}{other}?api-version=1"})

    with Scripted(h) as s:
        async def go():
            async with client() as c:
                with pytest.raises(NextLinkLoop):
                    async for _ in FlowApi(c, s.url, AUD).pages(s.url + "/a?api-version=1", "runs"):
                        pass
        guarded(go())
    assert len(s.requests) == 2


def test_next_links_without_end_stop_at_max_pages():
    counter = {"n": 0}

    def h(m, path, hd):
        counter["n"] += 1
        return ok({"value": [{"name": f"r{counter['n']}"}],
                   "nextLink": f"{s.url}/runs?api-version=1&$skiptoken=t{counter['n']}"})

    with Scripted(h) as s:
        async def go():
            async with client() as c:
                api = FlowApi(c, s.url, AUD, max_pages=25)
                items = []
                with pytest.raises(TooManyPages) as e:
                    async for page in api.pages(s.url + "/runs?api-version=1", "runs"):
                        items.extend(page)
                return items, e.value
        items, exc = guarded(go())
    assert len(items) == 25 and len(s.requests) == 25
    assert "paging stopped after 25 pages" in str(exc) and "skiptoken" not in str(exc)
    assert isinstance(exc, PagingError) and exc.reason == "nextLink loop"


def test_max_pages_default_comes_from_the_module_constant(monkeypatch):
    monkeypatch.setattr(paging, "MAX_PAGES", 7)
    assert FlowApi(client(), "http://127.0.0.1:1", AUD).max_pages == 7


def test_key_vault_next_links_without_end_stop():
    from detectors.known_values import KnownValues
    from scanner.net.clouds import get_cloud
    from scanner.api.keyvault import load_vault

    counter = {"n": 0}

    def h(m, path, hd):
        counter["n"] += 1
        return ok({"value": [], "nextLink": f"{s.url}/secrets?api-version=7.4&$skiptoken=t{counter['n']}"})

    with Scripted(h) as s:
        async def go():
            async with client() as c:
                return await load_vault(c, s.url, get_cloud("public"), KnownValues(b"k" * 32), max_pages=15)
        result = guarded(go())
    assert len(s.requests) == 15
    assert any("paging stopped after 15 pages" in e for e in result.errors)


# -- a huge page -----------------------------------------------------------------------------------

def test_a_page_of_100000_runs():
    runs = [{"name": f"0858{i:022d}CU{i % 100:02d}", "id": f"/runs/{i}", "type": "Microsoft.ProcessSimple/environments/flows/runs",
             "properties": {"startTime": f"2026-11-{1 + i % 28:02d}T10:{i % 60:02d}:00.1234567Z", "status": "Succeeded"}}
            for i in range(100_000)]
    body = json.dumps({"value": runs}).encode()

    with Scripted(lambda m, p, h: (200, {"Content-Type": "application/json"}, body)) as s:
        async def go():
            async with client() as c:
                api = FlowApi(c, s.url, AUD)
                pages = [p async for p in api.runs("env", "flow", None)]
                return pages, c.stats
        pages, stats = guarded(go())
    assert len(pages) == 1 and len(pages[0]) == 100_000
    assert stats.api_requests == 1
    starts = {parse_api_time(r["properties"]["startTime"]) for r in pages[0]}
    assert None not in starts


# -- throttling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("retry_after", ["86400", "DATE", "1e308", "inf"])
def test_retry_after_of_a_day_raises_throttled_at_once_and_does_not_stall_others(retry_after):
    """The 429 is not waited out, and the shared pause it causes is capped: a following request
    on the same client (another URL, which answers 200) goes through after at most the cap."""
    ra = email.utils.formatdate(time.time() + 86400, usegmt=True) if retry_after == "DATE" else retry_after

    def h(m, path, hd):
        if path.startswith("/throttled"):
            return 429, {"Retry-After": ra, "Content-Type": "application/json"}, b'{"error":{"code":"TooManyRequests"}}'
        return ok({"value": []})

    with Scripted(h) as s:
        async def go():
            async with client(max_retry_after=0.5, max_attempts=5) as c:
                c.allow_origin(AUD, s.url)
                with pytest.raises(Throttled) as e:
                    await c.get_json(s.url + "/throttled?sig=X", AUD)
                after = await c.get_json(s.url + "/fine", AUD)
                return e.value, after, c.stats
        exc, after, stats = guarded(go())
    assert after == {"value": []}
    assert exc.reason == "throttled" and "sig" not in str(exc)
    assert sum(1 for r in s.requests if r[1].startswith("/throttled")) == 1   # not retried
    assert stats.throttled == 1


@pytest.mark.parametrize("retry_after", ["nan", "-5", "garbage"])
def test_odd_retry_after_values_retry_within_the_attempt_limit(retry_after):
    with Scripted(lambda m, p, h: (429, {"Retry-After": retry_after}, b"{}")) as s:
        async def go():
            async with client(max_attempts=2, max_retry_after=0.5) as c:
                c.allow_origin(AUD, s.url)
                with pytest.raises((RetryableStatus, Throttled)):
                    await c.get_json(s.url + "/x", AUD)
                return c.stats
        stats = guarded(go())
    assert len(s.requests) == 2 and stats.retries == 1


# -- wrong content type / not JSON ---------------------------------------------------------------

@pytest.mark.parametrize("reply", [
    (200, {"Content-Type": "text/html"}, b"<html><body>Sign in to continue</body></html>"),
    (200, {"Content-Type": "application/json"}, b'{"value": [1, 2'),
    (200, {}, b""),
    (200, {"Content-Type": "application/octet-stream"}, bytes(range(256))),
])
def test_non_json_answer_is_a_clear_error_after_retries(reply):
    with Scripted(lambda m, p, h: reply) as s:
        async def go():
            async with client(max_attempts=3) as c:
                api = FlowApi(c, s.url, AUD)
                with pytest.raises(RetryableStatus) as e:
                    async for _ in api.pages(s.url + "/runs?api-version=1&$skiptoken=S", "runs"):
                        pass
                return e.value, c.stats
        exc, stats = guarded(go())
    assert exc.reason == "parse error" and "is not JSON (Content-Type" in str(exc)
    assert "$skiptoken" not in str(exc)
    assert len(s.requests) == 3 and stats.retries == 2


@pytest.mark.parametrize("page", [[1, 2], "a string", 42, None, {"value": {"not": "a list"}}, {"value": "x"}])
def test_json_of_the_wrong_shape_is_a_paging_error(page):
    with Scripted(lambda m, p, h: ok(page)) as s:
        async def go():
            async with client() as c:
                with pytest.raises(PagingError):
                    async for _ in FlowApi(c, s.url, AUD).pages(s.url + "/runs?api-version=1", "runs"):
                        pass
        guarded(go())


# -- slow loris ------------------------------------------------------------------------------------

def _trickle(head: bytes, conn) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    for _ in range(600):          # one byte every 50 ms for up to 30 s: each read succeeds
        time.sleep(0.05)
        conn.sendall(b" ")


def _trickle_headers(head: bytes, conn) -> None:
    for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 600:
        time.sleep(0.05)
        conn.sendall(bytes([b]))


def _silent(head: bytes, conn) -> None:
    time.sleep(20)


@pytest.mark.parametrize("behaviour", [_trickle, _trickle_headers, _silent])
def test_slow_loris_server_ends_in_transport_failed(behaviour):
    with RawServer(behaviour) as s:
        async def go():
            async with client(read_timeout=0.2, request_timeout=0.4, max_attempts=2) as c:
                c.allow_origin(AUD, s.url)
                with pytest.raises(TransportFailed) as e1:
                    await c.get_json(s.url + "/runs?sig=SECRETSIG", AUD)
                with pytest.raises(TransportFailed) as e2:
                    await c.fetch_content(s.content_url + "/contents/ActionOutputs?sig=SECRETSIG")
                return e1.value, e2.value, c.stats
        e1, e2, stats = guarded(go())
    assert e1.reason == e2.reason == "connection error"
    assert "SECRETSIG" not in str(e1) + str(e2)
    assert len(s.requests) == 4 and stats.retries == 2   # each retried once, then given up


# -- hostile response shapes the fuzzers found (regressions, deterministic) -------------------------

@pytest.mark.parametrize("link", ["0\x1f", "/p\x00x", "http://127.0.0.1:99999/x", "http://[::1", "http://[zz]/"])
def test_unusable_next_links_are_flowleaks_errors(link):
    from scanner.net.errors import FlowleaksHttpError

    with Scripted(lambda m, p, h: ok({"value": [{"name": "a"}], "nextLink": link})) as s:
        async def go():
            async with client(max_attempts=2) as c:
                got = []
                with pytest.raises(FlowleaksHttpError):
                    async for page in FlowApi(c, s.url, AUD).pages(s.url + "/runs?api-version=1", "runs"):
                        got.extend(page)
                return got
        assert guarded(go()) == [{"name": "a"}]
    assert len(s.requests) == 1


def test_content_link_with_control_characters_is_refused_not_raised():
    from scanner.net.errors import UnusableUrl

    async def go():
        async with client() as c:
            with pytest.raises(UnusableUrl) as e:
                await c.fetch_content("http://localhost:1/contents/x\x1f?sig=SECRETSIG")
            return e.value
    exc = guarded(go())
    assert exc.reason == "bad url" and "SECRETSIG" not in str(exc)


def test_parsers_tolerate_wrong_types():
    from scanner.api.flow_api import content_links, is_secured, link_key

    assert content_links("a string") == {"inputs": None, "outputs": None}
    assert content_links([1]) == {"inputs": None, "outputs": None}
    assert link_key({"contentHash": "abc", "contentSize": 3}) is None
    assert link_key({"contentHash": ["x"], "contentSize": 3}) is None
    assert link_key("x") is None
    assert link_key({"contentHash": {"value": "q83v"}, "contentSize": 3}) == "q83v:3"
    assert is_secured({"uri": "https://x", "secureData": {}}) is False and is_secured("x") is True
    for bad in ("garbage+05:00", "2026-13-01T00:00:00Z", "not a time", 12345, ["2026-01-01"], {"a": 1},
                "2026-11-20T17:00:09.12+05:00x", "9999-99-99"):
        assert parse_api_time(bad) is None, bad
    assert parse_api_time("2026-11-20T17:00:09.1234567Z") == "2026-11-20T17:00:09.1234567"
    assert parse_api_time("2026-11-20T17:00:09.12+05:00") == "2026-11-20T12:00:09.120000"


def test_a_service_that_keeps_saying_come_back_tomorrow_is_failed_fast():
    """Three Retry-Afters over the cap in a row: later requests to that service fail at once as
    throttled (to be recorded, the scan incomplete) instead of each paying the capped pause."""
    def h(m, path, hd):
        return 429, {"Retry-After": "86400", "Content-Type": "application/json"}, b"{}"

    with Scripted(h) as s:
        async def go():
            async with client(max_retry_after=0.2, max_attempts=5) as c:
                c.allow_origin(AUD, s.url)
                for i in range(6):
                    with pytest.raises(Throttled):
                        await c.get_json(s.url + f"/r{i}", AUD)
        guarded(go())
    assert len(s.requests) == 3
