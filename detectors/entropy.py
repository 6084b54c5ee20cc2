"""Entropy stage: random-looking base64 / base64url / hex tokens that no pattern rule claimed.

A *candidate* is a run of `[A-Za-z0-9+/_-]` of at least 20 characters (optionally `=`-padded) with at
least 8 distinct characters. Each candidate goes through the filters below, in order; the first that
matches drops it and the engine records `Drop(rule_id='high-entropy', filter=<name>, json_path)`, so
every silence is countable and explainable. Candidates that survive every filter and clear the entropy
threshold are reported as rule `high-entropy`.

Filters (names as recorded in `Drop.filter`):

=====================  ===========================================================================
guid                   contains a GUID (`8-4-4-4-12` hex), the commonest id in run history
numeric                digits only (timestamps, tick counts, long numeric ids)
tracking-id            run / trigger history names (`08586…CU62`), or the key is a tracking /
                       correlation / request id (`x-ms-*-id`, `clientTrackingId`, `traceparent`, …)
placeholder            `<your-key>`, `${KEY}`, `{{x}}`, `xxxx`, `REPLACE_ME`, `changeme`, repeated
                       characters, sequential alphabets (detect-secrets `is_sequential_string`)
etag                   the key is an ETag (`ETag`, `@odata.etag`, `If-Match`) or the value is `W/"…"`
hash-key               the key names a hash / version / fingerprint (`contentVersion`, `md5`,
                       `sha256`, `checksum`, `thumbprint`, `hash`, …)
hex-digest             hex of digest length (32/40/64/96/128) under a key that does not name a secret
encoded-content        the key is `$content` / `contentBytes`: the walker scans the decoded layer
image-data             `data:image/…` URIs, base64 of PNG/JPEG/GIF/WebP/PDF/ZIP (magic after
                       decoding), image-ish keys (`thumbnail`, `photo`, `picture`, `logo`, `icon`)
long-blob              longer than 1,024 characters: content, not a credential (private keys are
                       found by the `private-key` rule)
azure-resource-id      the string is an Azure resource id (`/subscriptions/…`, `/providers/Microsoft.`)
url-path               the token is part of a URL's host or path (not its query) or a file path
natural-language       made of pronounceable words (camelCase / kebab / snake identifiers, prose)
entropy-threshold      Shannon entropy below the threshold for its alphabet and length
=====================  ===========================================================================

Thresholds: base64-ish tokens need entropy ≥ 0.8·log2(min(len, 64)) bits/char and upper, lower and
digits; hex tokens (≥ 32 chars) need ≥ 0.8·log2(16) = 3.2 bits/char. A random 32-character base64
secret scores ≈ 4.6 against a threshold of 4.0; a random 40-character hex secret ≈ 3.8 against 3.2.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from typing import Iterator

from .base import Leaf
from .rules import Rule, ex

RULE_ID = "high-entropy"

TOKEN = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_DIGITS = re.compile(r"[0-9_-]+\Z")
_RUN_NAME = re.compile(r"\d{15,}[A-Z]{2}\d{1,5}\Z")
_REPEAT = re.compile(r"(.)\1{5,}")
_PLACEHOLDER_SUB = re.compile(r"(?i)x{4,}|replace|your[_-]?(?:key|secret|token|api|password)|changeme|placeholder|example|dummy|sample|redacted|abcdef|123456")
_TRACKING_KEY = re.compile(
    r"(?i)(?:^x-ms-[\w-]*(?:id|name|version)$|tracking|correlation|request-?id|requestid|activity-?id|"
    r"traceparent|tracestate|operation-?id|session-?id|x-request-id|x-correlation-id|runid|run_id|"
    r"^(?:id|name|runname|workflowid|flowid|objectid|tenantid|userid|messageid|itemid|driveid|listid|siteid|"
    r"conversationid|threadid|eventid|clientid|client_id|appid|resourceid)$|_id$|Id$)")
_ETAG_KEY = re.compile(r"(?i)(?:etag|if-match|if-none-match)$")
_HASH_KEY = re.compile(r"(?i)(?:contentversion|contenthash|content-md5|md5|sha1|sha256|sha512|sha-?\d+|checksum|"
                       r"digest|thumbprint|fingerprint|hash|crc|version|x-ms-content-crc64|x-ms-request-server-encrypted)")
_HASH_PATH = re.compile(r"(?i)(?:contenthash|contentmd5|content-md5|checksum|\.md5|\.sha\d+|etag)\b[^.\[]*[.\[][^.\[]*$")
_SECRET_KEY = re.compile(r"(?i)(?:key|secret|token|passw|pwd|credential|auth|sig(?:nature)?$|apikey|cert)")
_IMAGE_KEY = re.compile(r"(?i)(?:thumbnail|photo|picture|image|logo|icon|avatar)")
_CONTENT_KEY = re.compile(r"(?i)^(?:\$content|contentbytes|\$contentbytes|contentbase64)$")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"%PDF", b"PK\x03\x04", b"BM", b"\x00\x00\x01\x00",
          b"\x1f\x8b", b"<svg", b"<?xml")
_RESOURCE = re.compile(r"(?i)/subscriptions/[0-9a-f-]{36}|/providers/microsoft\.|/resourcegroups/")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")

RULE = Rule(
    RULE_ID,
    "Random-looking base64/base64url/hex token (entropy stage) that survives the run-history filters "
    "(GUIDs, digests, ETags, images, resource ids, tracking ids, timestamps, placeholders, prose, paths).",
    "entropy", "low", (),
    positive=(
        ex({"value": "q8Zr2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2"}, "q8Zr2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2"),
        ex({"data": "7c1e9b24f05a83d6e2b71c0f94a58d3e6b27c1f09e4a35d8"}, "7c1e9b24f05a83d6e2b71c0f94a58d3e6b27c1f09e4a35d8"),
        ex({"config": {"storageKey": "u7Kp2Qz9Wm4Xr1Tn8Yb3Lc6Vd0Hs5Ja7Fe2Go9Ik4="}}, "u7Kp2Qz9Wm4Xr1Tn8Yb3Lc6Vd0Hs5Ja7Fe2Go9Ik4="),
    ),
    negative=(
        ex({"id": "d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"}),
        ex({"name": "08586653536760200319026785874CU62"}),
        ex({"contentHash": {"algorithm": "md5", "value": "98GuGIhrxUoG/lKXcXUgaA=="}}),
        ex({"ETag": "\"0x8DC1A2B3C4D5E6F\""}),
        ex({"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}),
        ex({"thumbnail": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}),
        ex({"id": "/subscriptions/f42cebc2-1111-2222-3333-444455556666/resourceGroups/rg-flows/providers/Microsoft.Logic/workflows/InvoiceFlow"}),
        ex({"x-ms-client-request-id": "Qm7Rt2Zx9Lp4Wn1Vb8Kc3Hd6Jf0Ys5"}),
        ex({"startTime": "2018-09-06T17:00:09.9484194Z"}),
        ex({"apiKey": "<your-api-key-goes-here-please>"}),
        ex({"note": "TheQuickBrownFoxJumpsOverTheLazyDogAgain"}),
        ex({"dataset": "https://contoso.sharepoint.com/sites/FinanceTeamSite/Shared%20Documents/QuarterlyReports"}),
        ex({"value": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
    ),
)


def shannon(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _decodes_to_binary_image(tok: str) -> bool:
    head = tok[:64].replace("-", "+").replace("_", "/")
    head = head[: len(head) - len(head) % 4]
    try:
        raw = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(_MAGIC)


def _natural(tok: str) -> bool:
    words = _WORD.findall(tok)
    letters = sum(len(w) for w in words)
    if letters < 0.8 * len(tok.rstrip("=")):
        return False
    long_words = [w for w in words if len(w) >= 3]
    if not long_words:
        return False
    covered = sum(len(w) for w in long_words)
    voweled = sum(1 for w in long_words if _VOWEL.search(w))
    return covered >= 0.75 * letters and voweled >= 0.8 * len(long_words)


_LOWER_SEGMENT = re.compile(r"[a-z0-9._-]*[a-z]{2}[a-z0-9._-]*\Z")


def _path_segment(p: str) -> bool:
    return bool(_LOWER_SEGMENT.match(p)) or _natural(p) or (p.isdigit() and len(p) < 10)


class LeafContext:
    """Per-leaf facts computed once, shared by all tokens of the leaf."""

    __slots__ = ("key_filter", "resource", "image", "etag", "url_cut", "secret_key")

    def __init__(self, leaf: Leaf) -> None:
        key = leaf.key or ""
        v = leaf.value
        self.secret_key = bool(key and _SECRET_KEY.search(key))
        self.key_filter = None
        if key:
            if _ETAG_KEY.search(key):
                self.key_filter = "etag"
            elif _HASH_KEY.search(key) and not self.secret_key:
                self.key_filter = "hash-key"
            elif _CONTENT_KEY.match(key):
                self.key_filter = "encoded-content"
            elif _IMAGE_KEY.search(key):
                self.key_filter = "image-data"
            elif _TRACKING_KEY.search(key) and not self.secret_key:
                self.key_filter = "tracking-id"
        if self.key_filter is None and _HASH_PATH.search(leaf.json_path):
            self.key_filter = "hash-key"
        self.resource = bool(_RESOURCE.search(v[:4096]))
        head = v[:64].lstrip()
        self.image = head.lower().startswith("data:image/")
        self.etag = head[:3] == 'W/"' or (head[:1] == '"' and v.rstrip()[-1:] == '"' and len(v) < 100)
        # a URL: tokens before the query are host/path
        self.url_cut = -1
        if "://" in v[:32]:
            q = v.find("?")
            self.url_cut = q if q >= 0 else len(v)


def classify(tok: str, start: int, ctx: LeafContext) -> str | None:
    """The name of the filter that drops this candidate, or None when it should be reported."""
    if ctx.resource:
        return "azure-resource-id"
    if _GUID.search(tok):
        return "guid"
    if _DIGITS.match(tok):
        return "numeric"
    if _RUN_NAME.match(tok):
        return "tracking-id"
    if ctx.key_filter:
        return ctx.key_filter
    if ctx.etag:
        return "etag"
    if ctx.image:
        return "image-data"
    if _REPEAT.search(tok) or _PLACEHOLDER_SUB.search(tok):
        return "placeholder"
    if len(tok) > 1024:
        return "long-blob"
    if 0 <= start < ctx.url_cut:
        return "url-path"
    if tok.count("/") >= 2 and all(_path_segment(p) for p in tok.split("/") if p):
        return "url-path"
    is_hex = bool(_HEX.match(tok))
    if is_hex and len(tok) in (32, 40, 64, 96, 128) and not ctx.secret_key:
        return "hex-digest"
    if not is_hex and _decodes_to_binary_image(tok):
        return "image-data"
    if _natural(tok):
        return "natural-language"
    # entropy threshold
    core = tok.rstrip("=")
    n = len(core)
    h = shannon(core)
    if is_hex:
        if n < 32 or h < 3.2:
            return "entropy-threshold"
        return None
    has_upper = any("A" <= c <= "Z" for c in core)
    has_lower = any("a" <= c <= "z" for c in core)
    has_digit = any("0" <= c <= "9" for c in core)
    if not (has_upper and has_lower and has_digit):
        return "entropy-threshold"
    if h < 0.8 * math.log2(min(n, 64)):
        return "entropy-threshold"
    return None


def candidates(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, int]]:
    text = leaf.value if text is None else text
    for m in TOKEN.finditer(text):
        tok = m.group()
        if len(set(tok)) >= 8:
            yield tok, m.start()


def find(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, str | None, str]]:
    """Yields (token, filter_or_None, confidence) for every candidate of the leaf."""
    text = leaf.value if text is None else text
    if len(text) < 20:
        return
    ctx: LeafContext | None = None
    query_at = text.find("?") if leaf.decoded == "query" else -1
    for tok, start in candidates(leaf, text):
        if 0 <= query_at < start:
            continue  # each query parameter is its own (decoded) leaf
        if text[:6].lower() == "basic " and start == 6:
            continue
        if ctx is None:
            ctx = LeafContext(leaf)
        f = classify(tok, start, ctx)
        yield tok, f, ("medium" if ctx.secret_key else "low")
