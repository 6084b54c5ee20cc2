"""The connection layer (scanner/net/transport.py) against a server that answers what no HTTP server
should: a malformed answer is a transport failure, retried and then given up as one (recorded as a
skip by the crawl), never an aiohttp error that escapes and stops the scan; a port nobody listens on
is a failed connection (the short retry budget)."""
from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from scanner.net.errors import TransportFailed
from tests.loopback import http_client

AUD = "https://service.flow.microsoft.com/"
MALFORMED = {
    "bad status line": b"HTTP/1.1 2OO OK\r\n\r\n",
    "not HTTP at all": b"garbage\r\n\r\n",
    "bad header": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nBad Header\r\n\r\nhello",
    "body cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
}


class RawServer:
    """Answers every connection with `reply`, byte for byte, then closes it."""

    def __init__(self, reply: bytes):
        self.reply, self.requests = reply, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                self.requests += 1
                conn.sendall(self.reply)


@pytest.mark.parametrize("what", sorted(MALFORMED))
@pytest.mark.parametrize("kind", ["api", "content"])
def test_a_malformed_answer_is_a_transport_failure_retried_then_given_up(what, kind):
    server = RawServer(MALFORMED[what])
    try:
        async def go():
            async with http_client("t", max_attempts=3) as c:
                if kind == "api":
                    url = f"http://127.0.0.1:{server.port}/x"
                    c.allow_origin(AUD, url)
                    await c.get_json(url, AUD)
                else:
                    await c.fetch_content(f"http://localhost:{server.port}/c?sig=abc")
        with pytest.raises(TransportFailed) as caught:
            asyncio.run(go())
    finally:
        server.sock.close()
    assert server.requests == 3, "each attempt reached the server: retried by the client's policy"
    assert "sig=abc" not in str(caught.value)


def test_nothing_listening_is_a_failed_connection():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def go():
        async with http_client("t") as c:
            url = f"http://127.0.0.1:{port}/x"
            c.allow_origin(AUD, url)
            await c.get_json(url, AUD)
    with pytest.raises(TransportFailed) as caught:
        asyncio.run(go())
    assert caught.value.no_connection and "connection refused" in str(caught.value)
