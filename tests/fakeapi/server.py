"""Loopback fake of the Flow management API, its run-content (SAS link) host, a Key Vault and a
Dataverse org.

Four real HTTP listeners (ThreadingHTTPServer, HTTP/1.1 keep-alive):

- API      `http://127.0.0.1:<p>/providers/Microsoft.ProcessSimple/...`  bearer token + api-version
- content  `http://localhost:<p>/workflows/<hex>/runs/.../contents/<Kind>?...&sig=`  no auth, SAS-checked
- vault    `http://127.0.0.1:<p>/secrets...`  Key Vault data plane 7.x, bearer token
- dataverse `http://127.0.0.1:<p>/api/data/v9.2/environmentvariabledefinitions...`  Web API, bearer token,
  `$select`/`$expand` of the current value, `@odata.nextLink` paging (`Prefer: odata.maxpagesize`)

Shapes follow shared/docs/power-automate-api.md (§1.2-1.8, §2, §3, §4.3, §6.3, §8). Faults are
deterministic (their own seed, rolled per URL and attempt) and transient: a request for the same URL
fails at most `max_consecutive_failures` times in a row, and a malformed body is only ever served on
the first attempt. Only `denied_environments` and `always_expired_links` are permanent.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import operator
import re
import secrets
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Collection, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .model import TICKS_PER_SECOND, Body, RunDetail, RunHeader, Step, fmt_ticks, parse_iso_ticks, to_ticks
from .tenant import Flow, Tenant

API_VERSION = "2016-11-01"
CONTENT_API_VERSION = "2016-06-01"
BASE = "/providers/Microsoft.ProcessSimple"
MAX_TOP = 250
DROP = object()  # handler result: close the connection without answering

_API_ROUTE = re.compile(r"""
    ^/providers/microsoft\.processsimple(?P<admin>/scopes/admin)?/environments
    (?:/(?P<env>[^/]+)
      (?:/(?P<v2>v2/)?(?P<flows>flows)
        (?:/(?P<flow>[^/]+)
          (?:/(?P<runs>runs)
            (?:/(?P<run>[^/]+)
              (?:/(?P<actions>actions)
                (?:/(?P<action>[^/]+)(?:/(?P<sub>repetitions|scopeRepetitions))?)?
              )?
            )?
          )?
        )?
      )?
    )?/?$""", re.X | re.I)
_CONTENT_ROUTE = re.compile(
    r"^/workflows/(?P<hex>[0-9a-f]{32})/runs/(?P<run>[^/]+)"
    r"(?:/actions/(?P<action>[^/]+)(?:/repetitions/(?P<rep>[^/]+))?)?"
    r"/contents/(?P<kind>TriggerInputs|TriggerOutputs|ActionInputs|ActionOutputs)$")
_DATAVERSE_ROUTE = re.compile(r"^/api/data/v9\.[0-9]/(?P<set>environmentvariabledefinitions)/?$", re.I)
DATAVERSE_VALUES = "environmentvariabledefinition_environmentvariablevalue"
_VAULT_ROUTE = re.compile(r"^/secrets(?:/(?P<name>[0-9A-Za-z-]+)(?:/(?P<version>[0-9A-Za-z]+))?)?/?$")
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+?)\s*$", re.I)
_COMPARE = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
            "lt": operator.lt, "le": operator.le}


@dataclass
class Faults:
    """What can go wrong, and how often. Rates are fractions in [0, 1]."""
    seed: int = 0
    latency_ms: float = 0                 # added to every request on all three listeners
    rate_limit_rps: float | None = None   # token bucket across the API listener; over it -> 429
    burst: int = 10                       # bucket capacity
    content_rate_limit_rps: float | None = None  # same, for the content listener
    error_rate: float = 0.0               # API and content requests answered 500/502/503
    drop_rate: float = 0.0                # API and content requests closed without an answer
    malformed_rate: float = 0.0           # first attempt of an API/content URL gets a truncated 200 body
    burst_429_every: int = 0              # every Nth API request starts a run of 429s ...
    burst_429_length: int = 3             # ... this long
    http_date_retry_after: bool = False   # Retry-After as an HTTP date instead of seconds
    expire_links_once: bool = False       # first fetch of each content link: 403 expired; re-read links work
    expand_missing_links: float = 0.0     # non-loop actions without links in $expand (present in /actions)
    max_consecutive_failures: int = 3     # errors/drops per URL never exceed this many in a row
    denied_environments: Collection[str] = ()                 # permanent 403 EnvironmentAccessDenied
    always_expired_links: bool | Collection[str] = False      # True, or run names: links always expired
    dataverse_denied: bool = False        # permanent 403 on the Dataverse listener (missing privilege)
    foreign_next_link_rate: float = 0.0   # nextLinks pointing at another origin (the `foreign` listener) ...
    foreign_next_link_path: bool = False  # ... and, with this, at another path too (not a continuation)
    skipped_action_rate: float = 0.0      # non-loop actions that did not run: status Skipped, no links
    drop_links_rate: float = 0.0          # non-loop actions that ran, with no links in $expand or /actions
    links_vanish_on_reread: bool = False  # a run read a second time shows its actions without links


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]
    json_ok: bool = False   # a good JSON 200 the malformed fault may truncate


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, status == 200)


def _error(status: int, code: str, message: str, **extra: Any) -> Reply:
    return _json(status, {"error": {"code": code, "message": message, **extra}})


class Stats:
    """Thread-safe counters; read the attributes directly or take a JSON-ready snapshot()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.by_kind: Counter[str] = Counter()      # environments, flows, flow, runs, run, actions, ...
        self.by_status: Counter[int] = Counter()
        self.throttled = 0                          # 429s sent
        self.server_errors = 0                      # 5xx sent
        self.drops = 0
        self.malformed = 0
        self.expired_links = 0                      # 403s for an expired link
        self.content_bytes = 0                      # bytes of good content bodies served
        self.content_fetches: Counter[str] = Counter()  # link path -> good bodies served

    def record(self, kind: str, status: int | None) -> None:
        with self._lock:
            self.requests += 1
            self.by_kind[kind] += 1
            if status is None:
                self.drops += 1
                return
            self.by_status[status] += 1
            if status == 429:
                self.throttled += 1
            elif status >= 500:
                self.server_errors += 1

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def content_served(self, path: str, size: int) -> None:
        with self._lock:
            self.content_fetches[path] += 1
            self.content_bytes += size

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "by_kind": dict(self.by_kind),
                    "by_status": {str(k): v for k, v in self.by_status.items()}, "throttled": self.throttled,
                    "server_errors": self.server_errors, "drops": self.drops, "malformed": self.malformed,
                    "expired_links": self.expired_links, "content_bytes": self.content_bytes,
                    "content_links_fetched": len(self.content_fetches),
                    "content_fetches_total": sum(self.content_fetches.values())}


class TokenBucket:
    def __init__(self, rate: float, capacity: int):
        self.rate, self.capacity = rate, max(1, capacity)
        self.tokens, self.stamp = float(self.capacity), time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one will be available."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeFlowApi/1.0"
    # Headers and body go out in one segment, without Nagle: otherwise every keep-alive response
    # stalls ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    wbufsize = -1

    def log_message(self, format: str, *args: Any) -> None:  # quiet; Stats and requests_log count instead
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        try:
            reply = self.server.app(self.command, self.path, self.headers)
        except Exception:  # a bug in the fake: show it, answer 500 so the client sees something
            traceback.print_exc(file=sys.stderr)
            reply = _error(500, "FakeServerBug", "unhandled exception in the fake server")
        if reply is DROP:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256   # clients open many connections at once; the default backlog is 5

    def __init__(self, address: tuple[str, int], app: Callable[..., Any]):
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # client hang-ups are normal
            super().handle_error(request, client_address)


def _skiptoken(offset: int, size: int) -> str:
    raw = json.dumps({"nextRowKey": f"1!{offset}", "pageSize": size}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_skiptoken(token: str) -> tuple[int, int]:
    data = json.loads(base64.urlsafe_b64decode(token.encode()))
    return int(data["nextRowKey"].split("!", 1)[1]), int(data["pageSize"])


def _parse_filter(text: str) -> Callable[[RunHeader], bool]:
    """`status eq 'Failed' and startTime ge 2026-01-01T00:00:00.1234567Z` (field names any case)."""
    preds: list[Callable[[RunHeader], bool]] = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        m = _FILTER_CLAUSE.match(clause)
        if not m:
            raise ValueError(clause)
        field, op, value = m[1].lower(), _COMPARE[m[2].lower()], m[3].strip("'\"")
        if field == "status" and op in (operator.eq, operator.ne):
            preds.append(lambda h, op=op, v=value.lower(): op(h.status.lower(), v))
        elif field == "starttime":
            preds.append(lambda h, op=op, t=parse_iso_ticks(value): op(h.start, t))
        else:
            raise ValueError(clause)
    return lambda h: all(p(h) for p in preds)


class FakeFlowApi:
    """The four listeners over one Tenant. Use as a context manager, or start()/stop().

    Attributes: api_url (the Flow service root, for FLOWLEAKS_FLOW_API_URL), content_url and
    content_host ("localhost", for FLOWLEAKS_CONTENT_HOSTS), vault_url, dataverse_url, token, tenant, faults,
    stats (Stats), content_auth_headers_seen (every Authorization header the content host got: must
    stay empty), requests_log ((listener, method, path, status) tuples when log_requests=True).
    """

    def __init__(self, tenant: Tenant, token: str = "test-token", faults: Faults | None = None, *,
                 runs_page_size: int = 50, flows_page_size: int = 50, actions_page_size: int = 30,
                 repetitions_page_size: int = 30, vault_page_size: int = 25, dataverse_page_size: int = 2,
                 link_lifetime_s: float = 4 * 3600, log_requests: bool = False,
                 ports: tuple[int, int, int] = (0, 0, 0), dataverse_port: int = 0):
        self.tenant, self.token, self.faults = tenant, token, faults or Faults()
        self.page_sizes = {"runs": runs_page_size, "flows": flows_page_size, "actions": actions_page_size,
                           "repetitions": repetitions_page_size, "vault": vault_page_size,
                           "dataverse": dataverse_page_size}
        self.link_lifetime_ticks = int(link_lifetime_s * TICKS_PER_SECOND)
        self.stats = Stats()
        # Runs that start after this instant (ticks) are not listed yet: moving it forward makes "new
        # runs arrive" for incremental-scan tests and benchmarks. None: every run is listed.
        self.visible_until: int | None = None
        self.log_requests = log_requests
        self.requests_log: list[tuple[str, str, str, int | None]] = []
        self.content_auth_headers_seen: list[str] = []
        self._sig_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._attempts: dict[bytes, int] = {}     # digest of (listener, method, URL) -> attempts so far
        self._revoked: dict[str, int] = {}        # link path -> newest `se` expired by expire_links_once
        self._last_se = 0
        self._api_requests = 0
        self._burst_left = 0
        f = self.faults
        self._api_bucket = TokenBucket(f.rate_limit_rps, f.burst) if f.rate_limit_rps else None
        self._content_bucket = TokenBucket(f.content_rate_limit_rps, f.burst) if f.content_rate_limit_rps else None
        self._denied = {e.lower() for e in f.denied_environments}

        # Runs that started before this instant (ticks) have aged out: not listed, 404 when read.
        self.retained_from: int | None = None
        self.foreign_requests: list[tuple[str, bool]] = []  # (path, had an Authorization header)
        self._run_reads: dict[str, int] = {}
        self._servers = [_Server(("127.0.0.1", ports[0]), self._api),
                         _Server(("127.0.0.1", ports[1]), self._content),
                         _Server(("127.0.0.1", ports[2]), self._vault),
                         _Server(("127.0.0.1", dataverse_port), self._dataverse),
                         _Server(("127.0.0.1", 0), self._foreign)]
        self.api_url = f"http://127.0.0.1:{self._servers[0].server_port}"
        self.content_host = "localhost"
        self.content_url = f"http://localhost:{self._servers[1].server_port}"
        self.vault_url = f"http://127.0.0.1:{self._servers[2].server_port}"
        self.dataverse_url = f"http://127.0.0.1:{self._servers[3].server_port}"   # the org URL (audience)
        self.foreign_url = f"http://127.0.0.1:{self._servers[4].server_port}"     # another origin: a hijacker
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeFlowApi:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> FakeFlowApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env_vars(self) -> dict[str, str]:
        return {"FLOWLEAKS_FLOW_API_URL": self.api_url, "FLOWLEAKS_ACCESS_TOKEN": self.token,
                "FLOWLEAKS_CONTENT_HOSTS": self.content_host}

    # --- shared request plumbing -----------------------------------------------------------------------

    def _roll(self, *parts: Any) -> float:
        digest = hashlib.blake2b(repr((self.faults.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _attempt(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=12).digest()
        with self._lock:
            n = self._attempts.get(digest, 0)
            self._attempts[digest] = n + 1
        return n

    def _authorized(self, headers: Any) -> bool:
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token)

    def _throttle(self, bucket: TokenBucket | None, bursting: bool) -> Reply | None:
        wait = bucket.take() if bucket else 0.0
        if not wait and not bursting:
            return None
        seconds = max(1, math.ceil(wait))
        retry_after = (formatdate(time.time() + seconds + 1, usegmt=True) if self.faults.http_date_retry_after
                       else str(seconds))
        return _json(429, {"error": {"code": "TooManyRequests",
                                     "message": f"Rate limit is exceeded. Try again in {seconds} seconds."}},
                     {"Retry-After": retry_after})

    def _bursting(self) -> bool:
        """burst_429_every: every Nth API request starts a run of burst_429_length 429s."""
        every = self.faults.burst_429_every
        if not every:
            return False
        with self._lock:
            self._api_requests += 1
            if self._api_requests % every == 0:
                self._burst_left = self.faults.burst_429_length
            if self._burst_left:
                self._burst_left -= 1
                return True
        return False

    def _transient_fault(self, key: str) -> tuple[Reply | object | None, int]:
        """Drop or 5xx for this URL's attempt, deterministically; returns (fault or None, attempt)."""
        f = self.faults
        if not (f.error_rate or f.drop_rate or f.malformed_rate):
            return None, 0
        attempt = self._attempt(key)
        if attempt < f.max_consecutive_failures:
            if f.drop_rate and self._roll("drop", key, attempt) < f.drop_rate:
                return DROP, attempt
            if f.error_rate and (r := self._roll("error", key, attempt)) < f.error_rate:
                status = (500, 502, 503)[int(r / f.error_rate * 3) % 3]
                return _error(status, "ServiceUnavailable" if status == 503 else "InternalServerError",
                              "The server had an error while processing the request."), attempt
        return None, attempt

    def _malform(self, reply: Reply, key: str, attempt: int) -> Reply:
        """Truncate a good JSON 200 on the first attempt of a URL (a retry gets the whole body)."""
        f = self.faults
        if not (reply.json_ok and attempt == 0 and f.malformed_rate
                and self._roll("malformed", key) < f.malformed_rate):
            return reply
        cut = reply.body[: len(reply.body) // 2]
        try:
            json.loads(cut)
            cut = b"{" + cut   # still parseable (e.g. a short scalar): make sure it is not
        except ValueError:
            pass
        self.stats.add(malformed=1)
        return reply._replace(body=cut, json_ok=False)

    def _finish(self, listener: str, kind: str, method: str, path: str, reply: Reply | object) -> Reply | object:
        status = None if reply is DROP else reply.status
        self.stats.record(kind, status)
        if self.log_requests:
            with self._lock:
                self.requests_log.append((listener, method, path, status))
        return reply

    def _foreign(self, method: str, target: str, headers: Any) -> Reply:
        """Another origin a hostile nextLink points at: it only records who came (and with what)."""
        with self._lock:
            self.foreign_requests.append((urlsplit(target).path, bool(headers.get("Authorization"))))
        return _error(404, "NotFound", "nothing here")

    def age_out_runs_before(self, when: datetime | None) -> None:
        """Runs that started before `when` are gone, as retention drops them (None: keep all)."""
        self.retained_from = None if when is None else to_ticks(when)

    def _sleep(self) -> None:
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)

    # --- API listener ------------------------------------------------------------------------------------

    def _api(self, method: str, target: str, headers: Any) -> Reply | object:
        self._sleep()
        url = urlsplit(target)
        m = _API_ROUTE.match(url.path)
        kind = self._api_kind(m) if m else "other"
        reply = self._throttle(self._api_bucket, self._bursting())
        attempt = 0
        if reply is None:
            reply, attempt = self._transient_fault(f"api {method} {target}")
        if reply is None:
            try:
                reply = self._api_route(method, url.path, url.query, m, kind, headers)
            except _BadRequest as e:
                reply = _error(400, e.code, e.message)
            reply = self._malform(reply, f"api {method} {target}", attempt)
        return self._finish("api", kind, method, url.path, reply)

    @staticmethod
    def _api_kind(m: re.Match) -> str:
        if m["sub"]:
            return "repetitions" if m["sub"].lower() == "repetitions" else "scope_repetitions"
        for group, kind in (("action", "action"), ("actions", "actions"), ("run", "run"), ("runs", "runs"),
                            ("flow", "flow"), ("flows", "flows"), ("env", "environment")):
            if m[group]:
                return kind
        return "environments"

    def _api_route(self, method: str, path: str, query: str, m: re.Match | None, kind: str,
                   headers: Any) -> Reply:
        if not self._authorized(headers):
            return _error(401, "InvalidAuthenticationToken", "The access token is missing or invalid.")
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        version = q.get("api-version")
        if version != API_VERSION:
            return _error(400, "MissingApiVersionParameter" if version is None else "InvalidApiVersionParameter",
                          f"The api-version '{version}' is invalid. The supported version is '{API_VERSION}'.")
        if m is None or (m["v2"] and kind != "flows") or (m["v2"] and not m["admin"]):
            return _error(404, "NotFound", f"The route '{path}' is not supported.")
        if method != "GET":
            return _error(405, "MethodNotAllowed", f"{method} is not supported by the fake.")
        if kind == "environments":
            return _json(200, {"value": [self._env_json(e) for e in self.tenant.environments]})

        env_name = unquote(m["env"])
        if env_name.lower() in self._denied:
            return _error(403, "EnvironmentAccessDenied", f"Access to the environment '{env_name}' is denied.")
        env = self.tenant.environment(env_name)
        if env is None:
            return _error(404, "EnvironmentNotFound", f"The environment '{env_name}' could not be found.")
        admin = bool(m["admin"])
        if kind == "environment":
            return _json(200, self._env_json(env))
        if kind == "flows":
            flows = [f for f in env.flows if admin or f.maker_visible]
            page, next_link = self._page(flows, path, q, "flows")
            return self._list([self._flow_json(f, with_definition=False) for f in page], next_link)

        flow_id = unquote(m["flow"])
        flow = self.tenant.flow(env.name, flow_id)
        if flow is None or not (admin or flow.maker_visible):
            return _error(404, "FlowNotFound", f"Could not find flow '{flow_id}'.")
        if kind == "flow":
            return _json(200, self._flow_json(flow, with_definition=True))
        if kind == "runs":
            return self._runs(flow, path, q)

        run_name = unquote(m["run"])
        detail = self.tenant.run_detail(flow, run_name)
        if detail is not None and self.retained_from is not None and detail.header.start < self.retained_from:
            detail = None
        if detail is None:
            return self._arm_error(404, "WorkflowRunNotFound",
                                   f"The workflow '{flow.flow_id}' run '{run_name}' could not be found.")
        se = self._issue_se()
        if kind == "run":
            expand = q.get("$expand", "").lower().replace("%2f", "/")
            with self._lock:
                reads = self._run_reads[detail.header.name] = self._run_reads.get(detail.header.name, 0) + 1
            body = self._run_json(flow, detail, se, expand_actions="properties/actions" in expand)
            if reads > 1 and self.faults.links_vanish_on_reread:
                for props in (body["properties"].get("actions") or {}).values():
                    props.pop("inputsLink", None)
                    props.pop("outputsLink", None)
            return _json(200, body)
        if kind == "actions":
            steps = list(detail.actions.values())
            page, next_link = self._page(steps, path, q, "actions")
            return self._list([self._action_json(flow, detail, s, se, expanded=False) for s in page], next_link)

        action_name = unquote(m["action"])
        step = detail.actions.get(action_name)
        if step is None:
            return self._arm_error(404, "WorkflowRunActionNotFound",
                                   f"The workflow '{flow.flow_id}' run '{run_name}' action '{action_name}' "
                                   "could not be found.")
        if kind == "action":
            return _json(200, self._action_json(flow, detail, step, se, expanded=False))
        items = (self._repetitions_json(flow, detail, step, se) if kind == "repetitions"
                 else self._scope_repetitions_json(flow, detail, step))
        page, next_link = self._page(items, path, q, "repetitions")
        return self._list(page, next_link)

    @staticmethod
    def _arm_error(status: int, code: str, message: str) -> Reply:
        """The Flow API wraps Logic Apps engine errors in an ARM failure (see §1.3)."""
        inner = json.dumps({"error": {"code": code, "message": message}})
        return _error(status, "AzureResourceManagerRequestFailed",
                      f"Request to Azure Resource Manager failed with error: '{inner}'.")

    @staticmethod
    def _list(items: list, next_link: str | None) -> Reply:
        return _json(200, {"value": items, **({"nextLink": next_link} if next_link else {})})

    def _page(self, items: list, path: str, q: dict[str, str], kind: str) -> tuple[list, str | None]:
        """One page of items and the absolute nextLink (None on the last page). The page size rides
        in the opaque $skiptoken; other query parameters ($filter, ...) are carried over as given."""
        size = self.page_sizes[kind]
        offset = 0
        if "$top" in q:
            top = q["$top"]
            if not top.isdigit() or int(top) < 1:
                raise _BadRequest("InvalidTopInQueryString",
                                  f"The value for top of '{top}' is not an integer; the value must be an "
                                  "integer value greater than zero.")
            size = min(int(top), MAX_TOP)
        if "$skiptoken" in q:
            try:
                offset, token_size = _read_skiptoken(q["$skiptoken"])
            except (ValueError, KeyError, IndexError):
                raise _BadRequest("InvalidSkipToken", "The $skiptoken is not valid.") from None
            size = size if "$top" in q else token_size
        end = offset + size
        if end >= len(items):
            return items[offset:], None
        carried = {k: v for k, v in q.items() if k not in ("$top", "$skiptoken")}
        query = urlencode({**carried, "$skiptoken": _skiptoken(end, size)}, quote_via=quote)
        base = self.api_url
        if self.faults.foreign_next_link_rate and self._roll("foreign", path, offset) < self.faults.foreign_next_link_rate:
            base = self.foreign_url
            if self.faults.foreign_next_link_path:
                path = path.rsplit("/", 1)[0] + "/elsewhere"
        return items[offset:end], f"{base}{path}?{query}"

    def show_runs_until(self, when: datetime | None) -> None:
        """List only runs that started at or before `when` (None: all runs)."""
        self.visible_until = None if when is None else to_ticks(when)

    def _runs(self, flow: Flow, path: str, q: dict[str, str]) -> Reply:
        runs = self.tenant.runs(flow)
        if self.visible_until is not None:
            runs = [r for r in runs if r.start <= self.visible_until]
        if self.retained_from is not None:
            runs = [r for r in runs if r.start >= self.retained_from]
        if q.get("$filter"):
            try:
                keep = _parse_filter(q["$filter"])
            except ValueError:
                return _error(400, "InvalidFilter", f"The filter '{q['$filter']}' is not valid or not supported.")
            runs = [r for r in runs if keep(r)]
        page, next_link = self._page(runs, path, q, "runs")
        se = self._issue_se()
        return self._list([self._run_json(flow, self.tenant.run_detail(flow, r.name), se) for r in page], next_link)

    # --- JSON shapes ---------------------------------------------------------------------------------------

    def _env_json(self, env: Any) -> dict:
        return {"name": env.name, "location": env.location, "type": "Microsoft.ProcessSimple/environments",
                "id": f"{BASE}/environments/{env.name}",
                "properties": {"displayName": env.display_name, "createdTime": fmt_ticks(env.created),
                               "isDefault": env.is_default, "provisioningState": "Succeeded",
                               "environmentSku": "Default" if env.is_default else "Production",
                               "azureRegionHint": "westeurope" if env.location == "europe" else "westus",
                               "runtimeEndpoints": {"microsoft.Flow": self.api_url}}}

    def _flow_json(self, flow: Flow, with_definition: bool) -> dict:
        definition = flow.definition
        env_id = f"{BASE}/environments/{flow.environment}"
        props: dict[str, Any] = {
            "apiId": "/providers/Microsoft.PowerApps/apis/shared_logicflows",
            "displayName": flow.display_name, "userType": "Owner", "state": flow.state,
            "createdTime": fmt_ticks(flow.created), "lastModifiedTime": fmt_ticks(flow.modified),
            "flowSuspensionReason": "None",
            "environment": {"name": flow.environment, "type": "Microsoft.ProcessSimple/environments", "id": env_id},
            "definitionSummary": {
                "triggers": [{"type": t["type"], "kind": t.get("kind")} for t in definition["triggers"].values()],
                "actions": [{"type": a["type"], "swaggerOperationId": a["inputs"].get("host", {}).get("operationId")}
                            for a in definition["actions"].values() if isinstance(a.get("inputs"), dict)]},
            "creator": {"tenantId": self.tenant.tenant_id, "objectId": flow.creator, "userId": flow.creator,
                        "userType": "ActiveDirectory"},
            "connectionReferences": {c: {"connectionName": f"{c}-{flow.workflow_hex[:8]}",
                                         "id": f"/providers/Microsoft.PowerApps/apis/{c}"}
                                     for c in flow.template.connectors},
            "flowFailureAlertSubscribed": False, "isManaged": False,
        }
        if with_definition:
            props["definition"] = definition
        return {"name": flow.flow_id, "id": f"{env_id}/flows/{flow.flow_id}",
                "type": "Microsoft.ProcessSimple/environments/flows", "properties": props}

    def _run_id(self, flow: Flow, run: str) -> str:
        return f"{BASE}/environments/{flow.environment}/flows/{flow.flow_id}/runs/{run}"

    def _run_json(self, flow: Flow, detail: RunDetail, se: str, expand_actions: bool = False) -> dict:
        h, trigger = detail.header, detail.trigger
        trig: dict[str, Any] = {"name": trigger.name}
        self._put_links(trig, flow, detail, trigger, None, se)
        trig.update(self._times(trigger.start, trigger.end))
        trig.update({"correlation": {"clientTrackingId": h.client_tracking_id}, "code": "OK", "status": "Succeeded"})
        props: dict[str, Any] = {**self._times(h.start, h.end), "status": h.status,
                                 "correlation": {"clientTrackingId": h.client_tracking_id}, "trigger": trig}
        if h.status == "Failed":
            props["code"] = "ActionFailed"
            props["error"] = {"code": "ActionFailed", "message": "An action failed. No dependent actions succeeded."}
        if expand_actions:
            props["actions"] = {s.name: self._action_json(flow, detail, s, se, expanded=True)["properties"]
                                for s in detail.actions.values()}
        return {"name": h.name, "id": self._run_id(flow, h.name), "type": "Microsoft.ProcessSimple/environments/flows/runs",
                "properties": props}

    @staticmethod
    def _times(start: int, end: int | None) -> dict[str, str]:
        return {"startTime": fmt_ticks(start), **({"endTime": fmt_ticks(end)} if end is not None else {})}

    def _action_json(self, flow: Flow, detail: RunDetail, step: Step, se: str, expanded: bool) -> dict:
        props: dict[str, Any] = {}
        f = self.faults
        skipped = (step.repetitions is None and f.skipped_action_rate
                   and self._roll("skipped", detail.header.name, step.name) < f.skipped_action_rate)
        dropped = (step.repetitions is None and f.drop_links_rate
                   and self._roll("drop", detail.header.name, step.name) < f.drop_links_rate)
        if step.repetitions is not None:
            props["repetitionCount"] = len(step.repetitions)   # the links are on the repetitions
        elif not skipped and not dropped and not (
                expanded and f.expand_missing_links
                and self._roll("expand", detail.header.name, step.name) < f.expand_missing_links):
            self._put_links(props, flow, detail, step, None, se)
        props.update(self._times(step.start, step.end))
        props["correlation"] = {"actionTrackingId": step.tracking_id,
                                "clientTrackingId": detail.header.client_tracking_id}
        props.update({"status": "Skipped" if skipped else step.status, "code": "ActionSkipped" if skipped else step.code})
        if step.status == "Failed":
            props["error"] = {"code": step.code, "message": "The upstream service returned an error."}
        return {"name": step.name, "id": f"{self._run_id(flow, detail.header.name)}/actions/{step.name}",
                "type": "Microsoft.ProcessSimple/environments/flows/runs/actions", "properties": props}

    def _repetitions_json(self, flow: Flow, detail: RunDetail, step: Step, se: str) -> list[dict]:
        base = f"{self._run_id(flow, detail.header.name)}/actions/{step.name}/repetitions"
        items = []
        for rep in step.repetitions or ():
            props: dict[str, Any] = {"repetitionIndexes": [{"scopeName": step.loop, "itemIndex": rep.index}],
                                     "trackingId": rep.tracking_id}
            self._put_links(props, flow, detail, step, rep, se)
            props.update(self._times(rep.start, rep.end))
            props.update({"correlation": {"actionTrackingId": rep.tracking_id,
                                          "clientTrackingId": detail.header.client_tracking_id},
                          "status": rep.status, "code": "OK"})
            items.append({"name": rep.name, "id": f"{base}/{rep.name}",
                          "type": "Microsoft.ProcessSimple/environments/flows/runs/actions/repetitions",
                          "properties": props})
        return items

    def _scope_repetitions_json(self, flow: Flow, detail: RunDetail, loop: Step) -> list[dict]:
        inner = next((s for s in detail.actions.values() if s.loop == loop.name), None)
        base = f"{self._run_id(flow, detail.header.name)}/actions/{loop.name}/scopeRepetitions"
        return [{"name": rep.name, "id": f"{base}/{rep.name}",
                 "type": "Microsoft.ProcessSimple/environments/flows/runs/actions/scopeRepetitions",
                 "properties": {"repetitionIndexes": [{"scopeName": loop.name, "itemIndex": rep.index}],
                                **self._times(rep.start, rep.end),
                                "correlation": {"actionTrackingId": rep.tracking_id,
                                                "clientTrackingId": detail.header.client_tracking_id},
                                "status": rep.status, "code": "NotSpecified"}}
                for rep in (inner.repetitions if inner and loop.iterations is not None else ())]

    # --- content links ---------------------------------------------------------------------------------------

    def _issue_se(self) -> str:
        """The link expiry (`se`) for one API response. Strictly increasing, so links issued after an
        expire_links_once revocation are always newer than the revoked ones."""
        with self._lock:
            se = max(to_ticks(datetime.now(timezone.utc)) + self.link_lifetime_ticks, self._last_se + 1)
            self._last_se = se
        return fmt_ticks(se)

    def _sign(self, path: str, se: str) -> str:
        mac = hmac.new(self._sig_key, f"{path}\n{se}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _put_links(self, props: dict, flow: Flow, detail: RunDetail, step: Step, rep: Any, se: str) -> None:
        """Set inputsLink/outputsLink on props as the API shows them (secured: no uri, or null/absent)."""
        holder = rep if rep is not None else step
        prefix = "Trigger" if step is detail.trigger else "Action"
        for side, body in (("inputs", holder.inputs), ("outputs", holder.outputs)):
            if body is None:
                continue
            meta = {"contentVersion": body.md5, "contentSize": len(body.raw),
                    "contentHash": {"algorithm": "md5", "value": body.md5}}
            if side in step.secure:
                style = flow.secured_link_style
                if style != "absent":
                    props[f"{side}Link"] = None if style == "null" else {**meta, "secureData": {"properties": [side]}}
                continue
            tail = f"/runs/{detail.header.name}"
            if prefix == "Action":
                tail += f"/actions/{quote(step.name, safe='')}"
                if rep is not None:
                    tail += f"/repetitions/{rep.name}"
            tail += f"/contents/{prefix}{side.capitalize()}"
            path = f"/workflows/{flow.workflow_hex}{tail}"
            query = (f"api-version={CONTENT_API_VERSION}&se={quote(se, safe='')}"
                     f"&sp={quote(tail + '/read', safe='')}&sv=1.0&sig={self._sign(path, se)}")
            props[f"{side}Link"] = {"uri": f"{self.content_url}{path}?{query}", **meta}

    def _content(self, method: str, target: str, headers: Any) -> Reply | object:
        self._sleep()
        if headers.get("Authorization") is not None:
            with self._lock:
                self.content_auth_headers_seen.append(headers["Authorization"])
        url = urlsplit(target)
        reply = self._throttle(self._content_bucket, False)
        attempt = 0
        # Keyed by link path, not URL: `se` and `sig` change on every re-read of the run, and the
        # faults must not depend on the clock or on the server's signing key.
        key = f"content {method} {url.path}"
        if reply is None:
            reply, attempt = self._transient_fault(key)
        if reply is None:
            reply = self._malform(self._content_route(method, url.path, url.query), key, attempt)
            if reply.json_ok:
                self.stats.content_served(url.path, len(reply.body))
        return self._finish("content", "content", method, url.path, reply)

    def _content_route(self, method: str, path: str, query: str) -> Reply:
        m = _CONTENT_ROUTE.match(path)
        if m is None or method != "GET":
            return _error(404, "NotFound", "No such content.")
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        tail = path[len(f"/workflows/{m['hex']}"):]
        se_text = q.get("se", "")
        if (q.get("sv") != "1.0" or q.get("sp") != tail + "/read"
                or not hmac.compare_digest(q.get("sig", ""), self._sign(path, se_text))):
            return _error(403, "AuthorizationFailed", "The request signature is not valid.")
        se = parse_iso_ticks(se_text)
        expired = se < to_ticks(datetime.now(timezone.utc))
        run_name = unquote(m["run"])
        always = self.faults.always_expired_links
        if always is True or (always and run_name in always):
            expired = True
        elif self.faults.expire_links_once:
            with self._lock:
                revoked = self._revoked.setdefault(path, se)   # the first fetch of a path revokes its se
            expired = expired or se <= revoked
        if expired:
            self.stats.add(expired_links=1)
            return _error(403, "AuthorizationFailed", "The SAS token in the request has expired.")

        flow = self.tenant.flow_by_hex(m["hex"])
        detail = flow and self.tenant.run_detail(flow, run_name)
        if detail is None:
            return _error(404, "NotFound", "No such content.")
        kind = m["kind"]
        step = detail.trigger if kind.startswith("Trigger") else detail.actions.get(unquote(m["action"] or ""))
        holder: Any = step
        if step is not None and m["rep"]:
            holder = next((r for r in step.repetitions or () if r.name == m["rep"]), None)
        side = "inputs" if kind.endswith("Inputs") else "outputs"
        body: Body | None = getattr(holder, side, None) if holder is not None else None
        if body is None or side in step.secure:   # never signed; refuse even so
            return _error(404, "NotFound", "No such content.")
        return Reply(200, body.raw, {"Content-Type": "application/json; charset=utf-8"}, True)

    # --- Key Vault listener -------------------------------------------------------------------------------------

    def _vault(self, method: str, target: str, headers: Any) -> Reply:
        self._sleep()
        url = urlsplit(target)
        reply = self._vault_route(method, url.path, url.query, headers)
        return self._finish("vault", "vault", method, url.path, reply)

    def _vault_route(self, method: str, path: str, query: str, headers: Any) -> Reply:
        if not self._authorized(headers):
            challenge = (f'Bearer authorization="https://login.microsoftonline.com/{self.tenant.tenant_id}", '
                         'resource="https://vault.azure.net"')
            return _json(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                         {"WWW-Authenticate": challenge})
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        if not q.get("api-version", "").startswith("7."):
            return _error(400, "BadParameter", f"The specified version ({q.get('api-version')}) is not recognized.")
        m = _VAULT_ROUTE.match(path)
        if m is None or method != "GET":
            return _error(404, "NotFound", "No such operation.")
        vault = self.tenant.vault
        if m["name"] is None:
            items = [{"id": f"{self.vault_url}/secrets/{e.name}", "contentType": "text/plain",
                      "attributes": self._attributes(e.enabled, e.versions[-1])} for e in vault.values()]
            return self._vault_page(items, "/secrets", q)
        entry = vault.get(m["name"])
        if entry is None:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {m['name']} was not found in this key vault.")
        if m["version"] == "versions":
            items = [{"id": f"{self.vault_url}/secrets/{entry.name}/{v.version}", "contentType": "text/plain",
                      "attributes": self._attributes(entry.enabled, v)} for v in entry.versions]
            return self._vault_page(items, f"/secrets/{entry.name}/versions", q)
        version = (entry.versions[-1] if m["version"] is None
                   else next((v for v in entry.versions if v.version == m["version"]), None))
        if version is None:
            return _error(404, "SecretNotFound", f"A secret with (name/id) {m['name']}/{m['version']} was not found.")
        if not entry.enabled:
            return _error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                          innererror={"code": "SecretDisabled"})
        return _json(200, {"value": version.value, "id": f"{self.vault_url}/secrets/{entry.name}/{version.version}",
                           "contentType": "text/plain", "attributes": self._attributes(True, version)})

    @staticmethod
    def _attributes(enabled: bool, version: Any) -> dict:
        return {"enabled": enabled, "created": version.created, "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}

    def _vault_page(self, items: list, path: str, q: dict[str, str]) -> Reply:
        size = self.page_sizes["vault"]
        if "maxresults" in q:
            if not q["maxresults"].isdigit() or not 1 <= int(q["maxresults"]) <= 25:
                return _error(400, "BadParameter", "maxresults must be between 1 and 25.")
            size = int(q["maxresults"])
        try:
            offset = _read_skiptoken(q["$skiptoken"])[0] if "$skiptoken" in q else 0
        except (ValueError, KeyError, IndexError):
            return _error(400, "BadParameter", "The $skiptoken is not valid.")
        end = offset + size
        body: dict[str, Any] = {"value": items[offset:end], "nextLink": None}
        if end < len(items):
            body["nextLink"] = (f"{self.vault_url}{path}?api-version=7.4&$skiptoken={_skiptoken(end, size)}"
                                f"&maxresults={size}")
        return _json(200, body)

    # --- Dataverse listener -------------------------------------------------------------------------------------

    def _dataverse(self, method: str, target: str, headers: Any) -> Reply:
        self._sleep()
        url = urlsplit(target)
        reply = self._dataverse_route(method, url.path, url.query, headers)
        return self._finish("dataverse", "dataverse", method, url.path, reply)

    def _dataverse_route(self, method: str, path: str, query: str, headers: Any) -> Reply:
        if not self._authorized(headers):
            return _json(401, {"error": {"code": "0x80040220", "message": "Bearer token is missing or invalid."}},
                         {"WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/'
                                             f'{self.tenant.tenant_id}/oauth2/authorize"'})
        m = _DATAVERSE_ROUTE.match(path)
        if m is None or method != "GET":
            return _error(404, "0x80060888", f"Resource not found for the segment '{path.rsplit('/', 1)[-1]}'.")
        if self.faults.dataverse_denied:
            return _error(403, "0x80040220", "Principal user is missing prvReadEnvironmentVariableDefinition "
                                             "privilege on OTC=380 for entity 'environmentvariabledefinition'.")
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        select = [c.strip() for c in q.get("$select", "").split(",") if c.strip()]
        expand = q.get("$expand", "")
        em = re.fullmatch(rf"\s*{DATAVERSE_VALUES}(?:\(\$select=(?P<cols>[\w,]+)\))?\s*", expand) if expand else None
        if expand and em is None:
            return _error(400, "0x80060888", f"Could not find a property named '{expand}'.")
        size = self.page_sizes["dataverse"]
        prefer = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer") or "")
        if prefer:
            size = max(1, min(5000, int(prefer[1])))
        try:
            offset = _read_skiptoken(q["$skiptoken"])[0] if "$skiptoken" in q else 0
        except (ValueError, KeyError, IndexError):
            return _error(400, "0x80040203", "The $skiptoken is not valid.")
        rows = []
        for ev in self.tenant.env_variables[offset:offset + size]:
            full = {"schemaname": ev.schemaname, "displayname": ev.displayname, "type": ev.type,
                    "defaultvalue": ev.defaultvalue, "secretstore": 0 if ev.type == 100000005 else None,
                    "environmentvariabledefinitionid": ev.definition_id}
            row = {"@odata.etag": f'W/"{1000 + offset}"', "environmentvariabledefinitionid": ev.definition_id}
            row.update({c: full.get(c) for c in select} if select else full)
            if em is not None:
                cols = [c for c in (em["cols"] or "value").split(",") if c]
                value_row = {"value": ev.value, "environmentvariablevalueid": ev.definition_id[::-1]}
                row[DATAVERSE_VALUES] = [] if ev.value is None else [
                    {"@odata.etag": 'W/"2000"', **{c: value_row.get(c) for c in cols}}]
            rows.append(row)
        body: dict[str, Any] = {"@odata.context": f"{self.dataverse_url}/api/data/v9.2/$metadata#environmentvariabledefinitions",
                                "value": rows}
        end = offset + size
        if end < len(self.tenant.env_variables):
            kept = "&".join(part for part in query.split("&") if part and not part.startswith("$skiptoken="))
            body["@odata.nextLink"] = (f"{self.dataverse_url}{path}?{kept}&$skiptoken="
                                       f"{quote(_skiptoken(end, size), safe='')}")
        return _json(200, body)


class _BadRequest(Exception):
    """Raised while paging; turned into a 400 by the API listener."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
