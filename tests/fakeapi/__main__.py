"""Serve a generated tenant until killed: `python -m tests.fakeapi --seed 7 --runs 5 --latency-ms 20`.

Prints the environment variables a scanner needs as `export NAME=value` lines (the same lines as
`python -m scanner.replay`), then serves. With --truth FILE, the tenant's ground truth (every planted
secret occurrence, the risky definitions, the Key Vault's values; all fake) is written there as JSON
before serving. With --stats-file, the server's counters are written there as JSON every
--stats-interval seconds and once more on SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import threading
from datetime import datetime
from pathlib import Path

from .faults import Faults
from .server import FakeFlowApi
from .tenant import Tenant


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fakeapi", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--seed", type=int, default=7)
    a("--environments", type=int, default=2)
    a("--flows", type=int, default=5, help="flows per environment")
    a("--runs", type=int, default=5, help="runs per flow")
    a("--now", type=datetime.fromisoformat, help="tenant clock (ISO-8601 with offset); default: now")
    a("--token", default="test-token")
    a("--api-port", type=int, default=0)
    a("--content-port", type=int, default=0)
    a("--vault-port", type=int, default=0)
    a("--latency-ms", type=float, default=0)
    a("--rate-limit", type=float, help="API requests per second (token bucket)")
    a("--burst", type=int, default=10, help="token bucket capacity")
    a("--content-rate-limit", type=float, help="content requests per second")
    a("--error-rate", type=float, default=0.0)
    a("--drop-rate", type=float, default=0.0)
    a("--malformed-rate", type=float, default=0.0)
    a("--burst-429-every", type=int, default=0)
    a("--expire-links-once", action="store_true")
    a("--http-date-retry-after", action="store_true")
    a("--expand-missing-links", type=float, default=0.0)
    a("--denied-environment", action="append", default=[], help="environment name (repeatable)")
    a("--fault-seed", type=int, default=0)
    a("--truth", type=Path, metavar="FILE", help="write the ground truth (JSON) to FILE before serving")
    a("--stats-file", type=Path)
    a("--stats-interval", type=float, default=2.0)
    return p.parse_args()


def ground_truth(tenant: Tenant) -> dict:
    """What a complete sweep of this tenant must report, and where (the secrets are the fake's own)."""
    return {"tenant_id": tenant.tenant_id, "total_runs": tenant.total_runs,
            "flows": [{"environment": f.environment, "flow_id": f.flow_id} for f in tenant.flows],
            "planted": [p._asdict() for p in tenant.planted],
            "risky_definitions": [r._asdict() for r in tenant.risky_definitions],
            "vault_secrets": tenant.vault_secrets}


def main() -> None:
    args = _args()
    tenant = Tenant.generate(args.seed, args.environments, args.flows, args.runs, args.now)
    faults = Faults(seed=args.fault_seed, latency_ms=args.latency_ms, rate_limit_rps=args.rate_limit,
                    burst=args.burst, content_rate_limit_rps=args.content_rate_limit, error_rate=args.error_rate,
                    drop_rate=args.drop_rate, malformed_rate=args.malformed_rate,
                    burst_429_every=args.burst_429_every, expire_links_once=args.expire_links_once,
                    http_date_retry_after=args.http_date_retry_after,
                    expand_missing_links=args.expand_missing_links, denied_environments=args.denied_environment)
    api = FakeFlowApi(tenant, token=args.token, faults=faults,
                      ports=(args.api_port, args.content_port, args.vault_port))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def dump_stats() -> None:
        if args.stats_file:
            tmp = args.stats_file.with_suffix(args.stats_file.suffix + ".tmp")
            tmp.write_text(json.dumps(api.stats.snapshot(), indent=2))
            os.replace(tmp, args.stats_file)   # readers never see a half-written file

    if args.truth:
        args.truth.write_text(json.dumps(ground_truth(tenant), indent=1))
    with api:
        for name, value in {**api.env_vars(), "FAKE_VAULT_URL": api.vault_url,
                            "FAKE_DATAVERSE_URL": api.dataverse_url}.items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"# {tenant.total_runs} runs in {len(tenant.flows)} flows; Ctrl-C to stop", flush=True)
        while not stop.wait(args.stats_interval):
            dump_stats()
    dump_stats()


if __name__ == "__main__":
    main()
