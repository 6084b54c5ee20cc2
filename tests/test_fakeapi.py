"""The loopback fake Flow API, exercised with plain httpx (no scanner code)."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.fakeapi.model import fmt_ticks

NOW = datetime(2026, 11, 20, 17, 0, 9, tzinfo=timezone.utc)
V = {"api-version": "2016-11-01"}
AUTH = {"Authorization": "Bearer test-token"}
BASE = "/providers/Microsoft.ProcessSimple"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return Tenant.generate(7, environments=2, flows_per_env=5, runs_per_flow=6, now=NOW)


@pytest.fixture(scope="module")
def api(tenant):
    with FakeFlowApi(tenant, repetitions_page_size=2, actions_page_size=3) as server:
        yield server


@pytest.fixture(scope="module")
def client():
    with httpx.Client(headers=AUTH, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def anon():
    """For content links: no Authorization header, as the scanner must fetch them."""
    with httpx.Client(timeout=10) as c:
        yield c


def runs_url(api, flow, admin=False) -> str:
    scope = "/scopes/admin" if admin else ""
    return f"{api.api_url}{BASE}{scope}/environments/{flow.environment}/flows/{flow.flow_id}/runs"


def follow(client, url, params=None) -> list[dict]:
    """Every item of a paged list; asserts nextLink is absolute and omitted on the last page."""
    items, page = [], client.get(url, params=params).json()
    while True:
        items += page["value"]
        if "nextLink" not in page:
            return items
        assert page["nextLink"].startswith("http://127.0.0.1:") and "%24skiptoken=" in page["nextLink"]
        page = client.get(page["nextLink"]).json()


def flow_of(tenant, template_name):
    return next(f for f in tenant.flows if f.template.name == template_name)


def decoded_text(body: bytes) -> str:
    """The body plus its decoded layers a scanner would look into ($content base64, Basic headers)."""
    text = body.decode()
    parts = [text]

    def walk(node):
        if isinstance(node, dict):
            if "$content" in node:
                parts.append(base64.b64decode(node["$content"]).decode())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and node.startswith("Basic "):
            parts.append(base64.b64decode(node[6:]).decode())
    walk(json.loads(body))
    return "\n".join(parts)


# --- tenant --------------------------------------------------------------------------------------

def test_same_seed_same_ground_truth(tenant):
    again = Tenant.generate(7, environments=2, flows_per_env=5, runs_per_flow=6, now=NOW)
    assert again.planted == tenant.planted
    assert again.vault_secrets == tenant.vault_secrets
    assert again.risky_definitions == tenant.risky_definitions
    assert [f.definition for f in again.flows] == [f.definition for f in tenant.flows]
    other = Tenant.generate(8, environments=2, flows_per_env=5, runs_per_flow=6, now=NOW)
    assert not other.secrets() & tenant.secrets()


def test_tenant_covers_every_kind_and_case(tenant):
    kinds = {p.kind for p in tenant.planted}
    assert {"github_token", "aws_access_key_id", "aws_secret_access_key", "azure_client_secret",
            "storage_account_key", "storage_connection_string", "sas_url", "logicapp_trigger_url", "password",
            "basic_auth", "bearer_jwt", "api_key_header", "client_secret_form", "keyvault_secret",
            "function_key"} <= kinds
    assert any(p.secured for p in tenant.planted) and any(not p.secured for p in tenant.planted)
    assert any(p.repetition for p in tenant.planted)
    assert {p.secret for p in tenant.planted if p.kind == "keyvault_secret"} <= set(tenant.vault_secrets.values())
    assert not tenant.decoys() & tenant.secrets()
    issues = {r.issue for r in tenant.risky_definitions}
    assert issues == {"hardcoded-secret", "keyvault-get-secret-unsecured-outputs", "secret-consumer-unsecured-inputs"}
    statuses = {h.status for _, h in tenant.iter_runs()}
    assert {"Succeeded", "Failed"} <= statuses
    ages = [(tenant.now_ticks - h.start) / 1e7 / 86400 for _, h in tenant.iter_runs()]
    assert max(ages) > 30 and min(ages) < 30


def test_definitions_declare_what_runs_hide(tenant):
    for flow in tenant.flows:
        detail = tenant.run_detail(flow, tenant.runs(flow)[-1].name)
        defined = {**flow.definition["triggers"], **flow.definition["actions"]}
        for action in flow.definition["actions"].values():
            defined.update(action.get("actions", {}))
        for step in (detail.trigger, *detail.actions.values()):
            props = defined[step.name].get("runtimeConfiguration", {}).get("secureData", {}).get("properties", [])
            assert set(props) == step.secure, (flow.template.name, step.name)


def test_large_tenant_is_cheap_to_build():
    start = time.perf_counter()
    big = Tenant.generate(3, environments=2, flows_per_env=100, runs_per_flow=250)
    assert big.total_runs == 50_000
    flow = big.flows[-1]
    assert len(big.runs(flow)) == 250 and big.run_detail(flow, big.runs(flow)[0].name)
    assert time.perf_counter() - start < 3


# --- API -----------------------------------------------------------------------------------------

def test_auth_and_api_version_are_required(api, tenant, anon):
    url = f"{api.api_url}{BASE}/environments"
    r = anon.get(url, params=V)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert anon.get(url, params=V, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert anon.get(url, headers=AUTH).status_code == 400
    assert anon.get(url, params={"api-version": "2020-01-01"}, headers=AUTH).status_code == 400
    envs = anon.get(url, params=V, headers=AUTH).json()["value"]
    assert [e["name"] for e in envs] == [e.name for e in tenant.environments]
    assert envs[0]["name"].startswith("Default-") and envs[0]["properties"]["isDefault"] is True


def test_flows_maker_and_admin_and_definition(api, tenant, client):
    env = tenant.environments[1]
    admin = follow(client, f"{api.api_url}{BASE}/scopes/admin/environments/{env.name}/v2/flows", {**V, "$top": 2})
    maker = follow(client, f"{api.api_url}{BASE}/environments/{env.name}/flows", V)
    assert [f["name"] for f in admin] == [f["name"] for f in maker] == [f.flow_id for f in env.flows]
    assert "definition" not in admin[0]["properties"]
    for path in (f"/environments/{env.name}", f"/scopes/admin/environments/{env.name}"):
        got = client.get(f"{api.api_url}{BASE}{path}/flows/{env.flows[0].flow_id}", params=V).json()
        definition = got["properties"]["definition"]
        assert definition["$schema"].endswith("workflowdefinition.json#")
        assert set(definition["parameters"]) == {"$connections", "$authentication"}


def test_runs_paging_returns_every_run_once_newest_first(client):
    t = Tenant.generate(11, environments=1, flows_per_env=1, runs_per_flow=123, now=NOW)
    flow = t.flows[0]
    with FakeFlowApi(t) as api:
        first = client.get(runs_url(api, flow), params=V).json()
        assert len(first["value"]) == 50 and "nextLink" in first
        for admin in (False, True):
            names = [r["name"] for r in follow(client, runs_url(api, flow, admin), {**V, "$top": 7})]
            assert names == [h.name for h in t.runs(flow)]
        starts = [r["properties"]["startTime"] for r in follow(client, runs_url(api, flow), V)]
        assert starts == sorted(starts, reverse=True)
        assert all(len(s) == 28 and s.endswith("Z") for s in starts)   # 7 fractional digits
        assert client.get(runs_url(api, flow), params={**V, "$top": "0"}).json()["error"]["code"] == \
            "InvalidTopInQueryString"
        assert len(client.get(runs_url(api, flow), params={**V, "$top": 999}).json()["value"]) == 123


def test_runs_filter_on_start_time_and_status(client):
    t = Tenant.generate(12, environments=1, flows_per_env=1, runs_per_flow=80, now=NOW, failed_fraction=0.3)
    flow = t.flows[0]
    runs = t.runs(flow)
    pivot = runs[40]
    with FakeFlowApi(t) as api:
        def names(flt):
            return [r["name"] for r in follow(client, runs_url(api, flow), {**V, "$filter": flt, "$top": 9})]

        ts = fmt_ticks(pivot.start)
        assert names(f"startTime ge {ts}") == [h.name for h in runs[:41]]
        assert names(f"startTime gt {ts}") == [h.name for h in runs[:40]]
        assert names(f"startTime lt {ts}") == [h.name for h in runs[41:]]
        failed = [h.name for h in runs[:41] if h.status == "Failed"]
        assert failed and names(f"Status eq 'Failed' and StartTime ge {ts}") == failed
        whole_second = ts[:19] + "Z"
        assert names(f"startTime ge {whole_second}") == [h.name for h in runs if h.start >= pivot.start // 10**7 * 10**7]
        r = client.get(runs_url(api, flow), params={**V, "$filter": "StartTime>2026-01-01"})
        assert r.status_code == 400


def test_run_expand_actions_repetitions_and_loop_semantics(api, tenant, client, anon):
    flow = flow_of(tenant, "loop_childflow")
    header = tenant.runs(flow)[-1]
    run_url = f"{runs_url(api, flow)}/{header.name}"
    plain = client.get(run_url, params=V).json()
    assert "actions" not in plain["properties"]
    run = client.get(f"{run_url}?api-version=2016-11-01&$expand=properties%2Factions").json()
    actions = run["properties"]["actions"]
    assert list(actions) == ["List_files", "Apply_to_each", "Upload_blob", "Run_a_Child_Flow"]
    inner = actions["Upload_blob"]
    detail = tenant.run_detail(flow, header.name)
    assert inner["repetitionCount"] == len(detail.actions["Upload_blob"].repetitions)
    assert "inputsLink" not in inner and "outputsLink" not in inner
    listed = follow(client, f"{run_url}/actions", V)          # page size 3: paged
    assert [a["name"] for a in listed] == list(actions)
    reps = follow(client, f"{run_url}/actions/Upload_blob/repetitions", V)   # page size 2
    assert [r["name"] for r in reps] == [f"{i:06d}" for i in range(inner["repetitionCount"])]
    assert reps[0]["properties"]["repetitionIndexes"] == [{"scopeName": "Apply_to_each", "itemIndex": 0}]
    scope = follow(client, f"{run_url}/actions/Apply_to_each/scopeRepetitions", V)
    assert len(scope) == inner["repetitionCount"] and "inputsLink" not in scope[0]["properties"]
    body = anon.get(reps[-1]["properties"]["inputsLink"]["uri"]).content
    rep_plants = [p for p in tenant.plants_for_run(flow.environment, flow.flow_id, header.name)
                  if p.repetition == reps[-1]["name"]]
    assert rep_plants and all(p.secret in body.decode() for p in rep_plants)


def test_errors_use_documented_codes(tenant, client):
    denied = tenant.environments[1]
    with FakeFlowApi(tenant, faults=Faults(denied_environments={denied.name})) as api:
        r = client.get(f"{api.api_url}{BASE}/environments/{denied.name}/flows", params=V)
        assert r.status_code == 403 and r.json()["error"]["code"] == "EnvironmentAccessDenied"
        flow = tenant.environments[0].flows[0]
        r = client.get(f"{runs_url(api, flow)}/08585981115186985105550762688CP233", params=V)
        assert r.status_code == 404
        err = r.json()["error"]
        assert err["code"] == "AzureResourceManagerRequestFailed" and "WorkflowRunNotFound" in err["message"]


def test_secured_links_have_no_uri(api, tenant, client):
    seen = set()
    for flow in tenant.flows:
        if flow.template.name not in ("vault_secured", "vault_outputs_visible", "secure_trigger"):
            continue
        run = client.get(f"{runs_url(api, flow)}/{tenant.runs(flow)[-1].name}",
                         params={**V, "$expand": "properties/actions"}).json()["properties"]
        # Secured: Call_API's inputs in the vault flows, the trigger's outputs in secure_trigger.
        props, key = (run["actions"]["Call_API"], "inputsLink") if "Call_API" in run["actions"] \
            else (run["trigger"], "outputsLink")
        link = props.get(key, "absent")
        style = flow.secured_link_style
        seen.add(style)
        if style == "secureData":
            assert "uri" not in link and link["secureData"]["properties"] in (["inputs"], ["outputs"])
            assert link["contentHash"]["algorithm"] == "md5" and link["contentSize"] > 0
        else:
            assert link == ("absent" if style == "absent" else None)
    assert seen == {"secureData", "null", "absent"}


# --- content -------------------------------------------------------------------------------------

def test_full_crawl_matches_ground_truth_and_fetches_each_link_once(tenant, client, anon):
    """Fetch every link of every run: each visible plant is in its body; secured ones are unreachable."""
    with FakeFlowApi(tenant) as api:
        bodies: dict[tuple, str] = {}
        for flow in tenant.flows:
            for run in follow(client, runs_url(api, flow, admin=True), V):
                expanded = client.get(f"{runs_url(api, flow)}/{run['name']}",
                                      params={**V, "$expand": "properties%2Factions"}).json()["properties"]
                holders = [(expanded["trigger"]["name"], None, "trigger", expanded["trigger"])]
                for name, props in expanded["actions"].items():
                    if "repetitionCount" in props:
                        url = f"{runs_url(api, flow)}/{run['name']}/actions/{name}/repetitions"
                        holders += [(name, r["name"], "action", r["properties"]) for r in follow(client, url, V)]
                    else:
                        holders.append((name, None, "action", props))
                for action, rep, prefix, props in holders:
                    for side in ("inputs", "outputs"):
                        link = props.get(f"{side}Link")
                        if link and "uri" in link:
                            r = anon.get(link["uri"])
                            assert r.status_code == 200
                            assert len(r.content) == link["contentSize"]
                            assert base64.b64encode(hashlib.md5(r.content).digest()).decode() == link["contentHash"]["value"]
                            bodies[(run["name"], action, rep, f"{prefix}_{side}")] = decoded_text(r.content)
        for p in tenant.planted:
            key = (p.run_id, p.action, p.repetition, p.side)
            if p.secured:
                assert key not in bodies, p
            else:
                assert p.secret in bodies[key] and p.carrier in bodies[key], p
        assert set(api.stats.content_fetches.values()) == {1}
        assert api.content_auth_headers_seen == []


def test_content_needs_no_auth_and_records_auth_headers(api, tenant, client, anon):
    flow = flow_of(tenant, "orders_api")
    run = client.get(runs_url(api, flow), params=V).json()["value"][0]
    uri = run["properties"]["trigger"]["outputsLink"]["uri"]
    assert urlsplit(uri).hostname == api.content_host == "localhost"
    q = parse_qs(urlsplit(uri).query)
    assert q["sv"] == ["1.0"] and q["sp"][0].endswith("/contents/TriggerOutputs/read") and len(q["sig"][0]) == 43
    assert len(q["se"][0]) == 28
    before = len(api.content_auth_headers_seen)
    assert anon.get(uri).status_code == 200
    assert len(api.content_auth_headers_seen) == before
    assert anon.get(uri, headers=AUTH).status_code == 200
    assert api.content_auth_headers_seen[before:] == ["Bearer test-token"]
    bad = uri[:-3] + ("AAA" if not uri.endswith("AAA") else "BBB")
    r = anon.get(bad)
    assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
    past = uri.replace(q["se"][0][:4], "2001", 1)
    assert anon.get(past).status_code == 403


# --- faults --------------------------------------------------------------------------------------

def get_with_retries(client, url, params=None, attempts=6):
    """A minimal retrying client: what the scanner's HTTP layer is expected to do."""
    failures = []
    for _ in range(attempts):
        try:
            r = client.get(url, params=params)
        except httpx.TransportError as e:
            failures.append(type(e).__name__)
            continue
        if r.status_code >= 500:
            failures.append(r.status_code)
            continue
        try:
            return r.json(), failures
        except ValueError:
            failures.append("malformed")
    raise AssertionError(f"no success after {failures}")


def test_transient_errors_drops_and_malformed_bodies_recover(tenant, client, anon):
    faults = Faults(seed=1, error_rate=0.3, drop_rate=0.1, malformed_rate=0.2)
    with FakeFlowApi(tenant, faults=faults) as api:
        failures = []
        for flow in tenant.flows:
            page, f = get_with_retries(client, runs_url(api, flow), V)
            failures += f
            for run in page["value"]:
                link = run["properties"]["trigger"].get("outputsLink")
                if link and "uri" in link:
                    _, f = get_with_retries(anon, link["uri"])
                    failures += f
        assert {500, 502, 503} & set(failures) and "RemoteProtocolError" in failures and "malformed" in failures
        assert api.stats.server_errors and api.stats.drops and api.stats.malformed


def test_rate_limit_sends_429_with_retry_after(tenant, client):
    url = f"http://127.0.0.1:{{}}{BASE}/environments"
    with FakeFlowApi(tenant, faults=Faults(rate_limit_rps=2, burst=3)) as api:
        codes = [client.get(url.format(api.api_url.rsplit(":", 1)[1]), params=V) for _ in range(6)]
        limited = [r for r in codes if r.status_code == 429]
        assert [r.status_code for r in codes[:3]] == [200] * 3 and limited
        assert limited[0].headers["Retry-After"].isdigit() and int(limited[0].headers["Retry-After"]) >= 1
        assert limited[0].json()["error"]["code"] == "TooManyRequests"
        time.sleep(1.0)
        assert client.get(f"{api.api_url}{BASE}/environments", params=V).status_code == 200
        assert api.stats.throttled == len(limited)
    with FakeFlowApi(tenant, faults=Faults(burst_429_every=3, burst_429_length=2, http_date_retry_after=True)) as api:
        codes = [client.get(f"{api.api_url}{BASE}/environments", params=V) for _ in range(6)]
        assert [r.status_code for r in codes] == [200, 200, 429, 429, 200, 429]
        assert parsedate_to_datetime(codes[2].headers["Retry-After"]) > datetime.now(timezone.utc)


def test_links_expire_once_then_fresh_links_work(tenant, client, anon):
    flow = flow_of(tenant, "orders_api")
    with FakeFlowApi(tenant, faults=Faults(expire_links_once=True)) as api:
        run_url = f"{runs_url(api, flow)}/{tenant.runs(flow)[0].name}"
        old = client.get(run_url, params=V).json()["properties"]["trigger"]["outputsLink"]["uri"]
        r = anon.get(old)
        assert r.status_code == 403 and "expired" in r.json()["error"]["message"]
        assert anon.get(old).status_code == 403            # the same URL stays expired
        fresh = client.get(run_url, params=V).json()["properties"]["trigger"]["outputsLink"]["uri"]
        assert fresh != old and anon.get(fresh).status_code == 200
        assert api.stats.expired_links == 2
    run = tenant.runs(flow)[0].name
    with FakeFlowApi(tenant, faults=Faults(always_expired_links={run})) as api:
        for _ in range(2):
            uri = client.get(f"{runs_url(api, flow)}/{run}", params=V).json()["properties"]["trigger"]["outputsLink"]["uri"]
            assert anon.get(uri).status_code == 403


def test_expand_can_omit_links_that_the_actions_list_has(tenant, client):
    flow = flow_of(tenant, "token_client")
    with FakeFlowApi(tenant, faults=Faults(expand_missing_links=1.0)) as api:
        run_url = f"{runs_url(api, flow)}/{tenant.runs(flow)[-1].name}"
        expanded = client.get(run_url, params={**V, "$expand": "properties/actions"}).json()["properties"]["actions"]
        assert all("inputsLink" not in a for a in expanded.values())
        listed = follow(client, f"{run_url}/actions", V)
        assert all("uri" in a["properties"]["inputsLink"] for a in listed)


def test_maker_sees_a_subset_and_running_runs_have_no_end(client):
    t = Tenant.generate(5, environments=1, flows_per_env=10, runs_per_flow=3, now=NOW,
                        maker_visible_fraction=0.5, running_fraction=1.0)
    env = t.environments[0]
    with FakeFlowApi(t) as api:
        maker = follow(client, f"{api.api_url}{BASE}/environments/{env.name}/flows", V)
        assert 0 < len(maker) < 10 and {f["name"] for f in maker} == {f.flow_id for f in env.flows if f.maker_visible}
        hidden = next(f for f in env.flows if not f.maker_visible)
        assert client.get(runs_url(api, hidden), params=V).status_code == 404
        assert client.get(runs_url(api, hidden, admin=True), params=V).status_code == 200
        newest = client.get(runs_url(api, env.flows[0], admin=True), params=V).json()["value"][0]["properties"]
        assert newest["status"] == "Running" and "endTime" not in newest


# --- Key Vault -----------------------------------------------------------------------------------

def test_vault_lists_pages_and_gets(api, tenant, client, anon):
    assert anon.get(f"{api.vault_url}/secrets", params={"api-version": "7.4"}).status_code == 401
    first = client.get(f"{api.vault_url}/secrets", params={"api-version": "7.4"}).json()
    assert len(first["value"]) == 25 and "$skiptoken=" in first["nextLink"]
    listed = follow_vault(client, f"{api.vault_url}/secrets?api-version=7.4&maxresults=7")
    assert [i["id"].rsplit("/", 1)[1] for i in listed] == list(tenant.vault)
    assert all("value" not in i for i in listed)
    values = {}
    for item in listed:
        name = item["id"].rsplit("/", 1)[1]
        versions = follow_vault(client, f"{api.vault_url}/secrets/{name}/versions?api-version=7.4")
        assert len(versions) == len(tenant.vault[name].versions)
        r = client.get(f"{api.vault_url}/secrets/{name}", params={"api-version": "7.4"})
        if item["attributes"]["enabled"]:
            values[name] = r.json()["value"]
            assert client.get(versions[0]["id"], params={"api-version": "7.4"}).status_code == 200
        else:
            assert r.status_code == 403 and r.json()["error"]["innererror"]["code"] == "SecretDisabled"
    assert values == tenant.vault_secrets and len(values) == len(tenant.vault) - 1


def follow_vault(client, url) -> list[dict]:
    items = []
    while url:
        page = client.get(url).json()
        items += page["value"]
        url = page.get("nextLink")
    return items
