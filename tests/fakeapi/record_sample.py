"""Regenerate cassettes/sample-tenant.yaml: `python -m tests.fakeapi.record_sample`.

The sample tenant is the fake tenant of seed 2026 (2 environments, 10 flows covering every flow
template, ~50 runs), recorded through the real `flowleaks record` with its fake secrets kept (so the
demo has something to find) and the loopback hosts renamed to the real services' host names (for
realism: the replay serves any recorded hosts). `record` writes `recorded_at`, from which the replay
moves every time to today, so the demo never ages.
"""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .server import FakeFlowApi
from .tenant import Tenant

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "cassettes" / "sample-tenant.yaml"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def main() -> None:
    tenant = Tenant.generate(seed=2026, environments=2, flows_per_env=5, runs_per_flow=5, now=NOW)
    with FakeFlowApi(tenant) as api:
        env = {**os.environ, **api.env_vars()}
        code = subprocess.call([
            sys.executable, "-m", "scanner.cli", "record", "--as-admin", "--keep-secrets", "--days", "3650",
            "--map-origin", f"{api.api_url}=https://api.flow.microsoft.com",
            "--map-origin", f"{api.content_url}=https://prod-07.westeurope.logic.azure.com:443",
            "--out", str(OUT)], env=env, cwd=ROOT)
    sys.exit(code)


if __name__ == "__main__":
    main()
