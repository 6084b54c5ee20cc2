"""The HTTP errors: what a request can fail with, each naming its `skipped.reason`.

Messages carry a redacted URL (scheme://host/path), never a query (a SAS `sig`, a `$skiptoken`), and
a server's own text only after redaction: these messages reach logs, the database and the terminal.
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from scanner.errors import ExpectedError
from scanner.redact import redact_text, redact_url

FRIENDLY = {
    "EnvironmentAccessDenied": "no access to environment",
    "InvalidAuthenticationToken": "the access token was rejected (expired or wrong audience)",
    "AuthorizationFailed": "the identity is not authorised",
    "ConnectionAuthorizationFailed": "no permission for a connection used by the flow",
    "FlowNotFound": "flow not found",
    "WorkflowRunNotFound": "run not found (aged out of the 30-day history?)",
}


class FlowleaksHttpError(ExpectedError):
    """Base of our HTTP errors. Messages carry a redacted URL (scheme://host/path), never a query."""

    reason = "HTTP error"  # the `skipped.reason` this error becomes


class UrlError(FlowleaksHttpError):
    """An error about one URL: its message is `template` with the URL redacted, built here only, so
    no subclass can put a query in it. `{url}` is the URL; `{0}`, `{1}`… the further arguments."""

    template = "{url}"

    def __init__(self, url: str, *args: object):
        super().__init__(self.template.format(*args, url=redact_url(url)))


class ApiError(FlowleaksHttpError):
    def __init__(self, status: int, code: str, message: str, url: str):
        # the server's text may echo our URL (its sig) or a secret it was sent: redacted before kept
        message, code = redact_text(message), redact_text(code)
        self.status, self.code, self.url = status, code, redact_url(url)
        self.api_message = message
        super().__init__(f"{status} {code}: {message} ({self.url})")


class TokenRejected(FlowleaksHttpError):
    """A 401/403 on the environment listing: every later request would fail the same way, so the
    scan ends at once with the likely fix instead of an 'HTTP error' count in the summary."""

    reason = "token rejected"

    def __init__(self, err: ApiError, audience: str, as_admin: bool):
        host = urlsplit(err.url).netloc
        if err.status == 401:
            fix = (f"the token must be for the Flow API (audience {audience.rstrip('/')}) and unexpired; "
                   "get a new one, or check --cloud")
        elif as_admin:
            fix = ("--as-admin needs a Power Platform admin; for an app, register it as a Power Platform "
                   "management app (pac admin application register --application-id <client-id>), or use --as-maker")
        else:
            fix = "the identity has no Power Automate access here; check its licence and environment roles"
        self.status = err.status
        super().__init__(f"token rejected by {host}: {err.status} {err.code}: {err.api_message.rstrip('. ')}; likely fix: {fix}")


class Throttled(FlowleaksHttpError):
    reason = "throttled"

    def __init__(self, url: str, retry_after: float | None):
        self.url, self.retry_after = redact_url(url), retry_after
        super().__init__(f"throttled (Retry-After {retry_after:.0f}s is over the cap) at {self.url}"
                         if retry_after else f"throttled at {self.url}")


class RetryableStatus(FlowleaksHttpError):
    """A 429/5xx answer, or a 200 with a body that is not JSON; tried again by tenacity."""

    def __init__(self, status: int, url: str, retry_after: float | None = None, what: str = ""):
        self.status, self.url, self.retry_after = status, redact_url(url), retry_after
        self.reason = "parse error" if status == 200 else ("throttled" if status == 429 else "HTTP error")
        super().__init__(what or f"HTTP {status} at {self.url}")


class LinkExpired(UrlError):
    reason = "expired"
    template = "content link expired or refused (403) at {url}"


class ContentTooLarge(UrlError):
    reason = "too large"
    template = "content over {0} bytes at {url}"  # (url, limit)


class HostNotAllowed(UrlError):
    reason = "host not allowed"
    template = "{0}: {url}"

    def __init__(self, url: str, why: str = "host not on the allow-list"):
        super().__init__(url, why)


class RedirectRefused(UrlError):
    reason = "redirect not followed"
    template = "HTTP {0} redirect not followed from {url}"  # (url, status)


class UnusableUrl(UrlError):
    reason = "bad url"
    template = "URL the HTTP client cannot send (control characters, too long): {url}"


class TransportFailed(FlowleaksHttpError):
    reason = "connection error"

    def __init__(self, url: str, exc: BaseException, proxy: str | None = None):
        self.host = urlsplit(str(url)).netloc.rpartition("@")[2]
        if proxy:  # host:port only: a proxy URL may carry user:password
            self.host += f" through the proxy {urlsplit(proxy).netloc.rpartition('@')[2]}"
        # No connection at all (DNS, refused, TLS): retried on a small budget of its own, because
        # waiting longer rarely brings a host back; timeouts and 5xx keep the full budget.
        self.no_connection = isinstance(exc, (httpx.ConnectError, httpx.ProxyError))
        self.why = unreachable_reason(exc)
        super().__init__(f"cannot reach {self.host}: {self.why} ({redact_url(url)})")


def unreachable_reason(exc: BaseException) -> str:
    """Why a connection failed, in words, from the exception chain's types (httpx, requests and
    urllib3 wrap the OS error several levels deep). Fixed phrases only: never the library's text."""
    import socket
    import ssl

    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [x for x in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
                 if isinstance(x, BaseException)]
    names = {type(e).__name__ for e in seen}
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in seen) or "SSLError" in names:
        return ("TLS certificate verification failed (a proxy inspecting TLS? give its CA with --ca-bundle "
                "or SSL_CERT_FILE)")
    if "ProxyError" in names:
        return "the proxy (HTTPS_PROXY) refused or could not open the connection"
    if any(isinstance(e, socket.gaierror) for e in seen) or "NameResolutionError" in names:
        return "DNS lookup failed (unknown host name, or no network)"
    if any(isinstance(e, ConnectionRefusedError) for e in seen):
        return "connection refused (nothing listening at that address and port)"
    if any(isinstance(e, (TimeoutError, httpx.TimeoutException)) for e in seen) or \
            {"ConnectTimeout", "ReadTimeout", "Timeout"} & names:
        return "timed out"
    if any(isinstance(e, ConnectionResetError) for e in seen) or "RemoteProtocolError" in names:
        return "the connection was closed before an answer"
    return type(exc).__name__


def error_from_body(status: int, body: bytes, url: str) -> ApiError:
    code, message = f"HTTP{status}", ""
    try:
        err = json.loads(body).get("error") or {}
        code = err.get("code") or code
        message = err.get("message") or ""
    except (ValueError, AttributeError):
        message = ""
    # The Flow API wraps Logic Apps errors: surface the inner code when there is one.
    if code == "AzureResourceManagerRequestFailed" and "WorkflowRunNotFound" in message:
        code = "WorkflowRunNotFound"
    friendly = FRIENDLY.get(code)
    text = f"{friendly}: {message}" if friendly and message else (friendly or message or "no details")
    # redacted before it is cut: a cut could leave a secret's tail that no pattern recognises
    return ApiError(status, code, redact_text(text)[:500], url)
