"""The demo database (`make demo`'s), built once per test session from the bundled cassette.

Built the way scanner/replay/demo.py builds it, through the replay's public entry points (ReplayServer,
Cassette.load, server.env()) and the installed CLI, so the README and SARIF tests read what a user's
`make demo` gives without paying for the demo (and its three queries) in every module.
"""
from __future__ import annotations

import functools
import shutil
from pathlib import Path

from scanner.replay.cassette import Cassette
from scanner.replay.server import ReplayServer
from tests.cli import ROOT, flowleaks

SAMPLE = ROOT / "cassettes" / "sample-tenant.yaml"
TOKEN = "demo-token"  # the replay's fake bearer token, as in scanner/replay/demo.py: valid nowhere


def replay() -> ReplayServer:
    return ReplayServer(Cassette.load(SAMPLE), token=TOKEN)


@functools.cache
def demo_database(base: Path) -> Path:
    """Sweep the replayed sample tenant into `base`/demo.duckdb (cached: once per session)."""
    base.mkdir(parents=True, exist_ok=True)
    db = base / "demo.duckdb"
    with replay() as server:
        result = flowleaks("sweep", "--as-admin", "--days", "3650", "--quiet",
                           env={**server.env(), "FLOWLEAKS_DB": str(db)})
    # 1: the demo tenant has open findings (and the sweep was complete, or it would be 3)
    assert result.code == 1, result.stdout[-2000:] + result.stderr[-2000:]
    return db


def copy_demo_database(base: Path, to: Path) -> Path:
    """A private copy (with its fingerprint key) for commands that write to the database."""
    src = demo_database(base)
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, to)
    key = Path(str(src) + ".key")
    if key.exists():
        shutil.copyfile(key, Path(str(to) + ".key"))
        Path(str(to) + ".key").chmod(0o600)
    return to
