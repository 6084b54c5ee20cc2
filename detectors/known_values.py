"""Known-value matching: find the tenant's own secrets (Key Vault, stdin, hash files) in payloads.

What is kept (security invariant 4): after `add_value` returns, nothing of the plaintext remains in
this object. Each value is expanded to its encoded forms —

* raw; each line of a multi-line value; the value with surrounding quotes/whitespace trimmed
* JSON-escaped (ASCII and non-ASCII forms), URL-encoded (`%XX` upper and lower case, `+` for space),
  XML-escaped (with and without quote entities)
* base64 and base64url at the three byte alignments: the part of base64(prefix + value) that depends
  only on the value, for a prefix of 0, 1 or 2 bytes mod 3 (the GitHub Actions runner's
  Base64StringEscapeShift idea). This also covers Basic `base64(user:value)` for any user.

— and every variant of at least `MIN_LENGTH` UTF-8 bytes is held only as

1. a 128-bit truncated HMAC-SHA256(key, variant bytes) with the variant's byte length (`_full`), and
2. a 32-bit keyed *linear* hash of the variant's first `W` (= 8) bytes (`_groups[W].table`), the
   pre-screen: Σ b[j]·c[j] over the window, with secret coefficients c derived from the key. 32 bits of
   an 8-byte prefix leave ~2^16+ preimages per entry even to someone holding the key.

Matching slides a window over every position of the text: the linear hash of every window is computed
at once with numpy (W shifted multiply-adds over the body's bytes as uint32: coefficients < 2^21, so
no sum overflows), and looked up in a 2^24-bit map of the table's hashes, then its sorted keys; windows whose
hash is in the table are confirmed by HMAC over each candidate length. No Python loop runs per
position, so 10,000 known values cost about what 200 do. A value is therefore found inside a longer string without delimiters (`abc<secret>def`).

Hash-only input (`add_hashes_from_lines`: lowercase hex SHA-256 of the value, one per line) can only match
whole strings: the engine asks `match_whole()` for each leaf (after the walker's decoding, so a
Basic password, a `?sig` parameter or a JSON field inside a string count as whole leaves).

Values shorter than `MIN_LENGTH` characters are ignored and counted in `ignored_short`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from bisect import bisect_right
from typing import Iterable
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

import numpy as np

from .rules import Rule, ex

MIN_LENGTH = 6
W = 8                 # prefilter window (bytes)
_CHUNK = 1 << 20      # bytes per prefilter product
_DIGEST = 16          # bytes of HMAC kept per variant
RULE_ID = "known-value"

RULE = Rule(
    RULE_ID,
    "A value from the known-secrets list (Key Vault, stdin, or a SHA-256 hash file) found in the payload, "
    "in any of its encodings (raw, URL, JSON, XML, base64 at any alignment, Basic). `known_secret` names "
    "the source (vault/name, stdin:<line>, hashes.txt:<line>), never the value.",
    "known_value", "high", (),
)

_PCT = re.compile(r"%[0-9A-F]{2}")


def _b64_shifts(data: bytes) -> Iterable[str]:
    n = len(data)
    for k in (0, 1, 2):
        enc = base64.b64encode(b"\x00" * k + data).decode("ascii")
        start = -(-8 * k // 6)           # chars touched by the prefix bytes
        end = (8 * (k + n)) // 6          # chars made only of value bits
        part = enc[start:end]
        yield part
        yield part.replace("+", "-").replace("/", "_")


def variants(value: str) -> set[str]:
    """Encoded forms of one value (computed transiently; never stored)."""
    out: set[str] = set()
    bases = {value, value.strip(), value.strip().strip("'\"")}
    if "\n" in value or "\r" in value:
        bases.update(line.strip() for line in re.split(r"\r?\n|\r", value))
    for v in bases:
        if len(v) < MIN_LENGTH:
            continue
        out.add(v)
        out.add(json.dumps(v)[1:-1])
        out.add(json.dumps(v, ensure_ascii=False)[1:-1])
        q = quote(v, safe="")
        out.add(q)
        out.add(_PCT.sub(lambda m: m.group().lower(), q))
        out.add(quote_plus(v, safe=""))
        out.add(quote(v, safe="/:"))
        out.add(xml_escape(v))
        out.add(xml_escape(v, {'"': "&quot;", "'": "&apos;"}))
        out.update(_b64_shifts(v.encode("utf-8", "surrogatepass")))
    return {o for o in out if len(o.encode("utf-8", "surrogatepass")) >= MIN_LENGTH}


class _Group:
    """Variants sharing one prefilter window width."""

    __slots__ = ("w", "coef", "table", "_keys", "_bits")

    def __init__(self, w: int, coef: list[int]) -> None:
        self.w = w
        self.coef = coef[:w]
        self.table: dict[int, set[int]] = {}  # prefix hash → variant byte lengths
        self._keys: np.ndarray | None = None  # sorted table keys, rebuilt after an add
        self._bits: np.ndarray | None = None  # 2^24 flags: is some key's top 24 bits this value

    def add(self, b: bytes, length: int) -> None:
        self.table.setdefault(self.prefix_hash(b), set()).add(length)
        self._keys = self._bits = None

    def keys(self) -> np.ndarray:
        if self._keys is None:
            self._keys = np.array(sorted(self.table), dtype=np.uint32)
            self._bits = np.zeros(1 << 24, dtype=np.bool_)
            self._bits[self._keys >> np.uint32(8)] = True
        return self._keys

    def candidates(self, hashes: np.ndarray) -> np.ndarray:
        """Positions whose hash is in the table: a 2^24-entry bitmap first (one gather; ~1 window in
        4,000 passes with 200 values), then the sorted keys for those few."""
        keys = self.keys()
        maybe = np.flatnonzero(self._bits[hashes >> np.uint32(8)])
        if not len(maybe):
            return maybe
        h = hashes[maybe]
        at = np.minimum(np.searchsorted(keys, h), len(keys) - 1)
        return maybe[keys[at] == h]

    def window_hashes(self, chunk: bytes) -> np.ndarray:
        """prefix_hash of every w-byte window of `chunk`, at once."""
        a = np.frombuffer(chunk, dtype=np.uint8).astype(np.uint32)
        n = len(a) - self.w + 1
        h = a[:n] * np.uint32(self.coef[0])
        for j in range(1, self.w):
            h += a[j:j + n] * np.uint32(self.coef[j])
        return h

    def __getstate__(self) -> dict:
        return {"w": self.w, "coef": self.coef, "table": self.table}

    def __setstate__(self, state: dict) -> None:
        self.w, self.coef, self.table, self._keys, self._bits = state["w"], state["coef"], state["table"], None, None

    def prefix_hash(self, b: bytes) -> int:
        return sum(b[j] * self.coef[j] for j in range(self.w))


class KnownValues:
    """Keyed hashes of known secret values and their encodings. Holds no plaintext."""

    MIN_LENGTH = MIN_LENGTH

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or not key:
            raise ValueError("KnownValues needs a non-empty bytes key")
        self._key = bytes(key)
        seed = hmac.new(self._key, b"flowleaks known-value prefilter v1", hashlib.sha256).digest()
        # 21-bit odd coefficients: 8 windows × 255 × 2^21 < 2^32, so slots never carry
        self._coef = [(int.from_bytes(seed[4 * j: 4 * j + 4], "little") & 0x1FFFFF) | 1 for j in range(W)]
        self._groups: dict[int, _Group] = {}
        self._full: dict[bytes, list[int]] = {}       # HMAC(variant)[:16] → source ids
        self._whole: dict[bytes, list[int]] = {}      # HMAC(sha256(value)) → source ids (hash-only input)
        self._sources: list[str] = []
        self._max_len = 0
        self.ignored_short = 0
        self.values = 0
        self.hashes = 0
        self.invalid_hash_lines = 0
        self.first_invalid_hash_line: int | None = None  # a line number to point at (never its text)
        self.ignored_empty = 0                           # blank lines in a values or hashes input

    # -- loading ---------------------------------------------------------------------------------
    def _mac(self, b: bytes) -> bytes:
        return hmac.new(self._key, b, hashlib.sha256).digest()[:_DIGEST]

    def _source_id(self, source: str) -> int:
        self._sources.append(str(source))
        return len(self._sources) - 1

    def add_value(self, value: str | bytes, source: str) -> bool:
        """Add one known secret. Returns False (and counts it) when it is too short to match safely."""
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if len(value.strip()) < MIN_LENGTH:
            self.ignored_short += 1
            return False
        sid = self._source_id(source)
        for v in variants(value):
            b = v.encode("utf-8", "surrogatepass")
            L = len(b)
            w = min(W, L)
            g = self._groups.get(w)
            if g is None:
                g = self._groups[w] = _Group(w, self._coef)
            g.add(b, L)
            ids = self._full.setdefault(self._mac(b), [])
            if sid not in ids:
                ids.append(sid)
            if L > self._max_len:
                self._max_len = L
        # whole-leaf match by SHA-256 too, so plaintext and hash inputs of one value behave alike
        self._whole.setdefault(self._mac(hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()), []).append(sid)
        self.values += 1
        return True

    def add_values_from_lines(self, lines: Iterable[str | bytes], source_prefix: str = "stdin") -> int:
        """One value per line (trailing newline removed); source `<prefix>:<line number>`."""
        added = 0
        for n, line in enumerate(lines, 1):
            if isinstance(line, (bytes, bytearray)):
                line = bytes(line).decode("utf-8", "replace")
            line = line.rstrip("\r\n")
            if not line.strip():
                self.ignored_empty += 1  # counted: the user is told what was dropped and why
                continue
            added += self.add_value(line, f"{source_prefix}:{n}")
        return added

    def add_hashes_from_lines(self, lines: Iterable[str | bytes], source_prefix: str = "hashes.txt") -> int:
        """Lowercase hex SHA-256 of each value, one per line (`#` comments and blanks skipped)."""
        added = 0
        for n, line in enumerate(lines, 1):
            if isinstance(line, (bytes, bytearray)):
                line = bytes(line).decode("utf-8", "replace")
            h = line.strip().lower()
            if not h:
                self.ignored_empty += 1
                continue
            if h.startswith("#"):
                continue
            if not re.fullmatch(r"[0-9a-f]{64}", h):
                self.invalid_hash_lines += 1
                if self.first_invalid_hash_line is None:
                    self.first_invalid_hash_line = n
                continue
            sid = self._source_id(f"{source_prefix}:{n}")
            self._whole.setdefault(self._mac(bytes.fromhex(h)), []).append(sid)
            self.hashes += 1
            added += 1
        return added

    # -- matching --------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self._full or self._whole)

    @property
    def has_substring_values(self) -> bool:
        return bool(self._full)

    def source(self, sid: int) -> str:
        return self._sources[sid]

    def match_whole(self, text: str) -> list[str]:
        """Sources whose SHA-256 equals the whole text (or the text stripped)."""
        if not self._whole or len(text) < MIN_LENGTH:
            return []
        out: list[str] = []
        for t in {text, text.strip()}:
            ids = self._whole.get(self._mac(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()))
            if ids:
                out.extend(self._sources[i] for i in ids)
        return out

    def match_texts(self, texts: list[str]) -> list[tuple[int, str, str]]:
        """Every known value inside any of `texts`: (text index, matched text, source). Never raises
        on content; the matched text is the variant as it occurs (it is the secret, in memory only)."""
        if not self._full or not texts:
            return []
        parts = [t.encode("utf-8", "surrogatepass") for t in texts]
        # one buffer, one NUL between texts; starts[i] = offset of text i
        starts: list[int] = []
        pos = 0
        for p in parts:
            starts.append(pos)
            pos += len(p) + 1
        buf = b"\x00".join(parts)
        found: dict[tuple[int, int, int], None] = {}
        n = len(buf)
        overlap = self._max_len
        for g in self._groups.values():
            if n < g.w:
                continue
            step = _CHUNK
            lo = 0
            while lo < n:
                hi = min(n, lo + step + overlap)
                self._scan_chunk(g, buf, lo, hi, found)
                if hi >= n:
                    break
                lo += step
        out: list[tuple[int, str, str]] = []
        for (i, L, sid) in found:
            ti = bisect_right(starts, i) - 1
            if i + L > starts[ti] + len(parts[ti]):
                continue  # crosses into the next text
            out.append((ti, buf[i:i + L].decode("utf-8", "replace"), self._sources[sid]))
        return out

    def _scan_chunk(self, g: _Group, buf: bytes, lo: int, hi: int, found: dict) -> None:
        w = g.w
        chunk = buf[lo:hi]
        m = len(chunk)
        if m < w:
            return
        hashes = g.window_hashes(chunk)
        hit_positions = g.candidates(hashes)
        if not len(hit_positions):
            return
        mac = self._mac
        full = self._full
        for j in hit_positions.tolist():
            for L in g.table[int(hashes[j])]:
                if j + L > m:
                    continue
                ids = full.get(mac(chunk[j:j + L]))
                if ids:
                    for sid in ids:
                        found[(lo + j, L, sid)] = None

    def digest(self) -> str:
        """Identity of the known-value set (keyed hashes only): a scan cache keyed by it is invalidated
        whenever a value is added or removed. Reveals nothing of the values (HMAC outputs, re-hashed)."""
        h = hashlib.sha256(b"flowleaks known-value set v1")
        for mac in sorted(self._full):
            h.update(b"v" + mac)
        for mac in sorted(self._whole):
            h.update(b"w" + mac)
        return h.hexdigest()[:32]

    def __repr__(self) -> str:
        return (f"KnownValues(values={self.values}, hashes={self.hashes}, variants={len(self._full)}, "
                f"ignored_short={self.ignored_short})")

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("_key", "_coef", "_groups", "_full", "_whole", "_sources",
                                               "_max_len", "ignored_short", "values", "hashes",
                                               "invalid_hash_lines", "first_invalid_hash_line",
                                               "ignored_empty")}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


# examples for the docs registry (run by tests/detectors/test_known_values.py, not by the rule test)
RULE = Rule(RULE.id, RULE.description, RULE.kind, RULE.confidence, (),
            positive=(ex({"note": "prefix-Kv$ecretValue-2026-suffix"}, "Kv$ecretValue-2026"),),
            negative=(ex({"note": "nothing known here"}),))
