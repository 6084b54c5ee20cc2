"""Token confinement against real loopback servers (issue 6.1).

A bearer token goes only to the origin it was registered for; a nextLink (Flow API pages and Key
Vault list pages) to another host, port or scheme is refused and recorded, never followed; redirects
are never followed, with or without credentials; content links carry no token and are only fetched
from allow-listed hosts; plain http to a non-loopback host is refused before any connection.
Every "the other server received nothing" is checked on the other server's own request log.
"""
from __future__ import annotations

import json

import httpx
import pytest

from scanner.net.clouds import get_cloud
from scanner.api.flow_api import FlowApi
from scanner.net.confinement import check_transport_security
from scanner.net.errors import HostNotAllowed, RedirectRefused
from scanner.net.paging import ForeignNextLink
from scanner.api.keyvault import load_vault
from detectors.known_values import KnownValues
from tests.hardening.helpers import AUD, TOKEN, client, ok, run
from tests.hardening.helpers import Scripted as ScriptedServer


CLOUD = get_cloud("public")
VAULT_AUD = CLOUD.vault_audience


def _page_then(next_link_of):
    """A server whose first page links to next_link_of(server) (absolute)."""
    holder = {}

    def h(m, path, hd):
        if "page2" in path:
            return ok({"value": [{"name": "b"}]})
        return ok({"value": [{"name": "a"}], "nextLink": next_link_of(holder["s"])})
    return holder, h


def _foreign_links(main: ScriptedServer, other: ScriptedServer) -> dict[str, str]:
    main_port = main.url.rsplit(":", 1)[1]
    return {
        "other port": f"{other.url}/page2?$skiptoken=x",
        "other host": f"http://localhost:{main_port}/page2?$skiptoken=x",  # same socket, another name
        "other scheme": f"https://127.0.0.1:{main_port}/page2?$skiptoken=x",
        "userinfo host": f"http://127.0.0.1:{main_port}@localhost:{other.url.rsplit(':', 1)[1]}/page2",
    }


@pytest.mark.parametrize("which", ["other port", "other host", "other scheme", "userinfo host"])
def test_flow_api_foreign_next_link_is_refused_and_not_contacted(which):
    other = ScriptedServer(lambda m, p, h: ok({"value": [{"name": "stolen"}]}))
    holder, handler = _page_then(lambda s: _foreign_links(s, other)[which])
    with other, ScriptedServer(handler) as main:
        holder["s"] = main

        async def go():
            async with client() as c:
                api = FlowApi(c, main.url, AUD)
                got = []
                with pytest.raises(ForeignNextLink) as e:
                    async for page in api.pages(main.url + "/runs?api-version=1", "runs"):
                        got.extend(page)
                return got, e.value
        got, exc = run(go())
    assert [g["name"] for g in got] == ["a"]
    assert exc.reason == "nextLink refused"        # what the crawl records in `skipped`
    assert "skiptoken" not in str(exc)              # the query (a paging secret) is not repeated
    assert other.requests == []
    assert len(main.requests) == 1                  # not even the same socket under another name
    assert all(r[2].get("authorization") == f"Bearer {TOKEN}" for r in main.requests)


def test_flow_api_regional_endpoint_off_the_root_domain_gets_no_token():
    """runtimeEndpoints from the API choose where later calls go; one outside the service root's
    domain (or over http) is not trusted with the token: calls stay on the root."""
    evil = ScriptedServer(lambda m, p, h: ok({"value": []}))

    def h(m, path, hd):
        if path.startswith("/providers/Microsoft.ProcessSimple/environments?"):
            return ok({"value": [{"name": "env1", "properties": {
                "runtimeEndpoints": {"microsoft.Flow": evil.url}}}]})
        return ok({"value": [{"name": "flow1", "properties": {}}]})

    with evil, ScriptedServer(h) as main:
        async def go():
            async with client() as c:
                api = FlowApi(c, main.url, AUD)
                envs = await api.environments()
                flows = [f async for f in api.flows(envs[0].name)]
                return envs, flows, c.origins
        envs, flows, origins = run(go())
    assert envs[0].flow_endpoint == evil.url and [f["name"] for f in flows] == ["flow1"]
    assert evil.requests == []
    assert all(evil.url.split("//")[1] not in o for o in origins[AUD])


def _vault_server(next_link):
    secrets = {"s1": "Kv-Secret-Value-0001", "s2": "Kv-Secret-Value-0002"}

    def h(m, path, hd):
        if path.startswith("/secrets?"):
            return ok({"value": [{"id": f"https://x/secrets/{n}", "attributes": {"enabled": True}}
                                 for n in secrets], "nextLink": next_link(holder["s"])})
        name = path.split("?")[0].rsplit("/", 1)[-1]
        return ok({"value": secrets[name], "id": name})
    holder = {}
    return holder, h


@pytest.mark.parametrize("which", ["other port", "other host", "other scheme"])
def test_key_vault_foreign_next_link_is_refused_and_recorded(which):
    other = ScriptedServer(lambda m, p, h: ok({"value": [{"id": "https://x/secrets/s9"}]}))
    holder, handler = _vault_server(lambda s: _foreign_links(s, other)[which])
    with other, ScriptedServer(handler) as vault:
        holder["s"] = vault
        known = KnownValues(b"k" * 32)

        async def go():
            async with client() as c:
                return await load_vault(c, vault.url, CLOUD, known)
        result = run(go())
    assert result.loaded == 2                         # the first page was used
    assert any(e.startswith("nextLink refused") for e in result.errors)
    assert not any("skiptoken" in e for e in result.errors)
    assert other.requests == []
    assert len(vault.requests) == 3                   # list + two gets, nothing more


def test_key_vault_next_link_repeating_the_first_page_stops():
    holder, handler = _vault_server(lambda s: f"{s.url}/secrets?api-version=7.4&maxresults=25")
    with ScriptedServer(handler) as vault:
        holder["s"] = vault
        known = KnownValues(b"k" * 32)

        async def go():
            async with client() as c:
                return await load_vault(c, vault.url, CLOUD, known)
        result = run(go())
    assert any("nextLink loop" in e for e in result.errors)
    assert sum(1 for r in vault.requests if r[1].startswith("/secrets?")) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_api_redirects_are_never_followed(status):
    target = ScriptedServer(lambda m, p, h: ok({"value": []}))
    with target, ScriptedServer(lambda m, p, h: (status, {"Location": target.url + "/steal"}, b"")) as s:
        async def go():
            async with client() as c:
                c.allow_origin(AUD, s.url)
                c.allow_origin(AUD, target.url)  # even a target that may have the token is not followed
                with pytest.raises(RedirectRefused) as e:
                    await c.get_json(s.url + "/x?$skiptoken=abc", AUD)
                return e.value, c.stats
        exc, stats = run(go())
    assert target.requests == []
    assert len(s.requests) == 1          # not retried either
    assert stats.refused == 1 and exc.reason == "redirect not followed"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_content_link_redirect_off_the_allow_list_is_not_followed(status):
    target = ScriptedServer(lambda m, p, h: ok({"stolen": True}))
    with target, ScriptedServer(lambda m, p, h: (status, {"Location": target.url + "/x?sig=S"}, b""),
                                host="localhost") as s:
        async def go():
            async with client() as c:
                with pytest.raises(RedirectRefused):
                    await c.fetch_content(s.url + "/contents/ActionOutputs?sig=SECRETSIG")
                return c.stats
        stats = run(go())
    assert target.requests == []
    assert stats.refused == 1
    assert all("authorization" not in r[2] for r in s.requests)


def test_content_link_never_carries_a_token_even_on_the_api_origin():
    """The content host is also registered as an API origin for the token: content fetches still go
    out with no Authorization header (a fresh request with only the client's default headers)."""
    with ScriptedServer(lambda m, p, h: ok({"body": "x"}), host="localhost") as s:
        async def go():
            async with client() as c:
                c.allow_origin(AUD, s.url)
                await c.get_json(s.url + "/api", AUD)
                await c.fetch_content(s.url + "/contents/TriggerOutputs?sig=SIG")
                await c.get_json(s.url + "/api2", AUD)
                await c.fetch_content(s.url + "/contents/ActionInputs?sig=SIG")
        run(go())
    by_path = {r[1].split("?")[0]: r[2] for r in s.requests}
    assert by_path["/api"]["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in by_path["/contents/TriggerOutputs"]
    assert "authorization" not in by_path["/contents/ActionInputs"]
    assert not any(TOKEN in json.dumps(h) for p, h in by_path.items() if p.startswith("/contents"))


def test_fake_flow_api_content_host_sees_no_authorization():
    """Through the real FlowApi against FakeFlowApi: list a run, read it, fetch its content links."""
    from datetime import datetime, timezone

    from scanner.api.flow_api import content_links, is_secured
    from tests.fakeapi import FakeFlowApi, Tenant

    tenant = Tenant.generate(3, environments=1, flows_per_env=2, runs_per_flow=2,
                             now=datetime(2026, 11, 20, tzinfo=timezone.utc))
    with FakeFlowApi(tenant) as api:
        async def go():
            from scanner.net.auth import StaticToken
            from scanner.net.config import HttpConfig
            from scanner.net.http import HttpClient
            async with HttpClient(StaticToken(api.token),
                                  HttpConfig(content_host_suffixes=(api.content_host,))) as c:
                fa = FlowApi(c, api.api_url, AUD, as_admin=True)
                fetched = 0
                for env in await fa.environments():
                    async for flow in fa.flows(env.name):
                        async for page in fa.runs(env.name, flow["name"], None):
                            for r in page:
                                run_ = await fa.get_run(env.name, flow["name"], r["name"])
                                for link in content_links(run_["properties"]["trigger"]).values():
                                    if link is not None and not is_secured(link):
                                        await c.fetch_content(link["uri"])
                                        fetched += 1
                return fetched
        fetched = run(go())
    assert fetched > 0
    assert api.content_auth_headers_seen == []


class _Recorder(httpx.AsyncBaseTransport):
    def __init__(self):
        self.requests = []

    async def handle_async_request(self, request):
        self.requests.append(request)
        return httpx.Response(200, json={"value": []})


@pytest.mark.parametrize("url", ["http://example.com/x", "http://10.0.0.1:8080/x", "ftp://example.com/x",
                                 "http://127.0.0.1.example.com/x", "http://localhost.example.com/x"])
def test_plain_http_to_non_loopback_is_refused_before_any_connection(url):
    from scanner.net.auth import StaticToken
    from scanner.net.config import HttpConfig
    from scanner.net.http import HttpClient

    rec = _Recorder()

    async def go():
        async with HttpClient(StaticToken(TOKEN), HttpConfig(content_host_suffixes=("example.com", "10.0.0.1")),
                              transport=rec) as c:
            with pytest.raises(HostNotAllowed):
                c.allow_origin(AUD, url)
            with pytest.raises(HostNotAllowed):
                await c.get_json(url, AUD)
            c.origins.setdefault(AUD, set()).add(__import__("scanner.net.confinement", fromlist=["origin"]).origin(url))
            with pytest.raises(HostNotAllowed):   # even when the origin was (wrongly) registered
                await c.get_json(url, AUD)
            with pytest.raises(HostNotAllowed):   # content links: https only off loopback
                await c.fetch_content(url + "?sig=x")
    run(go())
    assert rec.requests == []
    with pytest.raises(HostNotAllowed):
        check_transport_security(url)
    check_transport_security("https://example.com/x")
    check_transport_security("http://[::1]:8080/x")
    check_transport_security("http://127.0.0.5:1/x")
