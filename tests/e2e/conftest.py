"""End-to-end helpers: the real CLI, as a subprocess, against the loopback fake of the Flow API."""
from __future__ import annotations

import hashlib
import hmac
import base64
import json
from pathlib import Path
from urllib.parse import quote, unquote

import duckdb
import pytest

from tests.cli import CliResult, flowleaks, installed_cli  # noqa: F401 - the e2e tests' CLI
from tests.fakeapi import Tenant

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-fingerprint-key"


def fp(secret: str) -> str:
    return hmac.new(KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()


def plant_fingerprints(plant) -> set[str]:
    """A secret found inside a URL query is reported decoded; the ground truth keeps it as written."""
    return {fp(plant.secret), fp(unquote(plant.secret))}


def rows(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def tenant() -> Tenant:
    # 20 flows cycle through every flow template twice; 4 runs each keeps the suite quick.
    return Tenant.generate(seed=11, environments=2, flows_per_env=10, runs_per_flow=4)


def cli_env(api, db: Path, **extra: str) -> dict[str, str]:
    return {**api.env_vars(), "FLOWLEAKS_FINGERPRINT_KEY": KEY, "FLOWLEAKS_DB": str(db), **extra}


def forms(values) -> set[str]:
    """A secret and its reversible encodings: any of them in an artefact is a leak."""
    out = set()
    for v in values:
        out |= {v, quote(v, safe=""), json.dumps(v)[1:-1], base64.b64encode(v.encode()).decode()}
    return {x for x in out if len(x) >= 8}


def assert_nothing_leaks(values, db: Path, files: list[Path], texts: list[str]) -> None:
    leaks = forms(values)
    for path in [db, *files]:
        data = path.read_bytes()
        for s in leaks:
            assert s.encode() not in data, (path.name, s[:4])
    for text in texts:
        for s in leaks:
            assert s not in text, s[:4]
    con = duckdb.connect(str(db), read_only=True)  # DuckDB may compress strings: read every cell back too
    tables = [t[0] for t in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_type = 'BASE TABLE'").fetchall()]
    cells = " ".join(str(v) for t in tables for row in con.execute(f"SELECT * FROM {t}").fetchall() for v in row)
    con.close()
    for s in leaks:
        assert s not in cells, s[:4]
