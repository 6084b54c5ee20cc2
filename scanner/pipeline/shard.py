"""Sharding a tenant scan across N processes (`--shard K/N`), and a database's identity for `merge`.

A shard owns the flows whose stable hash of (environment id, flow id) falls in it: the same flow lands
on the same shard every night, so its watermarks, runs and findings stay in that shard's database.
K is 0-based, as Kubernetes numbers an Indexed Job's pods (`JOB_COMPLETION_INDEX`).

Where the shard comes from, first match wins: `--shard K/N`; `FLOWLEAKS_SHARD=K/N`;
`JOB_COMPLETION_INDEX` with `FLOWLEAKS_SHARD_COUNT=N` (a Kubernetes Indexed Job sets the index).
`FLOWLEAKS_SHARD_COUNT` without an index, or an index without a count, is a usage error: a shard
that silently scanned the whole tenant (or nothing) would break the merge.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*\Z")
MAX_SHARDS = 4096


class ShardError(ValueError):
    """A shard specification that cannot be used; the message says which input and why."""


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, environment: str, flow_id: str) -> bool:
        return flow_hash(environment, flow_id) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def as_param(self) -> dict:
        return {"index": self.index, "count": self.count}


def flow_hash(environment: str, flow_id: str) -> int:
    """Stable across processes, machines and Python versions (not `hash()`); ids compared lowercased,
    as the API spells them in either case."""
    digest = hashlib.sha256(f"{environment.lower()}/{flow_id.lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def parse_shard(text: str, source: str = "--shard") -> Shard:
    m = _SPEC.match(text or "")
    if not m:
        raise ShardError(f"{source} must be K/N with 0 <= K < N (K counts from 0, as JOB_COMPLETION_INDEX "
                         f"does), got {text!r}")
    return make_shard(int(m.group(1)), int(m.group(2)), source)


def make_shard(index: int, count: int, source: str) -> Shard:
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"{source}: the shard count must be 1..{MAX_SHARDS}, got {count}")
    if not 0 <= index < count:
        raise ShardError(f"{source}: shard {index} of {count} does not exist (0 <= K < N: K counts from 0)")
    return Shard(index, count)


def resolve_shard(option: str | None, env: dict[str, str] | None = None) -> Shard | None:
    """The shard this process scans, or None (the whole tenant)."""
    env = os.environ if env is None else env
    if option:
        return parse_shard(option, "--shard/FLOWLEAKS_SHARD")  # click reads the variable into the option
    if env.get("FLOWLEAKS_SHARD", "").strip():
        return parse_shard(env["FLOWLEAKS_SHARD"], "FLOWLEAKS_SHARD")
    index, count = env.get("JOB_COMPLETION_INDEX", "").strip(), env.get("FLOWLEAKS_SHARD_COUNT", "").strip()
    if not count:
        return None  # JOB_COMPLETION_INDEX alone: an Indexed Job that does not shard flowleaks
    if not index:
        raise ShardError("FLOWLEAKS_SHARD_COUNT is set but no shard index is: give --shard K/N, FLOWLEAKS_SHARD, "
                         "or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)")
    if not (index.isdigit() and count.isdigit()):
        raise ShardError(f"JOB_COMPLETION_INDEX and FLOWLEAKS_SHARD_COUNT must be whole numbers, got "
                         f"{index!r} and {count!r}")
    return make_shard(int(index), int(count), "JOB_COMPLETION_INDEX/FLOWLEAKS_SHARD_COUNT")


def key_id(key: bytes) -> str:
    """Names the fingerprint key without revealing it: databases whose findings can be merged have
    the same key id (a keyed digest: the id cannot be used to test guesses of the key)."""
    return hmac.new(key, b"flowleaks fingerprint key id", hashlib.sha256).hexdigest()[:16]
