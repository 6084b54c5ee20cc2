"""What `flowleaks merge` may combine, checked before anything is written (scanner/store/merge.py merges).

Every database is attached READ_ONLY and checked: a flowleaks database, of this schema version (OUT
may be older: opening it for the merge migrates it), with the same fingerprint key (by key id:
`meta.fingerprint_key_id`, never the key), tenant and Flow API; each given database holds one shard,
no index twice, one shard count N. A refusal is one line and exit 2 (Refused), and OUT is not
touched (nor created).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import duckdb

from scanner.errors import InputError
from scanner.redact import redact_url
from scanner.store.errors import StoreBusy
from scanner.store.schema import SCHEMA_VERSION
from scanner.store.sql import ident, literal

KIND = "merge"
SCAN_KINDS = ("sweep", "scan")       # the kinds `--shard` applies to
IDENTITY = ("tenant", "flow_api")    # meta keys that must agree ("another tenant")
KEY_ID = "fingerprint_key_id"


@dataclass
class Db:
    """What the checks need to know about one database (read before anything is written)."""

    path: str
    alias: str
    meta: dict[str, str]
    scans: list[dict[str, Any]]          # oldest first
    shard: tuple[int, int] | None = None  # (index, count) of its latest sweep/scan
    latest: dict[str, Any] | None = None  # its latest sweep/scan

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class Plan:
    shards: list[Db]
    count: int
    missing: list[int]
    scan_id: str
    complete: bool


class Refused(InputError):
    """A database that cannot be merged: one line, exit 2, nothing written."""


# -- reading a database ---------------------------------------------------------------------------

def attach(con: duckdb.DuckDBPyConnection, path: str, alias: str, role: str) -> None:
    """ATTACH read-only; a file that is not a DuckDB database (or not there) is refused by name."""
    try:
        con.execute(f"ATTACH {literal(path)} AS {ident(alias)} (TYPE duckdb, READ_ONLY)")
    except (duckdb.Error, OSError) as exc:
        text = " ".join(str(exc).split())
        low = text.lower()
        if "lock" in low:
            raise StoreBusy(f"{role} {path} is in use by another process (most likely a running flowleaks "
                            "scan); DuckDB allows no reader beside a writer: merge when it has finished") from None
        if "not a valid duckdb database" in low:
            raise Refused(f"{role} {path} is not a flowleaks database (not a DuckDB file)") from None
        if "is a directory" in low:
            raise Refused(f"{role} {path} is a folder, not a flowleaks database") from None
        if "version" in low and ("newer" in low or "older" in low or "storage" in low):
            raise Refused(f"{role} {path} was written by another DuckDB version ({text[:200]})") from None
        raise Refused(f"cannot open {role} {path}: {text[:200]}") from None


def _inspect(con: duckdb.DuckDBPyConnection, path: str, alias: str, role: str) -> Db:
    a = ident(alias)
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'",
        [alias]).fetchall()}
    not_ours = Refused(f"{role} {path} is not a flowleaks database (a DuckDB file without flowleaks' tables)")
    if not {"meta", "scans"} <= tables:
        raise not_ours
    try:
        meta = {str(k): ("" if v is None else str(v)) for k, v in
                con.execute(f"SELECT key, value FROM {a}.main.meta").fetchall()}
        rows = con.execute(f"SELECT scan_id, kind, started_at, finished_at, status, complete, params "
                           f"FROM {a}.main.scans ORDER BY started_at NULLS FIRST, scan_id").fetchall()
    except duckdb.Error:
        raise not_ours from None
    if "schema_version" not in meta:
        raise not_ours
    if meta["schema_version"] != str(SCHEMA_VERSION) and not (role == "OUT" and _older(meta["schema_version"])):
        raise Refused(f"{role} {path} has schema version {meta['schema_version']}, this flowleaks merges schema "
                      f"version {SCHEMA_VERSION} only (scan it again with this version, or merge with the "
                      "version that wrote it)")
    cols = ("scan_id", "kind", "started_at", "finished_at", "status", "complete", "params")
    scans = [dict(zip(cols, r)) for r in rows]
    for s in scans:
        s["params"] = _params(s["params"])
        if s["status"] == "running":  # we could attach it: nobody holds the database, the scan died
            s["status"], s["complete"] = "interrupted", False
    db = Db(path, alias, meta, scans)
    sweeps = [s for s in scans if s["kind"] in SCAN_KINDS]
    if sweeps:
        db.latest = sweeps[-1]
        db.shard = _shard_of(db.latest)
    return db


def _older(version: str) -> bool:
    """A version this flowleaks migrates (OUT is opened for writing: the Store brings it up to date)."""
    return version.isdigit() and 1 <= int(version) < SCHEMA_VERSION


def _params(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _shard_of(scan: dict[str, Any]) -> tuple[int, int] | None:
    sh = scan["params"].get("shard")
    if not isinstance(sh, dict):
        return None
    index, count = sh.get("index"), sh.get("count")
    if type(index) is not int or type(count) is not int or not 0 <= index < count:
        return None
    return index, count


# -- the checks -----------------------------------------------------------------------------------

def _same_api(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def check(out: Db | None, shards: Sequence[Db]) -> Plan:
    """Refuse what cannot be merged (Refused: exit 2); else what the merge will claim."""
    for db in shards:
        if KEY_ID not in db.meta:
            raise Refused(f"SHARD {db.path} does not record its fingerprint key id (no flowleaks scan of this "
                          "version wrote it): scan it again with this version before merging")
        kinds = {s["kind"] for s in db.scans}
        if KIND in kinds:
            raise Refused(f"SHARD {db.path} is a merged database, not a shard: give it as OUT, or merge the "
                          "shard databases it came from")
        if db.shard is None:
            what = "has no sweep or scan" if db.latest is None else "was not scanned with --shard K/N"
            raise Refused(f"SHARD {db.path} is not a shard database: it {what} (only OUT may be a database "
                          "without a shard)")
        others = {_shard_of(s) for s in db.scans if s["kind"] in SCAN_KINDS} - {db.shard}
        if others:
            other = sorted(others, key=lambda s: (s is None, s or (0, 0)))[0]
            said = "a scan without --shard" if other is None else f"shard {other[0]}/{other[1]}"
            raise Refused(f"SHARD {db.path} holds scans of shard {db.shard[0]}/{db.shard[1]} and of {said}: a "
                          "shard database must hold one shard (scan each shard into its own database)")
    first = shards[0]
    for db in [*shards[1:], *([out] if out is not None else [])]:
        role = "OUT" if db is out else "SHARD"
        key = db.meta.get(KEY_ID)
        if key is not None and key != first.meta[KEY_ID]:
            raise Refused(f"{role} {db.path} was scanned with another fingerprint key than {first.path}: its "
                          "fingerprints cannot be compared (give every shard the same FLOWLEAKS_FINGERPRINT_KEY)")
        tenant = db.meta.get("tenant")
        if tenant is not None and "tenant" in first.meta and tenant != first.meta["tenant"]:
            raise Refused(f"{role} {db.path} is of another tenant than {first.path} "
                          f"(tenant {tenant or 'unknown'} vs {first.meta['tenant'] or 'unknown'})")
        api = db.meta.get("flow_api")
        if api is not None and "flow_api" in first.meta and not _same_api(api, first.meta["flow_api"]):
            raise Refused(f"{role} {db.path} is of another tenant than {first.path} (Flow API "
                          f"{redact_url(api)} vs {redact_url(first.meta['flow_api'])})")
    counts = sorted({db.shard[1] for db in shards})
    if len(counts) > 1:
        named = ", ".join(f"{db.name} is {db.shard[0]}/{db.shard[1]}" for db in shards)
        raise Refused(f"the shards were scanned with different shard counts N ({named}): merge the "
                      "databases of one `--shard K/N` run, all with the same N")
    by_index: dict[int, Db] = {}
    for db in shards:
        seen = by_index.get(db.shard[0])
        if seen is not None:
            raise Refused(f"{seen.path} and {db.path} both hold shard {db.shard[0]}/{db.shard[1]}: give each "
                          "shard's database once")
        by_index[db.shard[0]] = db
    count = counts[0]
    ordered = [by_index[i] for i in sorted(by_index)]
    missing = [i for i in range(count) if i not in by_index]
    latest = sorted(db.latest["scan_id"] for db in ordered)
    scan_id = "merge-" + hashlib.sha256("\n".join(latest).encode()).hexdigest()[:16]
    complete = not missing and all(db.latest["complete"] is True for db in ordered)
    return Plan(ordered, count, missing, scan_id, complete)


def inspect_all(con: duckdb.DuckDBPyConnection, out: str, shards: Sequence[str],
                 out_alias: str | None) -> tuple[Db | None, list[Db]]:
    """Attach (read-only) and inspect every shard, and OUT when `out_alias` names it attached."""
    dbs = []
    for i, path in enumerate(shards):
        attach(con, path, _alias(i), "SHARD")
        dbs.append(_inspect(con, path, _alias(i), "SHARD"))
    out_db = _inspect(con, out, out_alias, "OUT") if out_alias else None
    return out_db, dbs


def _alias(i: int) -> str:
    return f"flowleaks_merge_shard_{i}"


def check_paths(out: str, shards: Sequence[str]) -> None:
    real = {}
    out_real = os.path.realpath(out)
    for path in shards:
        p = Path(path)
        if not p.exists():
            raise Refused(f"SHARD {path}: no such file")
        if p.is_dir():
            raise Refused(f"SHARD {path} is a folder, not a flowleaks database")
        r = os.path.realpath(path)
        if r == out_real:
            raise Refused(f"SHARD {path} is OUT itself: OUT is where the shards are merged into; give it once, "
                          "first")
        if r in real:
            raise Refused(f"SHARD {path} is given twice ({real[r]} and {path})")
        real[r] = path
    if Path(out).is_dir():
        raise Refused(f"OUT {out} is a folder; OUT is a database file (a new path creates one)")
