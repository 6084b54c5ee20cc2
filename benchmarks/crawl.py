"""Crawl benchmark (prints, never asserts): the real `flowleaks sweep` against the loopback fake.

Three throughput scenarios on one tenant (20 flows; --runs runs), each with 20 ms latency per request:
- `unlimited`: no rate limit: how fast the client itself is (runs/s, requests/s, CPU per request);
- `api-limited`: the API limited to 100 requests/s (token bucket holding one second);
- `both-limited`: 100 API requests/s and 300 content requests/s.
Each prints runs/s, requests/s, the client's CPU ms per request (the CLI process and its detection
workers, from wait4), 429s and the achieved API rate over the allowed one, and peak RSS. The client's
CPU per request without detection is `benchmarks/client.py`'s to measure (no detectors run there).
Memory: peak RSS of a sweep over a 50,000-run tenant (no latency, no rate limit).

    .venv/bin/python benchmarks/crawl.py [--runs 1000] [--scenario unlimited ...] [--jobs N]
                                         [--memory-runs 50000] [--skip-memory]
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone

from _harness import Measured, run_cli

from tests.fakeapi import FakeFlowApi, Faults, Tenant

SCENARIOS = {
    "unlimited": dict(),
    "api-limited": dict(rate_limit_rps=100, burst=100),
    "both-limited": dict(rate_limit_rps=100, burst=100, content_rate_limit_rps=300),
}


def sweep(tenant: Tenant, faults: Faults, extra: list[str]) -> tuple[Measured, dict]:
    with tempfile.TemporaryDirectory() as tmp, FakeFlowApi(tenant, faults=faults) as api:
        env = {**api.env_vars(), "FLOWLEAKS_DB": f"{tmp}/bench.duckdb"}
        m = run_cli(["sweep", "--as-admin", *extra], env)
        return m, dict(api.stats.by_kind)


def report(name: str, m: Measured, kinds: dict, limits: dict) -> None:
    s = m.summary
    runs = s["runs"]["scanned"]
    api, content = s["api_requests"], s["content_requests"]
    requests = api + content
    print(f"{name}: {runs} runs, exit {m.code}, complete {s['complete']}, wall {m.wall_s:.1f} s")
    print(f"  runs/s                   {runs / m.wall_s:.1f}")
    print(f"  requests/s               {requests / m.wall_s:.0f} ({api / m.wall_s:.1f} API, "
          f"{content / m.wall_s:.1f} content)")
    print(f"  client CPU               {m.cpu_s:.1f} s = {1000 * m.cpu_s / max(requests, 1):.2f} ms per request "
          f"(detection included)")
    print(f"  API requests             {api} ({api / runs:.3f} per run); run reads per run "
          f"{kinds.get('run', 0) / runs:.3f}, actions-list fallbacks {kinds.get('actions', 0)}")
    print(f"  content requests         {content} ({content / runs:.2f} per run), "
          f"{s['bytes_downloaded'] / 1e6:.1f} MB")
    print(f"  429s received            {s['throttled']} ({100 * s['throttled'] / max(requests, 1):.2f}% of requests)")
    if limits.get("rate_limit_rps"):
        rate = api / m.wall_s
        print(f"  achieved API rate        {rate:.1f} req/s = {rate / limits['rate_limit_rps']:.2f} of the allowed rate")
    if limits.get("content_rate_limit_rps"):
        rate = content / m.wall_s
        print(f"  achieved content rate    {rate:.1f} req/s = {rate / limits['content_rate_limit_rps']:.2f} "
              f"of the allowed rate")
    if limits:
        # the shortest time the limits allow for these request counts, over the time taken
        floor = max(api / limits.get("rate_limit_rps", float("inf")),
                    content / limits.get("content_rate_limit_rps", float("inf")))
        print(f"  achieved / allowed       {floor / m.wall_s:.2f} (the limits allow these requests in {floor:.1f} s)")
    print(f"  peak RSS                 {m.peak_rss_mb:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000, help="runs in the throughput tenant")
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all three")
    ap.add_argument("--jobs", help="passed to the sweep as --jobs (default: the CLI's)")
    ap.add_argument("--memory-runs", type=int, default=50_000)
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    now = datetime.now(timezone.utc)
    extra = ["--jobs", a.jobs] if a.jobs else []

    flows = 20
    tenant = Tenant.generate(seed=1, environments=2, flows_per_env=flows // 2, runs_per_flow=a.runs // flows,
                             now=now, history_days=29, running_fraction=0)
    print(f"tenant: {tenant.total_runs} runs in {flows} flows, {a.latency_ms:.0f} ms latency per request")
    for name in a.scenario or list(SCENARIOS):
        limits = SCENARIOS[name]
        m, kinds = sweep(tenant, Faults(latency_ms=a.latency_ms, **limits), extra)
        report(name, m, kinds, limits)

    if not a.skip_memory:
        per_flow = 1000
        big = Tenant.generate(seed=2, environments=2, flows_per_env=a.memory_runs // per_flow // 2,
                              runs_per_flow=per_flow, now=now, history_days=29, running_fraction=0)
        m, kinds = sweep(big, Faults(), extra)
        s = m.summary
        print(f"memory: {s['runs']['scanned']} runs scanned of {big.total_runs}, wall {m.wall_s:.0f} s "
              f"({s['runs']['scanned'] / m.wall_s:.0f} runs/s unthrottled), exit {m.code}")
        print(f"  peak RSS                 {m.peak_rss_mb:.0f} MB")
        print(f"  requests                 {s['requests']} ({s['content_requests']} content), "
              f"{s['bytes_downloaded'] / 1e6:.0f} MB downloaded")


if __name__ == "__main__":
    main()
