"""`make demo`: replay the bundled sample tenant over loopback HTTP and run a real sweep against it.

Nothing is mocked: the cassette is served by real HTTP listeners, and `flowleaks sweep` runs as its
own process exactly as a user would run it, configured only through FLOWLEAKS_* variables.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from scanner.replay.cassette import Cassette
from scanner.replay.server import ReplayServer

ROOT = Path(__file__).resolve().parents[2]  # the checkout: scanner/replay/demo.py
CASSETTE = ROOT / "cassettes" / "sample-tenant.yaml"
OUT = ROOT / "demo-output"

QUERIES = [
    ("Open findings by flow",
     "SELECT flow_name, open_run_findings, open_posture_findings, distinct_secrets, causes "
     "FROM findings_by_flow ORDER BY open_findings DESC, flow_name"),
    ("Where each secret appeared",
     "SELECT preview, rules, occurrences, flows, runs, first_seen FROM exposure ORDER BY occurrences DESC, rules, preview LIMIT 10"),
    ("Not scanned, and why", "SELECT reason, count(*) AS n FROM skipped GROUP BY reason ORDER BY n DESC, reason"),
]


def flowleaks(*args: str, env: dict[str, str], note: str = "") -> int:
    exe = shutil.which("flowleaks", path=str(Path(sys.executable).parent)) or "flowleaks"
    # echoed so that it pastes into a shell from the checkout as it ran: shell-quoted (the SQL has
    # spaces and quotes), the venv's script by its relative path, a note only as a shell comment
    try:
        shown = str(Path(exe).relative_to(ROOT))
    except ValueError:
        shown = "flowleaks"
    print(f"\n$ {shlex.join([shown, *args])}" + (f"   # {note}" if note else ""), flush=True)
    return subprocess.call([exe, *args], env=env, cwd=ROOT)


def _args(argv: list[str] | None) -> argparse.Namespace:
    from scanner.replay.server import _iso_arg

    p = argparse.ArgumentParser(prog="python -m scanner.replay.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT, help="folder for demo.duckdb (default: demo-output/)")
    p.add_argument("--now", type=_iso_arg, metavar="ISO-8601",
                   help="the replay's clock (the cassette's times move with it); default: now")
    return p.parse_args(argv)


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    out = args.out.resolve()  # the commands run from the checkout, not from the caller's folder
    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.duckdb"
    for stale in (db, Path(str(db) + ".wal")):
        stale.unlink(missing_ok=True)
    # the replay moves the recorded runs to today (relative to its `now`): the same findings any day
    with ReplayServer(Cassette.load(CASSETTE), token="demo-token", now=args.now) as server:
        env = {**os.environ, **server.env(), "FLOWLEAKS_ACCESS_TOKEN": "demo-token", "FLOWLEAKS_DB": str(db)}
        print(f"Sample tenant replayed from {CASSETTE.relative_to(ROOT)} "
              f"({len(server.cassette.interactions)} recorded interactions) at {server.api_url}")
        code = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet", env=env,
                         note=f"FLOWLEAKS_* point it at the replay: python -m scanner.replay "
                              f"{CASSETTE.relative_to(ROOT)} prints them; FLOWLEAKS_DB={_shown(db)}")
        if code not in (0, 1):
            sys.exit(code)
        for title, sql in QUERIES:
            print(f"\n# {title}")
            flowleaks("query", "--db", str(_shown(db)), sql, env=env)
        if server.content_auth_headers_seen:
            sys.exit("a content host received an Authorization header: that is a bug")
        if server.misses or server.expired:
            sys.exit(f"the replay answered {len(server.misses)} request(s) NotRecorded and refused "
                     f"{len(server.expired)} expired link(s): that is a bug")
    print(f"\nThe database is {_shown(db)}; try: "
          f".venv/bin/flowleaks query --db {_shown(db)} \"SELECT * FROM open_findings LIMIT 5\"")


if __name__ == "__main__":
    main()
