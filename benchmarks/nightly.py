"""Nightly-scan benchmark (prints, never asserts): the real `flowleaks scan` three times on one database.

1. first scan of a tenant whose newest 10% of runs are not there yet,
2. a rescan with nothing new (the target: at most 2 requests per flow),
3. a rescan after the 10% new runs arrive (requests should grow with the new runs only).
Requests are counted by the fake server (the truth), bytes are content bytes downloaded.

    .venv/bin/python benchmarks/nightly.py [--runs 1000] [--latency-ms 5]
"""
from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone

from _harness import run_cli

from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.fakeapi.model import fmt_ticks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--flows", type=int, default=20)
    ap.add_argument("--latency-ms", type=float, default=5)
    a = ap.parse_args()
    tenant = Tenant.generate(seed=3, environments=2, flows_per_env=a.flows // 2, runs_per_flow=a.runs // a.flows,
                             now=datetime.now(timezone.utc), history_days=29)
    starts = sorted(r.start for f in tenant.flows for r in tenant.runs(f))
    cut = starts[int(len(starts) * 0.9)]
    new_runs = sum(1 for s in starts if s > cut)
    print(f"tenant: {len(starts)} runs in {len(tenant.flows)} flows; {new_runs} runs ({100 * new_runs / len(starts):.0f}%) "
          f"arrive before the third scan; {a.latency_ms:.0f} ms latency")
    with tempfile.TemporaryDirectory() as tmp, FakeFlowApi(tenant, faults=Faults(latency_ms=a.latency_ms)) as api:
        env = {**api.env_vars(), "FLOWLEAKS_DB": f"{tmp}/nightly.duckdb"}
        api.show_runs_until(datetime.fromisoformat(fmt_ticks(cut).replace("Z", "+00:00")))
        for label in ("first scan", "no-change rescan", "10% new runs"):
            if label == "10% new runs":
                api.show_runs_until(None)
            before_requests, before_bytes = api.stats.requests, api.stats.content_bytes
            before_kinds = dict(api.stats.by_kind)
            m = run_cli(["scan", "--as-admin"], env)
            requests = api.stats.requests - before_requests
            kinds = {k: v - before_kinds.get(k, 0) for k, v in api.stats.by_kind.items() if v - before_kinds.get(k, 0)}
            s = m.summary
            if not s:
                raise SystemExit(f"{label}: flowleaks exited {m.code}: {m.stderr[-500:]}")
            print(f"{label:18s} requests {requests:6d} ({requests / len(tenant.flows):.1f} per flow), "
                  f"content {s['content']['fetched']:5d} fetched / {s['content']['reused']:4d} reused, "
                  f"{(api.stats.content_bytes - before_bytes) / 1e6:6.2f} MB, wall {m.wall_s:5.1f} s, "
                  f"runs {s['runs']['scanned']:5d}, exit {m.code}")
            print(f"{'':18s} by kind: {kinds}")


if __name__ == "__main__":
    main()
