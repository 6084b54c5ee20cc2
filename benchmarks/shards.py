"""Sharding benchmark (prints, never asserts): `flowleaks scan --shard K/N` in N processes at once, then
`flowleaks merge`, against the loopback fake; N = 1, 2, 4.

For each N: wall time of the N concurrent shard processes (and of each), the merge's wall time, the
API requests all shards made together (each shard lists every environment and flow, then reads only
its own flows' runs), and whether the merged database equals one unsharded `flowleaks scan` of the
same tenant: the same rows in findings, runs, flows, skipped, watermarks, environments, actions and
filtered, compared on every column but those naming a scan or a wall-clock time.

    .venv/bin/python benchmarks/shards.py [--runs 2000] [--flows 40] [--latency-ms 20] [--rate-limit R]
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from _harness import ROOT, Measured, run_cli

from scanner.store.merge import COMPARED, comparable_rows  # noqa: E402
from tests.fakeapi import FakeFlowApi, Faults, Tenant

KEY = "benchmark-fingerprint-key"

def differences(merged: Path, single: Path) -> list[str]:
    out = []
    for table in COMPARED:
        a, b = comparable_rows(merged, table), comparable_rows(single, table)
        if a != b:
            out.append(f"{table} ({len(a)} merged vs {len(b)} single rows)")
    return out


def scan_concurrently(api: FakeFlowApi, dbs: list[Path]) -> tuple[float, list[Measured]]:
    results: list[Measured | None] = [None] * len(dbs)

    def one(k: int) -> None:
        env = {**api.env_vars(), "FLOWLEAKS_FINGERPRINT_KEY": KEY, "FLOWLEAKS_DB": str(dbs[k])}
        results[k] = run_cli(["scan", "--as-admin", "--shard", f"{k}/{len(dbs)}"], env)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(dbs))]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start, [r for r in results if r is not None]


def cpu() -> tuple[float, float]:
    """CPU seconds used so far by (the CLI processes we ran, this process: the fake serving them)."""
    c, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime, me.ru_utime + me.ru_stime


def cpu_since(before: tuple[float, float]) -> str:
    now = cpu()
    return f"CPU {now[0] - before[0]:.0f} s flowleaks + {now[1] - before[1]:.0f} s fake"


def merge(out: Path, shards: list[Path]) -> tuple[float, int, str]:
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "scanner.cli", "merge", str(out), *map(str, shards)], cwd=ROOT,
                       capture_output=True, text=True)
    return time.monotonic() - start, p.returncode, p.stdout + p.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000, help="runs in the tenant")
    ap.add_argument("--flows", type=int, default=40)
    ap.add_argument("--latency-ms", type=float, default=20)
    ap.add_argument("--rate-limit", type=float, default=None, help="API requests/s across all processes")
    ap.add_argument("--shards", default="1,2,4")
    a = ap.parse_args()
    tenant = Tenant.generate(seed=5, environments=2, flows_per_env=a.flows // 2, runs_per_flow=a.runs // a.flows,
                             now=datetime.now(timezone.utc), history_days=29, running_fraction=0)
    faults = Faults(latency_ms=a.latency_ms, rate_limit_rps=a.rate_limit,
                    burst=int(a.rate_limit) if a.rate_limit else 10)
    limit = f"{a.rate_limit:.0f} req/s API limit" if a.rate_limit else "no API rate limit"
    import os

    print(f"machine: {os.cpu_count()} CPUs (the shards, the fake and the merge share them), load average "
          f"{os.getloadavg()[0]:.1f} before")
    print(f"tenant: {tenant.total_runs} runs in {len(tenant.flows)} flows, 2 environments; "
          f"{a.latency_ms:.0f} ms latency per request, {limit}")
    with tempfile.TemporaryDirectory() as tmp, FakeFlowApi(tenant, faults=faults) as api:
        d = Path(tmp)
        single = d / "single.duckdb"
        requests0, cpu0 = api.stats.requests, cpu()
        m = run_cli(["scan", "--as-admin"], {**api.env_vars(), "FLOWLEAKS_FINGERPRINT_KEY": KEY,
                                             "FLOWLEAKS_DB": str(single)})
        base_wall = m.wall_s
        single_requests = api.stats.requests - requests0
        runs = m.summary.get("runs", {}).get("scanned")
        print(f"single process (no --shard): wall {m.wall_s:6.1f} s, exit {m.code}, {runs} runs, "
              f"{single_requests} requests, peak RSS {m.peak_rss_mb:.0f} MB, {cpu_since(cpu0)}")
        for n in (int(x) for x in a.shards.split(",")):
            dbs = [d / f"n{n}-shard-{k}.duckdb" for k in range(n)]
            requests0, cpu0 = api.stats.requests, cpu()
            wall, results = scan_concurrently(api, dbs)
            requests, scan_cpu = api.stats.requests - requests0, cpu_since(cpu0)
            merge_s, code, text = merge(d / f"n{n}-merged.duckdb", dbs)
            diffs = differences(d / f"n{n}-merged.duckdb", single) if code in (0, 1) else ["merge failed"]
            each = ", ".join(f"{r.wall_s:.1f}" for r in results)
            exits = ",".join(str(r.code) for r in results)
            print(f"{n} shard{'s' if n > 1 else ' '}: wall {wall:6.1f} s (each: {each}; exits {exits}), "
                  f"merge {merge_s:4.1f} s (exit {code}), total {wall + merge_s:6.1f} s = "
                  f"{base_wall / (wall + merge_s):.2f}x the single process; {requests} requests "
                  f"({requests / max(single_requests, 1):.2f}x), {scan_cpu}; merged equals single: "
                  f"{'yes' if not diffs else 'NO: ' + ', '.join(diffs)}")
            if code not in (0, 1):
                print("  merge output: " + " | ".join(text.strip().splitlines()[-3:]))
    print(f"load average {os.getloadavg()[0]:.1f} after (other work on the machine skews the walls)")


if __name__ == "__main__":
    main()
