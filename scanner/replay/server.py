"""Serve a cassette over real loopback HTTP, so a real `flowleaks sweep` can run against it.

Two listeners: the Flow API on 127.0.0.1 and the content links on `localhost` (a different host, so
the sweep's "no token to content hosts" rule is exercised for real). Absolute URLs inside recorded
bodies are rewritten to point at these listeners, whatever hosts the cassette holds: the Flow API
origins (the real service's or a loopback fake's) to the API listener, every other recorded origin
(and each `*.logic.azure.*` content host) to `http://localhost:<port>/__host/<host>/…`.

Time: a cassette records when it was recorded (`recorded_at`). The replay moves every timestamp it
serves (run start/end, flow times, link `se` expiries) by `now - recorded_at`, in whole seconds, so
the runs are as old today as they were when recorded and a sweep's window (computed from the
scanner's own clock) selects the same runs on any day. Timestamps in request queries (`se`,
`$filter`) are moved back before matching. With that anchor, a content link whose `se` has passed
(by the replay's clock) is refused with 403, as the service does. A cassette without `recorded_at`
is served as recorded.
"""
from __future__ import annotations

import argparse
import re
import shlex
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from scanner.replay.cassette import Cassette, Interaction, normalise_uri, parse_time

API_ORIGIN_RE = re.compile(r"https://(?:[a-z0-9-]+\.)?api\.flow\.microsoft\.com(?::443)?", re.I)
CONTENT_ORIGIN_RE = re.compile(r"https://([a-z0-9.-]+\.logic\.azure\.(?:com|us|cn))(?::443)?", re.I)
IGNORED_ON_FALLBACK = {"$filter", "$top"}
# An ISO-8601 date and time as the API writes it, raw or URL-encoded (`:` as `%3A`, or `%253A` once
# more): the fraction and zone that follow are kept as written (the shift is whole seconds).
TIMESTAMP_RE = re.compile(r"(?<!\d)(\d{4})-(\d\d)-(\d\d)T(\d\d)(:|%3A|%253A)(\d\d)(?:\5)(\d\d)(?!\d)", re.I)
MASKED_TIME = "<time>"


def shift_times(text: str, seconds: int) -> str:
    """Every timestamp in `text` moved by `seconds`, each written back in its own format."""
    if not seconds:
        return text

    def move(m: re.Match) -> str:
        y, mo, d, h, _, mi, s = m.groups()
        try:
            t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s)) + timedelta(seconds=seconds)
        except (ValueError, OverflowError):  # not a real date: leave it as it is
            return m.group(0)
        sep = m.group(5)
        return f"{t:%Y-%m-%dT%H}{sep}{t:%M}{sep}{t:%S}"

    return TIMESTAMP_RE.sub(move, text)


def _split(uri: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(scheme, netloc, path, query pairs minus `sig`) of a normalised `uri`."""
    p = urlsplit(normalise_uri(uri))
    return p.scheme, p.netloc, p.path, parse_qsl(p.query, keep_blank_values=True)


class ReplayServer:
    def __init__(self, cassette: Cassette, token: str | None = None, now: datetime | None = None):
        self.cassette = cassette
        self.token = token
        # The replay's notion of now: the real clock, or the real clock moved to start at `now`.
        self._skew = (now - datetime.now(timezone.utc)) if now is not None else timedelta(0)
        anchor = parse_time(cassette.recorded_at) if cassette.recorded_at else None
        self.anchored = anchor is not None
        self.shift = round((self.now() - anchor).total_seconds()) if anchor else 0
        self.api_origins: set[str] = set()
        for i in cassette.interactions:
            scheme, netloc, path, _ = _split(i.uri)
            origin = f"{scheme}://{netloc}"
            if API_ORIGIN_RE.fullmatch(origin) or path.startswith("/providers/"):
                self.api_origins.add(origin)
        self.origins = {f"{s}://{n}" for s, n, _, _ in map(_split, (i.uri for i in cassette.interactions))}
        self.exact: dict[tuple, Interaction] = {}
        self.masked: dict[tuple, Interaction] = {}
        self.loose: dict[tuple, Interaction] = {}
        for i in cassette.interactions:
            for table, key in zip((self.exact, self.masked, self.loose), self._keys(i.uri)):
                table.setdefault((i.method, key), i)
        self._origin_re = self._origins_pattern()
        self.requests = 0
        self.misses: list[str] = []
        self.expired: list[str] = []
        self.content_auth_headers_seen: list[str] = []
        self._servers: list[ThreadingHTTPServer] = []

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self._skew

    def _keys(self, uri: str) -> tuple[tuple, tuple, tuple]:
        """Exact, `$filter`-times-masked and loose (no `$filter`/`$top`) keys of a recorded-time URI.
        An API request is matched by path and query alone (any recorded API origin), a content link
        by its recorded host too."""
        scheme, netloc, path, q = _split(uri)
        where = ("api",) if f"{scheme}://{netloc}" in self.api_origins else ("content", netloc)
        masked = [(k, TIMESTAMP_RE.sub(MASKED_TIME, v) if k == "$filter" else v) for k, v in q]
        loose = [(k, v) for k, v in q if k not in IGNORED_ON_FALLBACK]
        return tuple((*where, path, urlencode(sorted(x))) for x in (q, masked, loose))

    def _origins_pattern(self) -> re.Pattern:
        alts = []
        for origin in sorted(self.origins, key=len, reverse=True):
            default = "" if re.search(r":\d+$", origin) else {"https": "(?::443)?", "http": "(?::80)?"}.get(
                origin.split(":", 1)[0], "")
            alts.append(re.escape(origin) + default)
        dyn = f"(?P<d>{'|'.join(alts)})(?![\\w.-]|:\\d)|" if alts else ""
        return re.compile(f"{dyn}(?P<a>{API_ORIGIN_RE.pattern})|{CONTENT_ORIGIN_RE.pattern}", re.I)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> "ReplayServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.api = self._serve("127.0.0.1", content=False)
        self.content = self._serve("localhost", content=True)
        self.api_url = f"http://127.0.0.1:{self.api.server_address[1]}"
        self.content_url = f"http://localhost:{self.content.server_address[1]}"

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def env(self) -> dict[str, str]:
        """The FLOWLEAKS_* variables that point a sweep at this replay (the fake's names and order)."""
        return {"FLOWLEAKS_FLOW_API_URL": self.api_url, "FLOWLEAKS_ACCESS_TOKEN": self.token or "replay-token",
                "FLOWLEAKS_CONTENT_HOSTS": "localhost"}

    def _serve(self, host: str, content: bool) -> ThreadingHTTPServer:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                replay.requests += 1
                if content:
                    if self.headers.get("Authorization"):
                        replay.content_auth_headers_seen.append("Authorization")
                    if replay.link_expired(self.path):
                        replay.expired.append(urlsplit(self.path).path)
                        return self._send(403, '{"error":{"code":"AuthorizationFailed",'
                                               '"message":"The SAS token in the request has expired."}}')
                    i = replay.lookup_content(self.path)
                else:
                    if replay.token and self.headers.get("Authorization") != f"Bearer {replay.token}":
                        return self._send(401, '{"error":{"code":"InvalidAuthenticationToken","message":"replay"}}')
                    i = replay.lookup_api(self.path)
                if i is None:
                    replay.misses.append(urlsplit(self.path).path)
                    return self._send(404, '{"error":{"code":"NotRecorded","message":"not in the cassette"}}')
                self._send(i.status, replay.rewrite(shift_times(i.body, replay.shift)),
                           i.headers.get("content-type") or i.headers.get("Content-Type") or "application/json")

            def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet: request lines hold SAS queries
                pass

        server = ThreadingHTTPServer((host, 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server

    # -- matching and rewriting -----------------------------------------------------------------

    def _find(self, uri: str) -> Interaction | None:
        """The interaction recorded for a request URI; its timestamps are moved back to recorded time."""
        exact, masked, loose = self._keys(shift_times(uri, -self.shift))
        return (self.exact.get(("GET", exact)) or self.masked.get(("GET", masked))
                or self.loose.get(("GET", loose)))

    def lookup_api(self, path: str) -> Interaction | None:
        # any recorded API origin will do: API keys hold no origin
        return self._find(f"{next(iter(self.api_origins), 'https://api.flow.microsoft.com')}{path}")

    def lookup_content(self, path: str) -> Interaction | None:
        m = re.match(r"^/__host/([^/]+)(/.*)$", path)
        if not m:
            return None
        return self._find(f"https://{m.group(1)}{m.group(2)}")

    def link_expired(self, path: str) -> bool:
        """A content link whose `se` (as served, i.e. moved) has passed by the replay's clock."""
        if not self.anchored:
            return False
        se = dict(parse_qsl(urlsplit(path).query)).get("se")
        when = parse_time(unquote(se)) if se else None
        return when is not None and when < self.now()

    def rewrite(self, body: str) -> str:
        def to_listener(m: re.Match) -> str:
            if m.group("a"):
                return self.api_url
            if m.group("d") is None:  # a *.logic.azure.* host the cassette holds no request for
                return f"{self.content_url}/__host/{m.group(m.lastindex).lower()}"
            scheme, netloc, _, _ = _split(m.group("d"))
            if f"{scheme}://{netloc}" in self.api_origins:
                return self.api_url
            return f"{self.content_url}/__host/{netloc}"

        return self._origin_re.sub(to_listener, body)


def main(argv: list[str] | None = None) -> None:
    """`python -m scanner.replay CASSETTE`: serve until interrupted, printing the variables to use."""
    import time

    p = argparse.ArgumentParser(
        prog="python -m scanner.replay",
        description="Serve a flowleaks cassette over loopback HTTP and print the variables that point "
                    "`flowleaks sweep` at it (as `export NAME=value` lines). Ctrl-C to stop.")
    p.add_argument("cassette", metavar="CASSETTE.yaml", help="a cassette written by `flowleaks record`")
    p.add_argument("--token", help="bearer token the API listener requires (default: any)")
    p.add_argument("--now", type=_iso_arg, metavar="ISO-8601",
                   help="the replay's clock (timestamps are moved relative to it); default: now")
    args = p.parse_args(argv)
    try:
        cassette = Cassette.load(args.cassette)
    except OSError as exc:
        p.exit(2, f"python -m scanner.replay: cannot read {args.cassette}: {exc.strerror or exc}\n")
    except ValueError as exc:  # ours: says what is wrong, quotes nothing from the file
        p.exit(2, f"python -m scanner.replay: {args.cassette} is not a cassette: {exc}\n")
    except Exception as exc:  # noqa: BLE001 - a malformed cassette: one line, not a traceback (and
        # not the parser's message, which quotes the file, and a cassette's content may be sensitive)
        p.exit(2, f"python -m scanner.replay: {args.cassette} is not a cassette ({exc.__class__.__name__})\n")
    with ReplayServer(cassette, token=args.token, now=args.now) as server:
        for k, v in server.env().items():
            print(f"export {k}={shlex.quote(v)}")
        print(f"# {len(cassette.interactions)} recorded interactions; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _iso_arg(text: str) -> datetime:
    when = parse_time(text)
    if when is None:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time with a zone: {text!r}")
    return when
