"""Shared pieces of the hardening tests: clients, raw loopback servers, the fuzz example budget."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable

from scanner.net.http import HttpClient
from tests.loopback import ScriptedServer, http_client, ok, run  # noqa: F401 - re-exported

AUD = "https://service.flow.microsoft.com/"
TOKEN = "hardening-token-Zq8w3Lx9Pv2Rk7"


def fuzz_examples(default: int = 50) -> int:
    try:
        return max(1, int(os.environ.get("FLOWLEAKS_FUZZ_EXAMPLES", default)))
    except ValueError:
        return default


def client(**cfg) -> HttpClient:
    cfg.setdefault("max_backoff", 0.02)
    cfg.setdefault("max_attempts", 3)
    return http_client(TOKEN, **cfg)


class RawServer:
    """A loopback TCP server whose per-connection behaviour is a function of (request head, socket):
    for trickling bytes, streaming past a declared size, or anything ScriptedServer can't say."""

    def __init__(self, respond: Callable[[bytes, socket.socket], None], host: str = "127.0.0.1"):
        self.respond = respond
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host = host
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.content_url = f"http://localhost:{port}"  # a content host on the 'localhost' allow-list
        self.stop = threading.Event()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            conn.settimeout(5)
            try:
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                self.requests.append(head)
                self.respond(head, conn)
            except OSError:
                pass

    def __enter__(self) -> "RawServer":
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        time.sleep(0.15)
        self.sock.close()


class Scripted(ScriptedServer):
    """tests.loopback.ScriptedServer with a short poll interval, so shutdown takes ~50 ms, not 0.5 s."""

    def __enter__(self) -> "Scripted":
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self


# -- the real CLI in a subprocess ------------------------------------------------------------------

import subprocess  # noqa: E402
import sys  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FLOWLEAKS = ROOT / ".venv" / "bin" / "flowleaks"
FINGERPRINT_KEY = "hardening-fingerprint-key-0123456789"
# The fake tenant's clock: fixed to the second, so two sweeps of one tenant see the same window.
NOW = datetime.now(timezone.utc).replace(microsecond=0)
SINCE = (NOW - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
UNTIL = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")

# Run the CLI with the in-process detection (Detector._detect_here) failing after `after` payloads,
# with an exception whose text quotes the payload (planted secrets) and the access token: what a
# careless error path would print. FLOWLEAKS_JOBS=1 keeps every body on that path (worker processes
# would not see the patch; these tenants are too small to start them anyway).
INJECT = r'''
import os, sys
import scanner.pipeline.detection as detection
_orig = detection.Detector._detect_here
_calls = [0]
def _detect_here(self, body, *a, **k):
    _calls[0] += 1
    if _calls[0] > int(os.environ["HARDENING_FAIL_AFTER"]):
        raise RuntimeError("boom scanning " + body.decode("utf-8", "replace")
                           + " with token " + os.environ.get("FLOWLEAKS_ACCESS_TOKEN", ""))
    return _orig(self, body, *a, **k)
detection.Detector._detect_here = _detect_here
os.environ["FLOWLEAKS_JOBS"] = "1"
from scanner.cli.main import main
sys.argv = ["flowleaks"] + sys.argv[1:]
main()
'''


def flowleaks(args: list[str], api_env: dict[str, str] | None = None, *, fail_after: int | None = None,
              extra_env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEAKS_")}
    env.update(api_env or {})
    env.setdefault("FLOWLEAKS_FINGERPRINT_KEY", FINGERPRINT_KEY)
    env.update(extra_env or {})
    env = {k: v for k, v in env.items() if v is not None}
    if fail_after is None:
        cmd = [str(FLOWLEAKS), *args]
    else:
        env["HARDENING_FAIL_AFTER"] = str(fail_after)
        cmd = [sys.executable, "-c", INJECT, *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: os.umask(0o022))


def sweep_args(db: Path, *more: str) -> list[str]:
    return ["sweep", "--as-admin", "--db", str(db), "--quiet", "--since", SINCE, "--until", UNTIL, *more]


def db_rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
