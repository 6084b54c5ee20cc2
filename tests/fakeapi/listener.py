"""HTTP plumbing the fake's listeners share: a reply, the request handler and the threaded server.

Each listener is a real ThreadingHTTPServer speaking HTTP/1.1 keep-alive; its `app(method, target,
headers)` returns a `Reply`, or `DROP` to close the connection without answering.
"""
from __future__ import annotations

import json
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, NamedTuple

DROP = object()  # handler result: close the connection without answering


class Reply(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]
    json_ok: bool = False   # a good JSON 200 the malformed fault may truncate


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, status == 200)


def error_reply(status: int, code: str, message: str, **extra: Any) -> Reply:
    return json_reply(status, {"error": {"code": code, "message": message, **extra}})


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
            reply = error_reply(500, "FakeServerBug", "unhandled exception in the fake server")
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


class Listener(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256   # clients open many connections at once; the default backlog is 5

    def __init__(self, address: tuple[str, int], app: Callable[..., Any]):
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # client hang-ups are normal
            super().handle_error(request, client_address)
