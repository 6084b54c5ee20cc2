"""Serve a cassette over real loopback HTTP, so a real `flowleaks sweep` can run against it.

Two listeners: the Flow API on 127.0.0.1 and the content links on `localhost` (a different host, so
the sweep's "no token to content hosts" rule is exercised for real). Absolute URLs inside recorded
bodies are rewritten to point at these listeners: the Flow API root to the API listener, each
`*.logic.azure.*` content host to `http://localhost:<port>/__host/<host>/…`.
"""
from __future__ import annotations

import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .cassette import Cassette, Interaction, normalise_uri

API_ORIGIN_RE = re.compile(r"https://(?:[a-z0-9-]+\.)?api\.flow\.microsoft\.com(?::443)?", re.I)
CONTENT_ORIGIN_RE = re.compile(r"https://([a-z0-9.-]+\.logic\.azure\.(?:com|us|cn))(?::443)?", re.I)
IGNORED_ON_FALLBACK = {"$filter", "$top"}


class ReplayServer:
    def __init__(self, cassette: Cassette, token: str | None = None):
        self.cassette = cassette
        self.token = token
        self.exact: dict[tuple[str, str], Interaction] = {}
        self.loose: dict[tuple[str, str], Interaction] = {}
        for i in cassette.interactions:
            uri = self._canonical(i.uri)
            self.exact.setdefault((i.method, normalise_uri(uri)), i)
            self.loose.setdefault((i.method, self._loose_key(uri)), i)
        self.requests = 0
        self.misses: list[str] = []
        self.content_auth_headers_seen: list[str] = []
        self._servers: list[ThreadingHTTPServer] = []

    @staticmethod
    def _canonical(uri: str) -> str:
        return normalise_uri(API_ORIGIN_RE.sub("https://api.flow.microsoft.com", uri))

    @staticmethod
    def _loose_key(uri: str) -> str:
        p = urlsplit(uri)
        q = sorted((k, v) for k, v in parse_qsl(p.query) if k not in IGNORED_ON_FALLBACK and k.lower() != "sig")
        return f"{p.netloc.lower()}{p.path}?{q}"

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
        """The FLOWLEAKS_* variables that point a sweep at this replay."""
        return {"FLOWLEAKS_FLOW_API_URL": self.api_url, "FLOWLEAKS_CONTENT_HOSTS": "localhost",
                "FLOWLEAKS_ACCESS_TOKEN": self.token or "replay-token"}

    def _serve(self, host: str, content: bool) -> ThreadingHTTPServer:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                replay.requests += 1
                if content:
                    if self.headers.get("Authorization"):
                        replay.content_auth_headers_seen.append("Authorization")
                    i = replay.lookup_content(self.path)
                else:
                    if replay.token and self.headers.get("Authorization") != f"Bearer {replay.token}":
                        return self._send(401, '{"error":{"code":"InvalidAuthenticationToken","message":"replay"}}')
                    i = replay.lookup_api(self.path)
                if i is None:
                    replay.misses.append(urlsplit(self.path).path)
                    return self._send(404, '{"error":{"code":"NotRecorded","message":"not in the cassette"}}')
                self._send(i.status, replay.rewrite(i.body), i.headers.get("content-type") or
                           i.headers.get("Content-Type") or "application/json")

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
        canon = self._canonical(uri)
        return self.exact.get(("GET", normalise_uri(canon))) or self.loose.get(("GET", self._loose_key(canon)))

    def lookup_api(self, path: str) -> Interaction | None:
        return self._find("https://api.flow.microsoft.com" + path)

    def lookup_content(self, path: str) -> Interaction | None:
        m = re.match(r"^/__host/([^/]+)(/.*)$", path)
        if not m:
            return None
        return self._find(f"https://{m.group(1)}{m.group(2)}")

    def rewrite(self, body: str) -> str:
        body = API_ORIGIN_RE.sub(self.api_url, body)
        return CONTENT_ORIGIN_RE.sub(lambda m: f"{self.content_url}/__host/{m.group(1)}", body)


def main(argv: list[str] | None = None) -> None:
    """`python -m scanner.replay CASSETTE`: serve until interrupted, printing the variables to use."""
    import time

    args = argv if argv is not None else sys.argv[1:]
    if not args:
        print("usage: python -m scanner.replay CASSETTE.yaml", file=sys.stderr)
        sys.exit(2)
    with ReplayServer(Cassette.load(args[0])) as server:
        for k, v in server.env().items():
            print(f"export {k}={v}")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
