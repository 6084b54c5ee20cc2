"""The HTTP client against real loopback servers: retries, Retry-After, confinement, content links."""
from __future__ import annotations

import email.utils
import json
import time

import pytest

from scanner.api.flow_api import FlowApi
from scanner.net.errors import ContentTooLarge, HostNotAllowed, LinkExpired, RedirectRefused, Throttled
from scanner.net.http import HttpClient
from scanner.net.pacer import parse_retry_after
from scanner.net.paging import ForeignNextLink, NextLinkLoop
from scanner.redact import redact_url
from tests.loopback import ScriptedServer, http_client, ok, run

AUD = "https://service.flow.microsoft.com/"
TOKEN = "tok-abc-123"


def client(**cfg) -> HttpClient:
    return http_client(TOKEN, **cfg)


def test_retries_5xx_and_dropped_connections_then_succeeds():
    calls = {"n": 0}

    def h(m, path, hd):
        calls["n"] += 1
        if calls["n"] == 1:
            return 503, {}, b"{}"
        if calls["n"] == 2:
            return 0, {}, b""
        return ok({"value": [1]})

    with ScriptedServer(h) as s:
        async def go():
            async with client() as c:
                c.allow_origin(AUD, s.url)
                return await c.get_json(s.url + "/x", AUD), c.stats
        body, stats = run(go())
    assert body == {"value": [1]}
    assert stats.retries == 2


def test_429_retry_after_seconds_and_http_date_are_honoured():
    calls = {"n": 0}

    def h(m, path, hd):
        calls["n"] += 1
        if calls["n"] == 1:
            return 429, {"Retry-After": "1"}, b'{"error":{"code":"TooManyRequests"}}'
        if calls["n"] == 2:
            return 429, {"Retry-After": email.utils.formatdate(time.time() + 1, usegmt=True)}, b"{}"
        return ok({"ok": True})

    with ScriptedServer(h) as s:
        async def go():
            async with client() as c:
                c.allow_origin(AUD, s.url)
                t = time.monotonic()
                await c.get_json(s.url + "/x", AUD)
                return time.monotonic() - t, c.stats
        elapsed, stats = run(go())
    assert stats.throttled == 2
    assert elapsed >= 1.0  # waited at least the first Retry-After (the date one rounds down to ~0-1 s)


def test_retry_after_beyond_cap_gives_up_instead_of_hanging():
    def h(m, path, hd):
        return 429, {"Retry-After": "86400"}, b"{}"

    with ScriptedServer(h) as s:
        async def go():
            async with client(max_retry_after=5) as c:
                c.allow_origin(AUD, s.url)
                await c.get_json(s.url + "/x", AUD)
        with pytest.raises(Throttled):
            run(go())


def test_token_only_to_registered_origin_and_https_elsewhere():
    with ScriptedServer(lambda m, p, h: ok({})) as s:
        async def go():
            async with client() as c:
                with pytest.raises(HostNotAllowed):
                    await c.get_json(s.url + "/x", AUD)  # origin never registered
                with pytest.raises(HostNotAllowed):
                    c.allow_origin(AUD, "http://example.com")  # plain http outside loopback
        run(go())
    assert s.requests == []


def test_redirect_is_not_followed():
    with ScriptedServer(lambda m, p, h: (302, {"Location": "http://127.0.0.2:1/steal"}, b"")) as s:
        async def go():
            async with client() as c:
                c.allow_origin(AUD, s.url)
                await c.get_json(s.url + "/x", AUD)
        with pytest.raises(RedirectRefused):
            run(go())
    assert len(s.requests) == 1


def test_foreign_and_looping_next_links_are_refused():
    def h(m, path, hd):
        if "page2" in path:
            return ok({"value": [{"name": "b"}], "nextLink": "http://localhost:9/evil?x=1"})
        if "loop" in path:
            return ok({"value": [{"name": "l"}], "nextLink": s.url + "/loop?again=1"})
        return ok({"value": [{"name": "a"}], "nextLink": s.url + "/page2?$skiptoken=abc"})

    with ScriptedServer(h) as s:
        async def go():
            async with client() as c:
                api = FlowApi(c, s.url, AUD)
                got = []
                with pytest.raises(ForeignNextLink):
                    async for page in api.pages(s.url + "/start", "runs"):
                        got.extend(page)
                with pytest.raises(NextLinkLoop):
                    async for page in api.pages(s.url + "/loop", "runs"):
                        pass
                return got
        got = run(go())
    assert [g["name"] for g in got] == ["a", "b"]
    assert not any("evil" in r[1] for r in s.requests)


def test_next_link_followed_as_given_without_adding_top():
    def h(m, path, hd):
        if "skiptoken" in path:
            return ok({"value": [{"name": "2"}]})
        return ok({"value": [{"name": "1"}], "nextLink": s.url + "/r?api-version=2016-11-01&$skiptoken=t1"})

    with ScriptedServer(h) as s:
        async def go():
            async with client() as c:
                api = FlowApi(c, s.url, AUD)
                return [i async for p in api.pages(s.url + "/r?$top=250", "runs") for i in p]
        items = run(go())
    assert [i["name"] for i in items] == ["1", "2"]
    assert s.requests[1][1] == "/r?api-version=2016-11-01&$skiptoken=t1"


def test_content_links_carry_no_token_and_are_capped():
    def h(m, path, hd):
        if path.startswith("/big"):
            return 200, {"Content-Length": "200"}, b"x" * 200  # honest header, over the cap
        if path.startswith("/liar"):
            return 200, {"X-No-Length": "1"}, b"y" * 5000  # no length given: counted as it streams
        if path.startswith("/expired"):
            return 403, {}, b'{"error":{"code":"AuthorizationFailed"}}'
        return ok({"headers": {}, "body": "hello"})

    with ScriptedServer(h, host="localhost") as s:
        async def go():
            async with client(max_content_bytes=100) as c:
                c.allow_origin(AUD, "http://127.0.0.1:1")
                out = await c.fetch_content(s.url + "/ok?sig=SECRETSIG&se=x")
                with pytest.raises(ContentTooLarge):
                    await c.fetch_content(s.url + "/big")
                with pytest.raises(ContentTooLarge):
                    await c.fetch_content(s.url + "/liar")
                with pytest.raises(LinkExpired) as e:
                    await c.fetch_content(s.url + "/expired?sig=SECRETSIG")
                assert "SECRETSIG" not in str(e.value)
                with pytest.raises(HostNotAllowed):
                    await c.fetch_content("http://127.0.0.1:1/elsewhere?sig=SECRETSIG")
                return out
        out = run(go())
    assert json.loads(out)["body"] == "hello"
    assert len(s.requests) == 4  # the disallowed host was never contacted
    assert all("authorization" not in r[2] for r in s.requests)


def test_parse_retry_after_and_redaction():
    assert parse_retry_after("5") == 5
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert 0 <= parse_retry_after(email.utils.formatdate(time.time() + 30, usegmt=True)) <= 31
    assert redact_url("https://u:p@prod-1.logic.azure.com:443/a/b?sig=abc&se=1") == \
        "https://prod-1.logic.azure.com:443/a/b"
