"""Client benchmark (prints, never asserts): the HTTP client's CPU per request, with no detection.

The loopback fake (`python -m tests.fakeapi`, --latency-ms per request) runs in its own process, so
`time.process_time()` here counts only the client: HttpClient, its transport, the event loop and
JSON parsing. First a realistic set of URLs is discovered from the fake (FlowApi lists the runs of
some flows and reads each with `$expand=properties/actions`; the content links are the runs'
`inputsLink`/`outputsLink` URIs). Then, per variant and repeat, a fresh HttpClient is warmed up and
does a fixed workload in a crawl's mix: 2 run reads (`get_json`) per 9 content downloads
(`fetch_content`), 32 workers, at most 16 API + 16 content requests in flight (HttpClient's slots).
Variants (all with HttpConfig's defaults, pool = 16 + 16 connections):
- `httpx`: httpx.AsyncHTTPTransport (httpcore), as HttpClient is configured today;
- `aiohttp`: httpx_aiohttp.AiohttpTransport over an aiohttp ClientSession (TCPConnector);
- `default`: transport=None, whatever HttpClient builds itself (its transport class is printed).
HTTP/2 is measured only if it can be against this fake (a line says why not). Last, a JSON line: CPU
µs per `json.loads` vs `orjson.loads` of a typical run body and of a typical content body.

    .venv/bin/python benchmarks/client.py [--requests 2000] [--repeat 3] [--latency-ms 20]
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import Counter

import aiohttp
import httpx
import httpx_aiohttp
import yarl

from _harness import ROOT

from scanner.api.flow_api import FlowApi, content_links, is_secured
from scanner.net.auth import StaticToken
from scanner.net.config import HttpConfig
from scanner.net.http import HttpClient

AUD = "https://service.flow.microsoft.com/"
WORKERS = 32


def start_fake(latency_ms: float) -> tuple[subprocess.Popen, dict[str, str]]:
    cmd = [sys.executable, "-m", "tests.fakeapi", "--seed", "1", "--environments", "2", "--flows", "10",
           "--runs", "50", "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    env: dict[str, str] = {}
    try:
        for line in proc.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                env[name] = shlex.split(value)[0] if value else ""
            elif line.startswith("#"):
                return proc, env
        raise RuntimeError(f"the fake exited before serving (code {proc.wait()})")
    except BaseException:
        stop_fake(proc)
        raise


def stop_fake(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_cpu(pid: int) -> float | None:
    """utime + stime of another process (Linux /proc), to tell whether the fake is the bottleneck."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def transports() -> dict[str, object]:
    pool = HttpConfig().concurrency + HttpConfig().content_slots
    return {
        "httpx": lambda: httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool)),
        "aiohttp": lambda: httpx_aiohttp.AiohttpTransport(client=lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool, keepalive_timeout=30),
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)),
        "default": lambda: None,
    }


def client(env: dict[str, str], transport) -> HttpClient:
    cfg = HttpConfig(content_host_suffixes=tuple(env["FLOWLEAKS_CONTENT_HOSTS"].split(",")))
    http = HttpClient(StaticToken(env["FLOWLEAKS_ACCESS_TOKEN"]), cfg, transport=transport)
    http.allow_origin(AUD, env["FLOWLEAKS_FLOW_API_URL"])
    return http


async def discover(env: dict[str, str], flows_wanted: int = 8) -> tuple[list[str], list[str], list[bytes],
                                                                      list[bytes]]:
    """Run-read URLs and content URIs, as a crawl would see them, plus some raw bodies of each."""
    async with client(env, transports()["httpx"]()) as http:
        api = FlowApi(http, env["FLOWLEAKS_FLOW_API_URL"], AUD, as_admin=True, pinned_root=True)
        pairs = []
        for e in await api.environments():
            async for flow in api.flows(e.name):
                pairs.append((e.name, flow["name"]))
        pairs = pairs[::max(1, len(pairs) // flows_wanted)][:flows_wanted]
        reads: list[tuple[str, str, str]] = []
        for e, f in pairs:
            async for page in api.runs(e, f, None):
                reads += [(e, f, r["name"]) for r in page]
                break   # the first page of each flow is plenty
        slots = asyncio.Semaphore(16)

        async def read(e: str, f: str, r: str) -> dict:
            async with slots:
                return await api.get_run(e, f, r)

        runs = await asyncio.gather(*(read(*t) for t in reads))
        run_urls = [api._url(api._run_path(*t), **{"$expand": "properties/actions"}) for t in reads]
        uris = []
        for run in runs:
            props = run.get("properties") or {}
            for p in [props.get("trigger") or {}, *(props.get("actions") or {}).values()]:
                uris += [link["uri"] for link in content_links(p).values() if not is_secured(link)]
        run_bodies = [json.dumps(r, separators=(",", ":")).encode() for r in runs[:200]]
        content_bodies = await asyncio.gather(*(http.fetch_content(u) for u in uris[:200]))
    return run_urls, uris, run_bodies, list(content_bodies)


async def workload(http: HttpClient, run_urls: list[str], uris: list[str], n: int, offset: int) -> Counter:
    """n requests, 2 run reads per 9 content downloads in crawl order, WORKERS workers."""
    jobs = iter(range(offset, offset + n))
    errors: Counter = Counter()

    async def worker() -> None:
        for i in jobs:
            try:
                if (2 * i) % 11 < 2:
                    await http.get_json(run_urls[i % len(run_urls)], AUD, "run")
                else:
                    await http.fetch_content(uris[i % len(uris)])
            except Exception as exc:  # counted and printed: a benchmark reports, never stops
                errors[f"{type(exc).__name__}: {str(exc)[:100]}"] += 1

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return errors


def measure(name: str, make, env, run_urls, uris, n: int, fake_pid: int) -> tuple[float, float, str]:
    async def go() -> tuple[float, float, float, Counter, str]:
        async with client(env, make()) as http:
            t = type(http.client._transport)
            kind = f"{t.__module__}.{t.__qualname__}"
            await workload(http, run_urls, uris, max(100, n // 10), 10**6)   # warm-up: connections, caches
            gc.collect()
            fake0, cpu0, t0 = proc_cpu(fake_pid), time.process_time(), time.perf_counter()
            errors = await workload(http, run_urls, uris, n, 0)
            wall, cpu, fake1 = time.perf_counter() - t0, time.process_time() - cpu0, proc_cpu(fake_pid)
            fake = fake1 - fake0 if fake0 is not None and fake1 is not None else float("nan")
            return wall, cpu, fake, errors, kind

    wall, cpu, fake, errors, kind = asyncio.run(go())
    print(f"  {name:8} {n:6d} {wall:8.2f} {n / wall:9.0f} {cpu:9.2f} {1000 * cpu / n:9.3f} {fake:8.2f}   {kind}")
    for what, count in errors.most_common(5):
        print(f"           {count} errors: {what}")
    return wall, cpu, kind


def http2_line() -> str:
    if importlib.util.find_spec("h2") is None:
        why = "the h2 package is not installed (httpx[http2])"
    else:
        why = "h2 is installed, but"
    return (f"HTTP/2: not measured: {why}; and the fake serves HTTP/1.1 only, over plain http "
            "(ThreadingHTTPServer): httpx negotiates HTTP/2 only by TLS ALPN, and prior knowledge "
            "(http1=False) needs an h2c server")


def json_line(run_bodies: list[bytes], content_bodies: list[bytes], parses: int = 2000) -> None:
    try:  # not a dependency: it was measured, and left out (about 1% of a request's CPU)
        import orjson
    except ModuleNotFoundError:
        print("JSON: orjson is not installed (pip install orjson to compare it with json)")
        return
    def typical(bodies: list[bytes]) -> bytes:
        return sorted(bodies, key=len)[len(bodies) // 2]

    parts = []
    for what, body in (("run body", typical(run_bodies)), ("content body", typical(content_bodies))):
        cost = {}
        for name, loads in (("json.loads", json.loads), ("orjson.loads", orjson.loads)):
            loads(body)
            t0 = time.process_time()
            for _ in range(parses):
                loads(body)
            cost[name] = 1e6 * (time.process_time() - t0) / parses
        parts.append(f"{what} ({len(body)} B): json.loads {cost['json.loads']:.1f} µs, orjson.loads "
                     f"{cost['orjson.loads']:.1f} µs ({cost['json.loads'] / cost['orjson.loads']:.1f}x)")
    print(f"JSON, CPU per parse over {parses} parses: " + "; ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-ms", type=float, default=20, help="passed to the fake")
    a = ap.parse_args()
    proc, env = start_fake(a.latency_ms)
    try:
        run_urls, uris, run_bodies, content_bodies = asyncio.run(discover(env))
        requoted = sum(str(yarl.URL(u)) != u for u in uris)
        print(f"discovered {len(run_urls)} run reads and {len(uris)} content links "
              f"({len(uris) / len(run_urls):.1f} per run); {requoted} content URIs change when yarl "
              f"(aiohttp) parses them; fake latency {a.latency_ms:.0f} ms per request")
        print(f"  {'variant':8} {'reqs':>6} {'wall s':>8} {'req/s':>9} {'CPU s':>9} {'CPU ms/req':>9} "
              f"{'fake CPU':>8}   transport")
        results: dict[str, list[tuple[float, float, str]]] = {}
        for _ in range(a.repeat):   # round-robin, so a drift of the machine hits every variant alike
            for name, make in transports().items():
                results.setdefault(name, []).append(
                    measure(name, make, env, run_urls, uris, a.requests, proc.pid))
        print(f"summary over {a.repeat} repeats of {a.requests} requests (best / median):")
        for name, rows in results.items():
            per_req = [1000 * cpu / a.requests for _, cpu, _ in rows]
            rates = [a.requests / wall for wall, _, _ in rows]
            print(f"  {name:8} CPU ms/request {min(per_req):.3f} / {statistics.median(per_req):.3f}   "
                  f"requests/s {max(rates):.0f} / {statistics.median(rates):.0f}   ({rows[0][2]})")
        print(http2_line())
        json_line(run_bodies, content_bodies)
    finally:
        stop_fake(proc)


if __name__ == "__main__":
    main()
