"""End-to-end helpers: the real CLI, as a subprocess, against the loopback fake of the Flow API."""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from urllib.parse import unquote

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
