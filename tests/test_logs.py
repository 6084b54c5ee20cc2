"""No log line at any verbosity holds a URL query, a sig, a skiptoken, a token or a secret.

Unit tests drive the real logging setup (scanner/logs.py) with records shaped like those httpx,
httpcore, urllib3, msal and flowleaks itself emit; the end-to-end tests run the installed CLI with
-v and -vv against the loopback fake, with faults that force retries and 429s.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import re
from urllib.parse import quote

import httpx
import pytest

from scanner.logs import setup_logging
from scanner.redact import redact_text, redact_url
from tests.e2e.conftest import cli_env, flowleaks
from tests.fakeapi import FakeFlowApi, Faults, Tenant

SIG = "lL3mfnEcLt0AVQsHS9hsh3NwbrV7FfqdfiZ4J6akFe4"
SKIP = "eyJuZXh0Um93S2V5IjogIjEhNTAifQ"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3NlcnZpY2UifQ.c2lnbmF0dXJlLXBhcnQ"
SECRET = "Zq8~v0S3cr3tValue_ForTheApp"
CONTENT_URL = (f"https://prod-07.westeurope.logic.azure.com:443/workflows/abc/runs/08585/contents/ActionOutputs"
               f"?api-version=2016-06-01&se=2026-12-01T13%3A17Z&sp=%2Fruns%2Fread&sv=1.0&sig={SIG}")
# any `sig` parameter in any encoding, whatever its value
SIG_PARAM = re.compile(r"(?i)sig(=|%3d|%253d|\\u003d)")


@pytest.fixture
def log_to():
    """Configure logging as `flowleaks -v…` does, into a buffer; restore pytest's logging after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level
                                           for n in ("flowleaks", "httpx", "httpcore", "msal", "urllib3")}
    buf = io.StringIO()

    def setup(verbosity: int) -> io.StringIO:
        setup_logging(verbosity, stream=buf)
        return buf

    yield setup
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def assert_clean(text: str) -> None:
    assert not SIG_PARAM.search(text), text
    for s in (SIG, SKIP, TOKEN, SECRET, "skiptoken"):
        assert s not in text, (s[:6], text)


# -- the filter, on records shaped like each library's ---------------------------------------------

def test_httpx_request_line_keeps_host_and_path_but_not_the_query(log_to):
    out = log_to(3)
    # httpx passes the URL as an argument (an httpx.URL object), not in the format string
    logging.getLogger("httpx").info('HTTP Request: %s %s "%s %d %s"', "GET", httpx.URL(CONTENT_URL),
                                    "HTTP/1.1", 200, "OK")
    text = out.getvalue()
    assert_clean(text)
    # (httpx.URL drops the default port)
    assert "GET https://prod-07.westeurope.logic.azure.com/workflows/abc/runs/08585/contents/ActionOutputs?…" in text


def test_httpcore_request_repr_and_exception_text_are_redacted(log_to):
    out = log_to(3)
    log = logging.getLogger("httpcore.http11")
    log.debug("send_request_headers.started request=%r", httpx.Request("GET", CONTENT_URL))
    failure = httpx.ConnectError(f"connection reset talking to {CONTENT_URL}&$skiptoken={SKIP}")
    try:  # (the traceback quotes this line: it must not name what it checks for)
        raise failure
    except httpx.ConnectError:
        log.exception("request failed")
    text = out.getvalue()
    assert_clean(text)
    assert "ConnectError" in text and "request failed" in text


def test_urllib3_request_target_without_a_host_loses_its_query(log_to):
    out = log_to(3)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "login.microsoftonline.com", 443, "POST",
        f"/tenant/oauth2/v2.0/token?client_secret={SECRET}&code=AUTHCODE123", "HTTP/1.1", 200, 1234)
    text = out.getvalue()
    assert_clean(text)
    assert "AUTHCODE123" not in text
    assert '"POST /tenant/oauth2/v2.0/token?… HTTP/1.1" 200' in text


def test_msal_style_dict_and_headers_are_redacted(log_to):
    out = log_to(3)
    log = logging.getLogger("msal.application")
    log.debug("token request data: %s", {"grant_type": "client_credentials", "client_secret": SECRET,
                                         "client_assertion": TOKEN})
    log.debug("headers: %s", {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"})
    log.debug("response: %s", json.dumps({"access_token": TOKEN, "refresh_token": SECRET, "expires_in": 3599}))
    text = out.getvalue()
    assert_clean(text)
    assert "client_credentials" in text and "3599" in text


def test_own_lines_from_any_flowleaks_logger_and_unformattable_records_are_redacted(log_to):
    out = log_to(1)
    crawl = logging.getLogger("flowleaks.crawl")
    crawl.info("skipped run 0858: %s", f"server said: see {CONTENT_URL} (Authorization: Bearer {TOKEN})")
    crawl.info("nextLink %s", f"https://api.flow.microsoft.com/x/runs?api-version=1&%24skiptoken={SKIP}")
    crawl.info(f"GET {CONTENT_URL} took %d ms", "not-a-number")  # getMessage() raises
    text = out.getvalue()
    assert_clean(text)
    assert text.count("INFO flowleaks.crawl") == 3


def test_library_request_lines_are_out_of_v_and_redacted_at_vv(log_to):
    out = log_to(1)
    logging.getLogger("httpx").info("HTTP Request: GET %s", CONTENT_URL)
    logging.getLogger("flowleaks.http").info("retrying")
    assert "httpx" not in out.getvalue() and "retrying" in out.getvalue()
    out = log_to(2)
    logging.getLogger("httpx").info("HTTP Request: GET %s", CONTENT_URL)
    logging.getLogger("httpcore.connection").debug("connect_tcp.started host='localhost'")
    text = out.getvalue()
    assert "INFO httpx: HTTP Request: GET https://prod-07" in text and "httpcore" not in text
    assert_clean(text)


# -- redact_text: every encoding of what must not be printed -----------------------------------------

@pytest.mark.parametrize("text", [
    f"?sv=1&sig={SIG}",
    f"&SIG={SIG}&se=1",
    f"u=https%3A%2F%2Fh%2Fp%3Fsig%3D{SIG}",
    f"u=https%3A%2F%2Fh%2Fp%3Fsv%3D1%26sig%3D{SIG}%26se%3D2",
    f"u=x%253Fsv%253D1%2526sig%253D{SIG}",
    f'{{"uri": "https:\\/\\/h\\/p?sv=1\\u0026sig={SIG}\\u0026se=2"}}',
    f"\\u0026sig={SIG}",
    f"<a href='x?sv=1&amp;sig={SIG}&amp;se=2'>",
    f'"sig": "{SIG}"',
    f"next $skiptoken={SKIP}",
    f"next %24skiptoken%3D{SKIP}",
    f"Authorization: Bearer {TOKEN}",
    f"bearer {SECRET}",
    f"a JWT {TOKEN} in text",
    f"client_secret={SECRET}&grant_type=x",
    f"access_token={SECRET}",
    f"'client_secret': '{SECRET}'",
])
def test_redact_text_removes_every_encoding(text):
    out = redact_text(text)
    assert SIG not in out and SKIP not in out and TOKEN not in out and SECRET not in out, out


def test_redact_text_keeps_what_helps_and_redact_url_drops_query_and_user():
    assert redact_text(f"403 AuthorizationFailed at {CONTENT_URL}.") == (
        "403 AuthorizationFailed at https://prod-07.westeurope.logic.azure.com:443/workflows/abc/runs/08585/"
        "contents/ActionOutputs?…")
    assert redact_text("no access to environment (https://api.flow.microsoft.com/providers/x)") == \
        "no access to environment (https://api.flow.microsoft.com/providers/x)"
    assert redact_url(f"https://u:p@h.example/a/b?sig={SIG}#f") == "https://h.example/a/b"


def test_api_error_text_from_the_server_is_redacted():
    from scanner.net.errors import error_from_body

    body = json.dumps({"error": {"code": "InvalidAuthenticationToken",
                                 "message": f"token Bearer {TOKEN} rejected for {CONTENT_URL}"}}).encode()
    err = error_from_body(401, body, CONTENT_URL)
    assert_clean(str(err))
    assert_clean(err.api_message)
    assert err.code == "InvalidAuthenticationToken"


# -- end to end: the installed CLI, -v and -vv, faults that retry and throttle -----------------------

@pytest.fixture(scope="module")
def small_tenant() -> Tenant:
    return Tenant.generate(seed=7, environments=1, flows_per_env=4, runs_per_flow=3)


FAULTS = Faults(seed=3, error_rate=0.06, drop_rate=0.03, burst_429_every=12, burst_429_length=3)


def verbose_sweep(tenant: Tenant, db, flag: str):
    # small pages: listings are paged with $skiptoken nextLinks
    with FakeFlowApi(tenant, faults=FAULTS, runs_page_size=2, flows_page_size=2, actions_page_size=3) as api:
        result = flowleaks(flag, "sweep", "--as-admin", env=cli_env(api, db))
        token = api.token
    return result, token


def planted(tenant: Tenant, token: str) -> set[str]:
    secrets = tenant.secrets() | set(tenant.vault_secrets.values()) | {token}
    encoded = set()
    for s in secrets:
        encoded |= {quote(s, safe=""), json.dumps(s)[1:-1], base64.b64encode(s.encode()).decode()}
    return secrets | {e for e in encoded if len(e) >= 8}


def test_vv_sweep_prints_its_own_request_and_retry_lines_and_nothing_secret(small_tenant, tmp_path):
    result, token = verbose_sweep(small_tenant, tmp_path / "f.duckdb", "-vv")
    assert result.code == 1, result.stderr[-3000:]  # complete, with findings: the retries worked
    out = result.stdout + result.stderr
    assert not SIG_PARAM.search(out), SIG_PARAM.search(out)
    assert "skiptoken" not in out.lower()
    assert not re.search(r"(?i)bearer\s", out)  # (the report's rule names say bearer-token)
    for s in planted(small_tenant, token):
        assert s not in out, s[:4]
    # flowleaks' own lines: one per request (content links included), retries, pacing
    assert re.search(r"DEBUG flowleaks\.http: content GET http://localhost:\d+/workflows/\S+/contents/\S+ -> 200 "
                     r"in \d+ ms, attempt 1", out)
    assert re.search(r"INFO flowleaks\.http: \w+: attempt 1 of 8 failed \(HTTP (429|5\d\d) at \S+\); retrying in", out)
    assert "INFO flowleaks.http: api throttled (429): rate" in out
    # httpx's own request lines are shown at -vv, redacted rather than dropped
    assert re.search(r"INFO httpx: HTTP Request: GET http://localhost:\d+/workflows/\S+\?… ", out)


def test_v_sweep_shows_retries_but_not_per_request_lines(small_tenant, tmp_path):
    result, token = verbose_sweep(small_tenant, tmp_path / "f.duckdb", "-v")
    assert result.code == 1, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert not SIG_PARAM.search(out)
    assert token not in out
    assert re.search(r"INFO flowleaks\.http: \w+: attempt \d of 8 failed", out)
    assert "DEBUG" not in out and "httpx" not in out and "HTTP Request" not in out
