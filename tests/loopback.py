"""A tiny scriptable HTTP server on 127.0.0.1 for client tests: real sockets, per-test behaviour."""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from scanner.net.auth import StaticToken
from scanner.net.config import HttpConfig
from scanner.net.http import HttpClient

Reply = tuple[int, dict, bytes]


class ScriptedServer:
    """handler(method, path, headers) -> (status, headers, body). Records every request."""

    def __init__(self, handler: Callable[[str, str, dict], Reply], host: str = "127.0.0.1"):
        self.handler = handler
        self.host = host
        self.requests: list[tuple[str, str, dict]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(("GET", self.path, headers))
                status, rh, body = outer.handler("GET", self.path, headers)
                rh = dict(rh)
                if status == 0:  # drop the connection without answering
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                no_length = rh.pop("X-No-Length", None) is not None  # body ends at close, length unknown
                for k, v in rh.items():
                    self.send_header(k, v)
                if no_length:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                elif "Content-Length" not in rh:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer((host, 0), H)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def __enter__(self) -> "ScriptedServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def http_client(token: str, **cfg) -> HttpClient:
    """The real client with test-friendly defaults: short backoff, 'localhost' as the content host."""
    cfg.setdefault("max_backoff", 0.05)
    cfg.setdefault("content_host_suffixes", ("localhost",))
    return HttpClient(StaticToken(token), HttpConfig(**cfg))


def run(coro):
    return asyncio.run(coro)


def ok(obj) -> Reply:
    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()
