"""The fingerprint key: what makes a finding's fingerprint a keyed hash (DESIGN invariant 2).

FLOWLEAKS_FINGERPRINT_KEY when set, else a key file beside the database, created 0600 and never
overwritten (without a database, as for `lint`, a random key for this run: never an empty key, since an
unkeyed hash of a weak password can be guessed): the same secret gives the same fingerprint across scans (findings dedupe, suppressions
survive), and the database alone does not allow guessing a value.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from scanner.private import tighten_file, write_private_text


def fingerprint_key(db_path: str | os.PathLike | None) -> bytes:
    """FLOWLEAKS_FINGERPRINT_KEY if set, else a key file beside the database (created 0600)."""
    env = os.environ.get("FLOWLEAKS_FINGERPRINT_KEY")
    if env:
        return env.encode("utf-8")
    if db_path is None or str(db_path) == ":memory:":
        return secrets.token_hex(32).encode()
    key_path = Path(str(db_path) + ".key")
    if key_path.exists():
        tighten_file(key_path)  # a key file from before this version may be 0644
        return key_path.read_text().strip().encode("utf-8")
    key = secrets.token_hex(32)
    write_private_text(key_path, key + "\n", exclusive=True)  # O_EXCL: never overwrite a key
    return key.encode("utf-8")
