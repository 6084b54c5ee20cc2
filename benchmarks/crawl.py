"""Crawl benchmark (prints, never asserts): the real `flowleaks sweep` against the loopback fake.

Throughput: 20 ms latency per request and a 100 requests/s API rate limit (token bucket holding one
second of requests); prints
runs/s, API requests per run, 429s received and the achieved API request rate over the allowed one.
Memory: peak RSS of a sweep over a 50,000-run tenant (no latency, no rate limit).

    .venv/bin/python benchmarks/crawl.py [--runs 2000] [--memory-runs 50000] [--skip-memory]
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone

from _harness import Measured, run_cli

from tests.fakeapi import FakeFlowApi, Faults, Tenant


def sweep(tenant: Tenant, faults: Faults) -> tuple[Measured, dict]:
    with tempfile.TemporaryDirectory() as tmp, FakeFlowApi(tenant, faults=faults) as api:
        env = {**api.env_vars(), "FLOWLEAKS_DB": f"{tmp}/bench.duckdb"}
        m = run_cli(["sweep", "--as-admin"], env)
        return m, dict(api.stats.by_kind)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000, help="runs in the throughput tenant")
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--rate-limit", type=float, default=100)
    ap.add_argument("--memory-runs", type=int, default=50_000)
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    now = datetime.now(timezone.utc)

    flows = 20
    tenant = Tenant.generate(seed=1, environments=2, flows_per_env=flows // 2, runs_per_flow=a.runs // flows,
                             now=now, history_days=29, running_fraction=0)
    m, kinds = sweep(tenant, Faults(latency_ms=a.latency_ms, rate_limit_rps=a.rate_limit, burst=int(a.rate_limit)))
    s = m.summary
    runs = s["runs"]["scanned"]
    api = s["api_requests"]
    rate = api / m.wall_s
    print(f"throughput: {runs} runs, {flows} flows, {a.latency_ms:.0f} ms latency, {a.rate_limit:.0f} req/s API limit")
    print(f"  wall {m.wall_s:.1f} s, exit {m.code}, complete {s['complete']}")
    print(f"  runs/s                   {runs / m.wall_s:.1f}")
    print(f"  API requests             {api} ({api / runs:.3f} per run); run reads per run "
          f"{kinds.get('run', 0) / runs:.3f}, actions-list fallbacks {kinds.get('actions', 0)}, "
          f"repetition pages {kinds.get('repetitions', 0)}")
    print(f"  content requests         {s['content_requests']} ({s['content_requests'] / runs:.2f} per run), "
          f"{s['bytes_downloaded'] / 1e6:.1f} MB")
    print(f"  429s received            {s['throttled']} ({100 * s['throttled'] / max(api, 1):.2f}% of API requests)")
    print(f"  achieved API rate        {rate:.1f} req/s = {rate / a.rate_limit:.2f} of the allowed rate")
    print(f"  peak RSS                 {m.peak_rss_mb:.0f} MB")

    if not a.skip_memory:
        per_flow = 1000
        big = Tenant.generate(seed=2, environments=2, flows_per_env=a.memory_runs // per_flow // 2,
                              runs_per_flow=per_flow, now=now, history_days=29, running_fraction=0)
        m, kinds = sweep(big, Faults())
        s = m.summary
        print(f"memory: {s['runs']['scanned']} runs scanned of {big.total_runs}, wall {m.wall_s:.0f} s "
              f"({s['runs']['scanned'] / m.wall_s:.0f} runs/s unthrottled), exit {m.code}")
        print(f"  peak RSS                 {m.peak_rss_mb:.0f} MB")
        print(f"  requests                 {s['requests']} ({s['content_requests']} content), "
              f"{s['bytes_downloaded'] / 1e6:.0f} MB downloaded")


if __name__ == "__main__":
    main()
