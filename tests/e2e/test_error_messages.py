"""Errors that name their cause in one line, at once, and checks that fail before the work (issue 10).

Every case runs the installed `flowleaks` as a subprocess and checks the exit code and the line.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Tenant

# Nothing here may read the caller's credentials or proxy settings.
CLEAN = {k: "" for k in os.environ if k.startswith("FLOWLEAKS_")} | {
    "HTTPS_PROXY": "", "https_proxy": "", "HTTP_PROXY": "", "http_proxy": "", "NO_PROXY": "", "no_proxy": "",
    "SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}


@pytest.fixture(scope="module")
def small() -> Tenant:
    return Tenant.generate(seed=5, environments=1, flows_per_env=2, runs_per_flow=1)


def run(*args, **env):
    return flowleaks(*args, env={**CLEAN, **env}, timeout=60)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "unexpected error" not in stderr, stderr
    return lines[0]


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RecordingProxy:
    """Answers every request 403 after noting its first line: shows what a proxy gets to see."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.seen.append(conn.recv(65536))
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def close(self):
        self.sock.close()


@pytest.fixture
def proxy():
    p = RecordingProxy()
    yield p
    p.close()


# -- 1. expected failures print their own message ------------------------------------------------

def test_no_credentials_is_a_usage_error_naming_what_to_set(tmp_path):
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb")
    assert p.code == 2
    line = one_line(p.stderr)
    assert line.startswith("flowleaks: no credentials: set FLOWLEAKS_ACCESS_TOKEN"), line
    assert not (tmp_path / "f.duckdb").exists()  # found before the database was touched


def test_a_missing_tenant_id_is_said_before_any_request(tmp_path):
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb", "--auth", "client-secret", "--client-id", "app",
            FLOWLEAKS_CLIENT_SECRET="s3cr3t-value-xyz")
    assert p.code == 2
    assert one_line(p.stderr) == ("flowleaks: client-secret: a tenant id is required "
                                  "(--tenant-id or FLOWLEAKS_TENANT_ID)")


def test_a_rejected_token_ends_the_scan_at_once_with_the_likely_fix(small, tmp_path):
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(small) as api:
        env = {**cli_env(api, db), "FLOWLEAKS_ACCESS_TOKEN": "not-the-right-token-123"}
        p = run("sweep", "--as-admin", "--quiet", **env)
        requests = api.stats.requests
        host = api.api_url.split("://")[1].split("/")[0]
    assert p.code == 4
    line = one_line(p.stderr)
    assert line.startswith(f"flowleaks: token rejected by {host}: 401 InvalidAuthenticationToken: "), line
    assert "likely fix: the token must be for the Flow API (audience https://service.flow.microsoft.com)" in line
    assert "not-the-right-token-123" not in p.stderr + p.stdout
    assert requests == 1  # the environment listing, and nothing after it
    assert rows(db, "SELECT status, complete FROM scans") == [("failed", False)]


def test_a_file_that_is_not_duckdb_gets_the_same_line_from_sweep_and_query(small, tmp_path):
    db = tmp_path / "notduck.duckdb"
    db.write_bytes(b"not a database, and it must stay as it is\n" * 50)
    before = db.read_bytes()
    expected = (f"{db} is not a DuckDB database (not a file flowleaks wrote, or damaged): "
                "pass --db with a flowleaks database, or a new path to create one")
    with FakeFlowApi(small) as api:
        p = run("sweep", "--as-admin", "--quiet", **cli_env(api, db))
        assert api.stats.requests == 0
    assert p.code == 2
    assert one_line(p.stderr) == f"flowleaks: {expected}"
    q = run("query", "SELECT 1", "--db", db)
    assert q.code == 2
    assert one_line(q.stderr) == f"Error: {expected}"
    assert db.read_bytes() == before


def test_an_unreachable_sign_in_host_is_named_with_the_cause(tmp_path):
    # MSAL's requests go through our proxy setting; a proxy that is not listening makes the failure
    # deterministic without a network (and proves MSAL honours HTTPS_PROXY)
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb", "--auth", "client-secret", "--client-id", "app",
            "--tenant-id", "contoso", FLOWLEAKS_CLIENT_SECRET="s3cr3t-value-xyz",
            HTTPS_PROXY=f"http://127.0.0.1:{closed_port()}")
    assert p.code == 4
    assert one_line(p.stderr) == ("flowleaks: client-secret: cannot reach login.microsoftonline.com to get a "
                                  "token: the proxy (HTTPS_PROXY) refused or could not open the connection")
    assert "s3cr3t-value-xyz" not in p.stderr + p.stdout


def test_msal_sends_its_requests_through_https_proxy(tmp_path, proxy):
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb", "--auth", "client-secret", "--client-id", "app",
            "--tenant-id", "contoso", FLOWLEAKS_CLIENT_SECRET="s3cr3t-value-xyz", HTTPS_PROXY=proxy.url)
    assert p.code == 4
    assert "cannot reach login.microsoftonline.com" in one_line(p.stderr)
    assert proxy.seen and all(s.startswith(b"CONNECT login.microsoftonline.com:443 ") for s in proxy.seen)
    assert not any(b"s3cr3t" in s for s in proxy.seen)


def test_a_dead_flow_url_shows_its_retries_and_gives_up_within_seconds(tmp_path):
    port = closed_port()
    started = time.monotonic()
    p = run("sweep", "--db", tmp_path / "f.duckdb", "--flow-api-url", f"http://127.0.0.1:{port}",
            FLOWLEAKS_ACCESS_TOKEN="tok-abc")
    took = time.monotonic() - started
    assert p.code == 3  # incomplete, never clean
    assert took < 10, took  # was 21-37 s of silent retries on the 5xx budget
    why = f"cannot reach 127.0.0.1:{port}: connection refused"
    assert f"retrying environments: {why} (nothing listening at that address and port); attempt 2 of 3" in p.stderr
    assert "attempt 4" not in p.stderr
    assert f"! listing environments: {why}" in " ".join(p.stdout.split())
    # an incomplete scan's Details hint points at what was not scanned
    assert "flowleaks query \"SELECT reason, detail, environment, flow_id, run_id, action FROM skipped " \
           "WHERE scan_id = '" in p.stdout


# -- proxy and CA bundle -------------------------------------------------------------------------

def test_https_goes_through_the_proxy_as_a_connect_and_no_proxy_is_honoured(tmp_path, proxy):
    args = ("sweep", "--quiet", "--db", tmp_path / "f.duckdb", "--flow-api-url", "https://flow.example.invalid")
    p = run(*args, FLOWLEAKS_ACCESS_TOKEN="tok-abc-secret", HTTPS_PROXY=proxy.url)
    assert p.code == 3
    assert f"cannot reach flow.example.invalid through the proxy {proxy.url[7:]}" in " ".join(p.stdout.split())
    # the proxy saw a tunnel request, never a header: the token is inside TLS
    assert proxy.seen and all(s.startswith(b"CONNECT flow.example.invalid:443 ") for s in proxy.seen)
    assert not any(b"tok-abc-secret" in s or b"Authorization" in s for s in proxy.seen)
    proxy.seen.clear()
    p = run(*args, FLOWLEAKS_ACCESS_TOKEN="tok-abc-secret", HTTPS_PROXY=proxy.url, NO_PROXY="example.invalid")
    assert p.code == 3
    assert proxy.seen == []


def test_plain_http_is_never_proxied(small, tmp_path, proxy):
    with FakeFlowApi(small) as api:
        p = run("sweep", "--as-admin", "--quiet", **cli_env(api, tmp_path / "f.duckdb"),
                HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url, http_proxy=proxy.url, ALL_PROXY=proxy.url)
    assert p.code == 1, p.stderr  # complete, with the tenant's findings
    assert proxy.seen == []


def test_a_ca_bundle_that_is_not_pem_is_a_usage_error(tmp_path):
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("not a certificate\n")
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb", "--ca-bundle", bundle, FLOWLEAKS_ACCESS_TOKEN="t")
    assert p.code == 2
    assert one_line(p.stderr) == f"Error: --ca-bundle: cannot use {bundle} as a CA bundle: no PEM certificate in it"
    p = run("sweep", "--quiet", "--db", tmp_path / "f.duckdb", FLOWLEAKS_ACCESS_TOKEN="t",
            SSL_CERT_FILE=str(tmp_path / "missing.pem"))
    assert p.code == 2
    line = one_line(p.stderr)
    assert "SSL_CERT_FILE" in line and f"cannot use {tmp_path / 'missing.pem'} as a CA bundle" in line


# -- 2. fail before the work --------------------------------------------------------------------

def test_an_unwritable_summary_path_fails_before_the_first_request(small, tmp_path):
    blocker = tmp_path / "log"
    blocker.write_text("a file where a folder is expected\n")
    target = blocker / "flowleaks" / "last.json"
    db = tmp_path / "f.duckdb"
    with FakeFlowApi(small) as api:
        p = run("sweep", "--as-admin", "--quiet", "--summary-json", target, **cli_env(api, db))
        assert api.stats.requests == 0
    assert p.code == 2
    line = one_line(p.stderr)
    assert line == f"Error: cannot write --summary-json {target}: {blocker} is a file, not a folder"
    assert p.stdout == ""  # no "Scan complete" before the error
    assert not db.exists()


def test_a_summary_in_a_missing_folder_is_written_there(small, tmp_path):
    target = tmp_path / "var" / "log" / "flowleaks" / "last.json"
    with FakeFlowApi(small) as api:
        p = run("sweep", "--as-admin", "--quiet", "--summary-json", target, **cli_env(api, tmp_path / "f.duckdb"))
    assert p.code == 1, p.stderr
    assert '"complete": true' in target.read_text()


def test_record_checks_its_out_path_before_the_first_request(small, tmp_path):
    blocker = tmp_path / "cassettes"
    blocker.write_text("")
    target = blocker / "repro.yaml"
    with FakeFlowApi(small) as api:
        p = run("record", "--out", target, **cli_env(api, tmp_path / "unused.duckdb"))
        assert api.stats.requests == 0
    assert p.code == 2
    assert one_line(p.stderr) == f"Error: cannot write --out {target}: {blocker} is a file, not a folder"


def test_a_db_under_a_file_is_a_usage_error_naming_the_path(small, tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("")
    db = blocker / "f.duckdb"
    with FakeFlowApi(small) as api:
        p = run("sweep", "--as-admin", "--quiet", **cli_env(api, db))
        assert api.stats.requests == 0
    assert p.code == 2
    assert one_line(p.stderr).startswith(f"flowleaks: cannot open {db}: ")


def test_no_proxy_and_the_tls_reason_in_words():
    """The two pieces of the network messages not reachable without a real network or TLS server."""
    import ssl

    from scanner.net.errors import unreachable_reason
    from scanner.net.proxy import proxy_bypassed

    assert proxy_bypassed("login.microsoftonline.com", "example.com, .microsoftonline.com")
    assert proxy_bypassed("anything", "*")
    assert not proxy_bypassed("login.microsoftonline.com", "example.com,,*.other.com")
    try:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except ssl.SSLError as inner:
            raise ConnectionError("wrapped") from inner
    except ConnectionError as exc:
        assert unreachable_reason(exc).startswith("TLS certificate verification failed")
