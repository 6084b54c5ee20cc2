"""`make demo`: replay the bundled sample tenant over loopback HTTP and run a real sweep against it.

Nothing is mocked: the cassette is served by real HTTP listeners, and `flowleaks sweep` runs as its
own process exactly as a user would run it, configured only through FLOWLEAKS_* variables.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .cassette import Cassette
from .replay import ReplayServer

ROOT = Path(__file__).resolve().parent.parent
CASSETTE = ROOT / "cassettes" / "sample-tenant.yaml"
OUT = ROOT / "demo-output"

QUERIES = [
    ("Open findings by flow",
     "SELECT flow_name, open_run_findings, open_posture_findings, distinct_secrets, causes "
     "FROM findings_by_flow ORDER BY open_findings DESC"),
    ("Where each secret appeared",
     "SELECT preview, rules, occurrences, flows, runs, first_seen FROM exposure ORDER BY occurrences DESC LIMIT 10"),
    ("Not scanned, and why", "SELECT reason, count(*) AS n FROM skipped GROUP BY reason ORDER BY n DESC"),
]


def flowleaks(*args: str, env: dict[str, str]) -> int:
    exe = shutil.which("flowleaks", path=str(Path(sys.executable).parent)) or "flowleaks"
    print(f"\n$ flowleaks {' '.join(args)}", flush=True)
    return subprocess.call([exe, *args], env=env)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    db = OUT / "demo.duckdb"
    for stale in (db, Path(str(db) + ".wal")):
        stale.unlink(missing_ok=True)
    with ReplayServer(Cassette.load(CASSETTE), token="demo-token") as server:
        env = {**os.environ, **server.env(), "FLOWLEAKS_ACCESS_TOKEN": "demo-token", "FLOWLEAKS_DB": str(db)}
        print(f"Sample tenant replayed from {CASSETTE.relative_to(ROOT)} "
              f"({len(server.cassette.interactions)} recorded interactions) at {server.api_url}")
        code = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet", env=env)
        if code not in (0, 1):
            sys.exit(code)
        for title, sql in QUERIES:
            print(f"\n# {title}")
            flowleaks("query", sql, env=env)
        if server.content_auth_headers_seen:
            sys.exit("a content host received an Authorization header: that is a bug")
    print(f"\nThe database is {db.relative_to(ROOT)}; try: "
          f".venv/bin/flowleaks query --db {db.relative_to(ROOT)} \"SELECT * FROM open_findings LIMIT 5\"")


if __name__ == "__main__":
    main()
