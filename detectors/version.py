"""What a cached scan result depends on: the engine version.

A content result is reused only while the engine that produced it would produce it again
(scanner/pipeline/crawl.py keys its cache by `Engine.version` and the fingerprint key). The version
digests the rule set (every detector module's source and rule file, and detect-secrets' version), the
custom packs, the known-value set, the limits and the confidence floor.
"""
from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def ruleset_digest(root: Path | None = None) -> str:
    """The rule set's identity: every detector module's source (rules, filters, walker, decoders) and
    detect-secrets' version. Any rule upgrade changes it, so cached scan results are not reused."""
    h = hashlib.sha256(b"flowleaks ruleset v1")
    for path in sorted((root or Path(__file__).parent).rglob("*")):
        if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        h.update(version("detect-secrets").encode())
    except PackageNotFoundError:
        pass
    return h.hexdigest()[:32]


RULESET_DIGEST = ruleset_digest()


def engine_version(custom_digest: str, known_digest: str, limits: object, min_confidence: str) -> str:
    """The version of an engine with these inputs: "none" stands for no custom packs / known values;
    the limits count by their repr (every field)."""
    return hashlib.sha256(f"{RULESET_DIGEST}|{custom_digest}|{known_digest}|{limits!r}|{min_confidence}".encode()
                          ).hexdigest()[:32]
