"""PA007 read live from Dataverse (`--dataverse-url`): the real CLI against the fake's Dataverse listener,
and the loader's paging against a scripted loopback server."""
from __future__ import annotations

import json
from dataclasses import replace

import click
import duckdb
import pytest

from scanner.api.dataverse import API_PATH, DataverseTarget, parse_target
from scanner.net.errors import ApiError
from scanner.pipeline.environment_variables import scan_environment_variables
from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.loopback import ScriptedServer, http_client, ok, run

ENV_PA007 = ("SELECT action, severity, status, fingerprint, preview, scan_id, first_scan_id, side, run_id "
             "FROM findings WHERE rule_id = 'PA007' AND flow_id IS NULL AND environment = ? ORDER BY action")


@pytest.fixture(scope="module")
def small() -> Tenant:
    return Tenant.generate(seed=5, environments=1, flows_per_env=2, runs_per_flow=1)


def _all_cells(db) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t[0] for t in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_type = 'BASE TABLE'").fetchall()]
        return " ".join(str(v) for t in tables for row in con.execute(f"SELECT * FROM {t}").fetchall() for v in row)
    finally:
        con.close()


def test_sweep_reports_plain_text_env_var_once_and_never_stores_it(small, tmp_path):
    db = tmp_path / "dv.duckdb"
    env_name = small.environments[0].name
    secret = next(iter(small.env_variable_secrets))
    with FakeFlowApi(small) as api:
        env = cli_env(api, db)
        first = flowleaks("sweep", "--as-admin", "--quiet", "--dataverse-url", f"{env_name}={api.dataverse_url}",
                          env=env)
        assert first.code == 1, first.stderr
        assert "environment variables: 4 definitions" in first.stdout
        found = rows(db, ENV_PA007, [env_name])
        assert [r[0] for r in found] == ["xyz_ApiPassword"]   # not the Secret-typed one, not xyz_BaseUrl
        action, severity, status, fingerprint, preview, scan1, first_scan, side, run_id = found[0]
        assert (severity, status, side, run_id) == ("high", "open", "definition", None)
        assert fingerprint and secret not in (preview or "")
        assert api.stats.by_kind["dataverse"] == 2            # 4 definitions at 2 a page: nextLink followed

        second = flowleaks("sweep", "--as-admin", "--quiet", "--dataverse-url", f"{env_name}={api.dataverse_url}",
                           env=env)
        assert second.code == 1, second.stderr
        again = rows(db, ENV_PA007, [env_name])
        assert len(again) == 1 and again[0][3] == fingerprint and again[0][2] == "open"
        assert again[0][5] != scan1 and again[0][6] == scan1   # same finding, seen by the second scan

        exported = tmp_path / "findings.jsonl"
        export = flowleaks("export", "--format", "jsonl", "--out", str(exported), env=env)
        assert export.code == 0, export.stderr
        query = flowleaks("query", "SELECT * FROM findings WHERE rule_id = 'PA007'", "--format", "json", env=env)
        assert query.code == 0 and "xyz_ApiPassword" in query.stdout

        # the variable is fixed (now a Secret backed by Key Vault): the next sweep resolves the finding
        small.env_variables[0] = replace(small.env_variables[0], type=100000005, value=small.env_variables[1].value,
                                         plaintext_secret=False)
        try:
            third = flowleaks("sweep", "--as-admin", "--quiet", "--dataverse-url",
                              f"{env_name}={api.dataverse_url}", env=env)
        finally:
            small._make_env_variables()
        assert third.code == 1, third.stderr  # PA007 is resolved; the flows' hard-coded secrets are not
        assert [r[2] for r in rows(db, ENV_PA007, [env_name])] == ["resolved"]

    for text in (first.stdout, first.stderr, second.stdout, second.stderr, export.stdout, query.stdout,
                 third.stdout, third.stderr):
        assert secret not in text
    assert secret.encode() not in db.read_bytes() and secret.encode() not in exported.read_bytes()
    assert secret not in _all_cells(db)   # DuckDB may compress strings on disk: read every cell back too
    assert json.loads(exported.read_text().splitlines()[0])  # the export is real JSONL


def test_denied_dataverse_is_recorded_and_the_scan_goes_on(small, tmp_path):
    db = tmp_path / "denied.duckdb"
    with FakeFlowApi(small, faults=Faults(dataverse_denied=True)) as api:
        # `scan` (nightly) takes the option too; a bare URL records the environment as the URL's host
        r = flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db, FLOWLEAKS_DATAVERSE_URL=api.dataverse_url))
    assert r.code in (1, 3), r.stderr   # findings in run history, or incomplete: never "clean"
    skipped = rows(db, "SELECT environment, flow_id, side, reason, detail FROM skipped "
                       "WHERE reason = 'dataverse unavailable'")
    assert len(skipped) == 1
    environment, flow_id, side, _, detail = skipped[0]
    assert (environment, flow_id, side) == ("127.0.0.1", None, "definition")
    assert "403" in detail and "prvReadEnvironmentVariableDefinition" in detail
    assert rows(db, "SELECT count(*) FROM runs")[0][0] > 0                 # the sweep went on
    assert rows(db, "SELECT complete FROM scans")[0][0] is False
    assert rows(db, "SELECT count(*) FROM findings WHERE rule_id = 'PA007' AND flow_id IS NULL")[0][0] == 0


def test_unusable_dataverse_url_is_a_usage_error(small, tmp_path):
    with FakeFlowApi(small) as api:
        r = flowleaks("sweep", "--as-admin", "--quiet", "--dataverse-url", "http://dataverse.example.com",
                      env=cli_env(api, tmp_path / "u.duckdb"))
    assert r.code == 2 and "--dataverse-url" in r.stderr


# -- the option's syntax ------------------------------------------------------------------------------

def test_parse_target_forms():
    assert parse_target("https://org.crm4.dynamics.com/") == DataverseTarget("org.crm4.dynamics.com",
                                                                             "https://org.crm4.dynamics.com")
    t = parse_target("Default-1234=https://Org.crm.dynamics.com/api/data/v9.2/?x=1")
    assert t == DataverseTarget("Default-1234", "https://Org.crm.dynamics.com")
    assert t.audience == "https://Org.crm.dynamics.com"
    assert parse_target("http://127.0.0.1:8080").environment == "127.0.0.1"
    for bad in ("http://org.crm.dynamics.com", "org.crm.dynamics.com", "https://u:p@org.crm.dynamics.com",
                "=https://org.crm.dynamics.com"):
        with pytest.raises(Exception):
            parse_target(bad)


def test_option_takes_repeats_and_a_comma_separated_variable():
    from click.testing import CliRunner

    from scanner.cli.options import dataverse_options

    @click.command()
    @dataverse_options
    def cmd(dataverse_urls):
        click.echo(";".join(f"{t.environment}={t.url}" for t in dataverse_urls))

    runner = CliRunner()
    r = runner.invoke(cmd, ["--dataverse-url", "A=https://a.crm.dynamics.com", "--dataverse-url",
                            "https://b.crm.dynamics.com"])
    assert r.output.strip() == "A=https://a.crm.dynamics.com;b.crm.dynamics.com=https://b.crm.dynamics.com"
    r = runner.invoke(cmd, [], env={"FLOWLEAKS_DATAVERSE_URL": "A=https://a.crm.dynamics.com,https://b.crm.dynamics.com"})
    assert r.output.strip() == "A=https://a.crm.dynamics.com;b.crm.dynamics.com=https://b.crm.dynamics.com"


# -- the loader's paging against a scripted loopback server ---------------------------------------------

def _definition(i: int, value: str | None = None, kind: int = 100000000) -> dict:
    row = {"schemaname": f"xyz_Setting{i}", "displayname": f"Setting {i}", "type": kind, "defaultvalue": None}
    row["environmentvariabledefinition_environmentvariablevalue"] = [] if value is None else [{"value": value}]
    return row


def _paged(pages: list[list[dict]], link_for=None):
    """Pages served at ?...&$skiptoken=<n>; link_for(n, server_url) builds the nextLink to page n."""
    def handler(method, path, headers):
        if headers.get("authorization") != "Bearer tok":
            return 401, {}, b""
        n = int(path.rsplit("$skiptoken=", 1)[1]) if "$skiptoken=" in path else 0
        body = {"value": pages[n]}
        if n + 1 < len(pages):
            body["@odata.nextLink"] = (link_for(n + 1) if link_for else
                                       f"{API_PATH}/environmentvariabledefinitions?$select=schemaname&$skiptoken={n + 1}")
        return ok(body)
    return handler


def test_loader_follows_nextlink_and_reads_every_page():
    pages = [[_definition(0), _definition(1)], [_definition(2, "Hunter2024!xyz")],
             [_definition(3, "https://example.org"), {"schemaname": "xyz_AdminPassword", "type": 100000000,
                                                       "defaultvalue": "Autumn2019!qqq"}]]
    with ScriptedServer(_paged(pages)) as srv:
        async def go():
            async with http_client("tok") as http:
                return await scan_environment_variables(http, parse_target(f"E={srv.url}"), engine=None,
                                                        key=b"k")
        result = run(go())
    assert result.complete and result.pages == 3 and result.definitions == 5 and result.values == 2
    first = srv.requests[0][1]
    assert first.startswith(f"{API_PATH}/environmentvariabledefinitions?$select=schemaname,")
    assert "$expand=environmentvariabledefinition_environmentvariablevalue($select=value)" in first
    assert all(r[2]["authorization"] == "Bearer tok" for r in srv.requests)
    assert {(f.action, f.severity) for f in result.findings} == {("xyz_AdminPassword", "high")}
    assert result.findings[0].json_path.endswith(".defaultvalue")
    assert "Autumn2019!qqq" not in repr(result)


def test_loader_refuses_a_foreign_nextlink_and_stops_at_max_pages():
    pages = [[_definition(0)], [_definition(1)], [_definition(2)]]
    with ScriptedServer(_paged(pages, lambda n: f"http://localhost:1/elsewhere?$skiptoken={n}")) as srv:
        async def go():
            async with http_client("tok") as http:
                return await scan_environment_variables(http, parse_target(srv.url), engine=None)
        result = run(go())
    assert not result.complete and result.pages == 1 and result.definitions == 1
    assert "nextLink refused" in result.errors[0] and "skiptoken" not in result.errors[0]

    with ScriptedServer(_paged(pages)) as srv:
        async def go_limited():
            async with http_client("tok") as http:
                return await scan_environment_variables(http, parse_target(srv.url), engine=None, max_pages=2)
        result = run(go_limited())
    assert result.pages == 2 and result.definitions == 2 and "paging stopped after 2 pages" in result.errors[0]


def test_loader_raises_on_a_denied_org():
    def denied(method, path, headers):
        return 403, {"Content-Type": "application/json"}, json.dumps(
            {"error": {"code": "0x80040220", "message": "missing privilege"}}).encode()

    with ScriptedServer(denied) as srv:
        async def go():
            async with http_client("tok") as http:
                return await scan_environment_variables(http, parse_target(srv.url), engine=None)
        with pytest.raises(ApiError) as err:
            run(go())
    assert err.value.status == 403 and len(srv.requests) == 1   # a 403 is not retried
