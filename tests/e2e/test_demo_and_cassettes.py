"""The bundled sample tenant replays over loopback; `flowleaks record` scrubs what it records; a
recorded cassette replays into the same findings, on any day."""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from scanner.replay.cassette import Cassette, parse_time
from scanner.replay.server import ReplayServer
from tests.e2e.conftest import KEY, ROOT, cli_env, flowleaks, plant_fingerprints, rows
from tests.fakeapi import FakeFlowApi, Tenant

SAMPLE = ROOT / "cassettes" / "sample-tenant.yaml"
FINDINGS = "SELECT finding_id, fingerprint, rule_id FROM findings"  # no times: run_start moves with the clock


def findings(db: Path) -> set[tuple]:
    return set(rows(db, FINDINGS))


def run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    # one fingerprint key for every run, so two demo databases' findings compare by id and fingerprint
    return subprocess.run([sys.executable, "-m", "scanner.replay.demo", "--out", str(out), *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FLOWLEAKS_FINGERPRINT_KEY": KEY})


def serve(*cmd: str) -> tuple[subprocess.Popen, list[str]]:
    """Start a loopback server process; return it and the lines it prints before serving."""
    p = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines = []
    for line in p.stdout:
        if line.startswith("#"):  # the "serving; Ctrl-C to stop" line ends the variables
            break
        lines.append(line.rstrip("\n"))
    else:
        p.wait(10)
        pytest.fail(f"{cmd} stopped before serving: {p.stderr.read()[-2000:]}")
    return p, lines


def exported(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        assert re.fullmatch(r"export [A-Z_]+=\S+", line), line
        name, value = shlex.split(line[len("export "):])[0].split("=", 1)
        env[name] = value
    return env


@pytest.fixture(scope="module")
def demo_today(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    p = run_demo(out)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "Open findings by flow" in p.stdout and "Error" not in p.stdout
    # the queries the demo echoes paste into a shell from the checkout as printed
    echoed = [ln[2:] for ln in p.stdout.splitlines() if ln.startswith("$ .venv/bin/flowleaks query ")]
    assert len(echoed) == 3, p.stdout[:2000]
    for cmd in echoed:
        pasted = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert pasted.returncode == 0, (cmd, pasted.stderr)
    return out / "demo.duckdb"


def test_sweep_against_the_replayed_sample_tenant_finds_secrets(tmp_path):
    db = tmp_path / "demo.duckdb"
    with ReplayServer(Cassette.load(SAMPLE), token="demo-token") as server:
        env = {**server.env(), "FLOWLEAKS_ACCESS_TOKEN": "demo-token", "FLOWLEAKS_DB": str(db)}
        result = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet", env=env)
        assert server.content_auth_headers_seen == []
        assert server.misses == [] and server.expired == []
    assert result.code == 1, result.stdout + result.stderr
    assert rows(db, "SELECT count(DISTINCT flow_id), count(DISTINCT environment) FROM runs") == [(10, 2)]
    rules = {r[0] for r in rows(db, "SELECT DISTINCT rule_id FROM findings")}
    assert {"github-token", "secret-source-output", "PA001"} <= rules


def test_make_demo_runs_end_to_end_and_every_readme_query_runs_on_its_database(demo_today):
    # the demo ran into a temporary folder (the fixture): the user's demo-output/ is not the tests'
    assert ROOT / "demo-output" not in demo_today.parents
    readme = (ROOT / "README.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", readme, re.S)
    assert len(queries) >= 8
    for sql in queries:
        r = flowleaks("query", sql, "--db", str(demo_today), "--format", "csv", env={})
        assert r.code == 0, (sql, r.stderr)


def test_the_demo_shows_the_same_findings_with_the_clock_a_year_ahead(demo_today, tmp_path):
    # The cassette's links expire hours after recording and its runs are weeks old: replayed as
    # recorded a year later, every link would be refused (exit 3) or every run out of any window.
    later = (datetime.now(timezone.utc) + timedelta(days=366)).strftime("%Y-%m-%dT%H:%M:%SZ")
    p = run_demo(tmp_path, "--now", later)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    today = findings(demo_today)
    assert len(today) > 50
    assert findings(tmp_path / "demo.duckdb") == today
    # the runs moved with the replay's clock: a year later, they are a year younger
    shift = rows(tmp_path / "demo.duckdb", "SELECT max(start_time) FROM runs")[0][0] - \
        rows(demo_today, "SELECT max(start_time) FROM runs")[0][0]
    assert timedelta(days=365) < shift < timedelta(days=367)


def test_a_default_window_sweep_of_the_replay_sees_the_runs_the_recording_sweep_saw(tmp_path):
    # The sweep's 30-day window comes from the scanner's own clock; the replay moves the runs by
    # now - recorded_at, so the window selects the runs it selected when recorded, on any day.
    cassette = Cassette.load(SAMPLE)
    anchor = parse_time(cassette.recorded_at)
    starts = {m.group(1): parse_time(m.group(2)) for i in cassette.interactions if "/runs?" in i.uri
              for m in re.finditer(r'"name":"(\d{20,}CU\d+)".{0,400}?"startTime":"([^"]+)"', i.body)}
    expected = {run for run, start in starts.items() if start >= anchor - timedelta(days=30)}
    assert 0 < len(expected) < len(starts)  # the window really cuts the recorded runs
    db = tmp_path / "w.duckdb"
    with ReplayServer(cassette) as server:
        result = flowleaks("sweep", "--as-admin", "--quiet", env={**server.env(), "FLOWLEAKS_DB": str(db)})
        assert server.misses == [] and server.expired == []
    assert result.code == 1, result.stderr
    assert {r for (r,) in rows(db, "SELECT run_id FROM runs")} == expected


def test_recorded_cassette_holds_no_secret_in_any_encoding(tmp_path):
    tenant = Tenant.generate(seed=5, environments=1, flows_per_env=10, runs_per_flow=2)
    out = tmp_path / "repro.yaml"
    with FakeFlowApi(tenant) as api:
        p = subprocess.run([sys.executable, "-m", "scanner.cli", "record", "--as-admin", "--out", str(out)],
                           env={**os.environ, **api.env_vars()}, cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    import yaml
    recorded = yaml.safe_load(text)["interactions"]
    assert recorded and all(i["request"]["headers"] == {} for i in recorded)  # no Authorization header kept
    assert api.token not in text
    assert "sig=SCRUBBED" in text
    secrets = tenant.secrets(visible_only=True)
    assert secrets
    for s in secrets:
        b64 = base64.b64encode(s.encode()).decode()
        assert s not in text and b64[2:-4] not in text, s[:4]
    # and the scrubbed cassette still replays into a sweep, from the fake's loopback hosts as recorded
    with ReplayServer(Cassette.load(out)) as server:
        result = flowleaks("sweep", "--as-admin", "--quiet", env={**server.env(), "FLOWLEAKS_DB": str(tmp_path / "r.duckdb")})
        assert server.misses == []
    # complete (every recorded interaction is there); the definitions' structural risks (an unsecured
    # Key Vault "Get secret") survive scrubbing, so there are open findings
    assert result.code == 1, result.stderr
    assert rows(tmp_path / "r.duckdb", "SELECT complete FROM scans") == [(True,)]


def test_a_cassette_recorded_from_the_loopback_fake_replays_into_the_same_findings(tmp_path):
    tenant = Tenant.generate(seed=6, environments=2, flows_per_env=5, runs_per_flow=2)
    out = tmp_path / "fake.yaml"
    with FakeFlowApi(tenant) as api:
        live = flowleaks("sweep", "--as-admin", "--quiet", env=cli_env(api, tmp_path / "live.duckdb"))
        # recorded as served: http://127.0.0.1:<port> and http://localhost:<port>, no origin mapping
        rec = flowleaks("record", "--as-admin", "--keep-secrets", "--out", out, env=cli_env(api, tmp_path / "x"))
    assert live.code == 1 and rec.code == 0, live.stderr + rec.stderr
    assert "http://127.0.0.1:" in out.read_text() and "http://localhost:" in out.read_text()
    with ReplayServer(Cassette.load(out)) as server:
        env = {**server.env(), "FLOWLEAKS_FINGERPRINT_KEY": KEY, "FLOWLEAKS_DB": str(tmp_path / "replay.duckdb")}
        replayed = flowleaks("sweep", "--as-admin", "--quiet", env=env)
        assert server.misses == []
    assert replayed.code == 1, replayed.stderr  # not 3: every request was answered
    assert rows(tmp_path / "replay.duckdb", "SELECT complete FROM scans") == [(True,)]
    # A cassette never holds a SAS `sig` (scrubbed even with --keep-secrets): a secret that is a
    # `sig` value cannot survive the round trip; everything else must come back as it was found.
    no_sig = FINDINGS + " WHERE json_path NOT LIKE '%?sig'"
    expected = set(rows(tmp_path / "live.duckdb", no_sig))
    assert len(expected) > 20
    assert set(rows(tmp_path / "replay.duckdb", no_sig)) == expected


def test_replay_help_is_usage_not_a_traceback():
    p = subprocess.run([sys.executable, "-m", "scanner.replay", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m scanner.replay"), p.stdout + p.stderr
    bad = subprocess.run([sys.executable, "-m", "scanner.replay", str(ROOT / "no-such.yaml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "no-such.yaml" in bad.stderr


def test_replay_and_fake_print_the_same_export_lines_and_they_point_a_sweep_at_it(tmp_path):
    fake, fake_lines = serve("-m", "tests.fakeapi", "--environments", "1", "--flows", "2", "--runs", "1")
    replay, replay_lines = serve("-m", "scanner.replay", str(SAMPLE))
    try:
        fake_env, replay_env = exported(fake_lines), exported(replay_lines)
        flowleaks_vars = [n for n in fake_env if n.startswith("FLOWLEAKS_")]
        assert flowleaks_vars == list(replay_env) and len(replay_env) == 3
        db = tmp_path / "s.duckdb"
        result = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet", env={**replay_env, "FLOWLEAKS_DB": str(db)})
    finally:
        for p in (fake, replay):
            p.terminate()
            p.wait(10)
    assert result.code == 1, result.stderr
    assert rows(db, "SELECT count(DISTINCT flow_id) FROM runs") == [(10,)]


def test_the_fake_writes_its_ground_truth_and_a_sweep_finds_it(tmp_path):
    truth_file = tmp_path / "truth.json"
    fake, lines = serve("-m", "tests.fakeapi", "--seed", "9", "--environments", "1", "--flows", "6",
                        "--runs", "2", "--truth", str(truth_file))
    try:
        db = tmp_path / "t.duckdb"
        result = flowleaks("sweep", "--as-admin", "--quiet",
                           env={**exported(lines), "FLOWLEAKS_FINGERPRINT_KEY": KEY, "FLOWLEAKS_DB": str(db)})
    finally:
        fake.terminate()
        fake.wait(10)
    assert result.code == 1, result.stderr
    truth = json.loads(truth_file.read_text())
    assert truth["total_runs"] == 12 and len(truth["flows"]) == 6
    scanned = {r for (r,) in rows(db, "SELECT run_id FROM runs")}
    found = {tuple(r[:-1]): r[-1] for r in rows(
        db, "SELECT run_id, action, side, string_agg(fingerprint, ',') FROM findings GROUP BY ALL")}
    plants = [p for p in truth["planted"] if p["run_id"] in scanned]
    assert len(plants) > 10

    def hit(p) -> bool:
        class P:  # plant_fingerprints reads .secret
            secret = p["secret"]
        return bool(plant_fingerprints(P) & set(found.get((p["run_id"], p["action"], p["side"]), "").split(",")))

    assert [p["kind"] for p in plants if not p["secured"] and not hit(p)] == []
    assert [p["kind"] for p in plants if p["secured"] and hit(p)] == []


def test_a_recorded_cassette_keeps_no_paging_token_and_still_replays_page_by_page(tmp_path):
    """$skiptoken cursors may encode names and query state: pseudonyms in the cassette, the same in the
    request that used one and the nextLink that gave it, so paging still replays."""
    tenant = Tenant.generate(seed=5, environments=1, flows_per_env=10, runs_per_flow=2)
    out = tmp_path / "paged.yaml"
    with FakeFlowApi(tenant, runs_page_size=1, flows_page_size=3) as api:
        p = subprocess.run([sys.executable, "-m", "scanner.cli", "record", "--as-admin", "--out", str(out)],
                           env={**os.environ, **api.env_vars()}, cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        direct = flowleaks("sweep", "--as-admin", "--quiet", env={**api.env_vars(), "FLOWLEAKS_DB": str(tmp_path / "d.duckdb")})
    import yaml

    uris = [i["request"]["uri"] for i in yaml.safe_load(out.read_text())["interactions"]]
    paged = [u for u in uris if re.search(r"(?:\$|%24)skiptoken=", u, re.I)]
    assert paged and all(re.search(r"(?:\$|%24)skiptoken=SCRUBBED-page-\d+(?:&|$)", u, re.I) for u in paged)
    with ReplayServer(Cassette.load(out)) as server:
        replayed = flowleaks("sweep", "--as-admin", "--quiet", env={**server.env(), "FLOWLEAKS_DB": str(tmp_path / "r.duckdb")})
        assert server.misses == []
    assert replayed.code == direct.code == 1, replayed.stderr
    assert rows(tmp_path / "r.duckdb", "SELECT complete FROM scans") == [(True,)]
    count = "SELECT count(*) FROM runs"
    assert rows(tmp_path / "r.duckdb", count) == rows(tmp_path / "d.duckdb", count)
