"""Entropy stage: random-looking base64 / base64url / hex tokens that no pattern rule claimed.

A *candidate* is a run of `[A-Za-z0-9+/_-]` of at least 20 characters (optionally `=`-padded) with at
least 8 distinct characters; runs joined by single dots are one candidate (`xxxx.yyyy.zzzz`, a JWT-like
or dotted token, is one secret, reported once). Each candidate goes through the filters below, in order;
the first that matches drops it and the engine records `Drop(rule_id='high-entropy', filter=<name>,
json_path)`, so every silence is countable and explainable. Candidates that survive every filter and
clear the entropy threshold are reported as rule `high-entropy`.

Filters keyed by where a value sits (a key name or a JSON path) also check the value's *shape*, so a
secret pasted under an odd name is still reported: a random string under `FileLocator` that does not
decode to a blob path, under `$skiptoken` that is no paging token, under `ETag` that is not quoted.
(Pattern rules never see these filters: a GitHub token under `$skiptoken` is still a `github-token`.)
`FILTERS` below carries each filter's examples both ways; tests/detectors/test_rules_examples.py runs
them through the engine.

Filters (names as recorded in `Drop.filter`):

=====================  ===========================================================================
azure-resource-id      the string is an Azure resource id (`/subscriptions/…`, `/providers/Microsoft.`)
guid                   contains a GUID (`8-4-4-4-12` hex), the commonest id in run history
numeric                digits only (timestamps, tick counts, long numeric ids)
tracking-id            run / trigger history names (`08586…CU62`), or a single-token value under a
                       tracking / correlation / request id key (`x-ms-*` headers other than keys,
                       signatures and user metadata, `request-id`, `client-request-id`,
                       `clientTrackingId`, `traceparent`, Front Door `X-Azure-Ref`, …)
documentation example  a provider's documented example credential (doc_examples.py; every rule
                       checks its candidates against the same list, not only this stage)
odata-paging           under an OData paging link or token (`@odata.nextLink`, `@odata.deltaLink`,
                       `$skiptoken`, `$deltatoken`, SharePoint `__next`, Dataverse paging cookies,
                       blob `NextMarker`) AND shaped like a paging token: base64/hex of paging text
                       (`Paged=TRUE&p_ID=…`), a Graph directory token (`DSpt…`), a paging cookie,
                       or a long (≥ 64) opaque token
sharepoint-id          a SharePoint / OneDrive drive id (`b!` + base64url of whole GUIDs, in any
                       field or path), or under a drive-item key (`{ItemId}`, `{DriveItemId}`,
                       `driveItemId`, `id`…) a Graph item id (`01` + 32 base32)
blob-locator           under an Azure Blob connector id key (`FileLocator`, `Id`, `{Identifier}`)
                       AND base64 that decodes to a blob path (`%2fcontainer%2ffile.pdf`)
etag                   the key is an ETag (`ETag`, `@odata.etag`, `If-Match`) and the value is
                       quoted, `W/"…"`, `0x…`, digits or holds a GUID; or the value is `W/"…"`
hash-key               the key or path names a hash (`contentHash`, `Content-MD5`, `md5`, `sha256`,
                       `quickXorHash`, `checksum`, `thumbprint`, …) AND the token has a digest's
                       size (hex of 8–128 digits, base64 of 4/8/16/20/28/32/48/64 bytes)
row-version            the key names a version stamp (`versionnumber`, `rowversion`, `version`,
                       Graph `changeKey`) AND the token is hex or base64 of at most 48 bytes
encoded-content        the key is `$content` / `contentBytes`: the walker scans the decoded layer
image-data             `data:image/…` URIs, base64 of PNG/JPEG/GIF/WebP/PDF/ZIP (magic after
                       decoding), image-ish keys (`thumbnail`, `photo`, `picture`, `logo`, `icon`)
placeholder            `<your-key>`, `${KEY}`, `{{x}}`, `xxxx`, `REPLACE_ME`, `changeme`, repeated
                       characters, sequential alphabets (detect-secrets `is_sequential_string`)
long-blob              longer than 1,024 characters: content, not a credential (private keys are
                       found by the `private-key` rule)
url-path               the token is part of a URL's host or path (not its query) or a file path
                       (`Shared Documents/Contracts/MSA-1234-Fabrikam.pdf`)
hex-digest             hex of digest length (32/40/64/96/128) under a key that does not name a secret
natural-language       made of pronounceable words (camelCase / kebab / snake identifiers, prose),
                       or a file / item name: words and short numbers joined by `-_.~`
entropy-threshold      Shannon entropy below the threshold for its alphabet and length
=====================  ===========================================================================

Confidence: `medium` when the key names a secret (`…Key`, `…Secret`, `token`, …) or the token is long
enough that chance explains it poorly (base64-ish ≥ 32 characters, hex ≥ 40); `low` otherwise (20–31
characters under a neutral key: short ids and hashes of every kind look like that), and `low` for a
provider look-alike: a documented prefix (`ghp_`, `glpat-`, `xoxb-`, `sk_live_`, `SG.`…) on a shape that
provider does not issue, or on a key it does not keep secret (`pk_live_`, `sk_test_`). The engine keeps
low-confidence hits as Drops with filter `low confidence` unless `Engine(min_confidence="low")`.

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
from .doc_examples import DOC_EXAMPLES, is_documentation_example
from .doc_examples import FILTER as DOC_FILTER
from .rules import Rule, ex

RULE_ID = "high-entropy"

# A run of the token alphabet, or several joined by single dots, at least MIN_TOKEN long (the
# lookahead skips short words in C; the length is checked again because `a..b` stops at the `..`).
TOKEN = re.compile(r"(?=[A-Za-z0-9+/_.=-]{20})[A-Za-z0-9+/_-]+(?:\.[A-Za-z0-9+/_-]+)*={0,2}")
MIN_TOKEN = 20
STRONG_B64 = 32  # base64-ish candidates this long (core, without padding) are medium confidence
STRONG_HEX = 40  # hex candidates this long
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EXACT_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_DIGITS = re.compile(r"[0-9_-]+\Z")
_RUN_NAME = re.compile(r"\d{15,}[A-Z]{2}\d{1,5}\Z")
_REPEAT = re.compile(r"(.)\1{5,}")
_PLACEHOLDER_SUB = re.compile(r"(?i)x{4,}|replace|your[_-]?(?:key|secret|token|api|password)|changeme|placeholder|example|dummy|sample|redacted|abcdef|123456")
# x-ms-* response headers are ids, versions, diagnostics; not those that carry a key, a signature or
# an authorization (`x-ms-encryption-key`, `x-ms-copy-source-authorization`: _SECRET_KEY), and not
# `x-ms-meta-*`, which is user metadata (anything at all). Azure Front Door's `X-Azure-Ref` /
# `X-MSEdge-Ref` are request references (https://learn.microsoft.com/azure/frontdoor/front-door-http-headers-protocol).
_TRACKING_KEY = re.compile(
    r"(?i)(?:^x-ms-(?!meta-)[\w-]+$|tracking|correlation|request-?id|requestid|activity-?id|"
    r"traceparent|tracestate|operation-?id|session-?id|x-request-id|x-correlation-id|runid|run_id|"
    r"^x-azure-ref$|^x-msedge-ref$|"
    r"^(?:id|name|runname|workflowid|flowid|objectid|tenantid|userid|messageid|itemid|driveid|listid|siteid|"
    r"conversationid|threadid|eventid|clientid|client_id|appid|resourceid)$|_id$|Id$)")
_ETAG_KEY = re.compile(r"(?i)(?:etag|if-match|if-none-match)$")
_HASH_KEY = re.compile(r"(?i)(?:contentversion|contenthash|content-md5|md5|sha1|sha256|sha512|sha-?\d+|checksum|"
                       r"digest|thumbprint|fingerprint|hash|crc|x-ms-content-crc64|x-ms-request-server-encrypted)")
_HASH_PATH = re.compile(r"(?i)(?:contenthash|contentmd5|content-md5|checksum|\.md5|\.sha\d+|etag)\b[^.\[]*[.\[][^.\[]*$")
# Dataverse `versionnumber` / SQL `RowVersion` / Graph (Outlook) `changeKey`, "the version of the item":
# https://learn.microsoft.com/graph/api/resources/message (changeKey)
_VERSION_KEY = re.compile(r"(?i)(?:version|changekey)")
_SECRET_KEY = re.compile(r"(?i)(?:key|secret|token|passw|pwd|credential|auth|sig(?:nature)?$|apikey|cert)")
_IMAGE_KEY = re.compile(r"(?i)(?:thumbnail|photo|picture|image|logo|icon|avatar)")
_CONTENT_KEY = re.compile(r"(?i)^(?:\$content|contentbytes|\$contentbytes|contentbase64)$")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"%PDF", b"PK\x03\x04", b"BM", b"\x00\x00\x01\x00",
          b"\x1f\x8b", b"<svg", b"<?xml")
_RESOURCE = re.compile(r"(?i)/subscriptions/[0-9a-f-]{36}|/providers/microsoft\.|/resourcegroups/")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_SPACE = re.compile(r"\s")

# OData paging (Graph, Dataverse, SharePoint REST) and blob listing: the link, the token parameter and
# the connector fields that carry them, matched (any case) in the json_path of the leaf.
#   Graph paging: https://learn.microsoft.com/graph/paging ($skiptoken in @odata.nextLink)
#   Graph delta:  https://learn.microsoft.com/graph/delta-query-overview ($deltatoken, @odata.deltaLink)
#   Dataverse:    https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/page-results
#                 (@odata.nextLink with a $skiptoken paging cookie, @Microsoft.Dynamics.CRM.fetchxmlpagingcookie)
#   SharePoint REST v2 / list items: `__next` / `odata.nextLink` with `$skiptoken=Paged=TRUE&p_ID=…`
#   Blob storage List Blobs: https://learn.microsoft.com/rest/api/storageservices/list-blobs (NextMarker)
_PAGING_PATH = re.compile(r"(?i)nextlink|deltalink|__next|skiptoken|deltatoken|pagingcookie|nextmarker|nextpagemarker")
_COOKIE = re.compile(r"(?i)\s*(?:<cookie\b|%3ccookie\b|paged=true|paged%3dtrue)")
# Graph's directory paging tokens are base64 of a binary record that starts with "DSpt" (`RFNwdA…`) or
# the same bytes in hex inside `X'…'`.
_DIRECTORY_TOKEN = b"DSpt"
PAGING_LONG = 64  # an opaque paging / delta token this long is not read as a secret

# SharePoint / OneDrive: a drive id is `b!` + base64url of GUIDs (site collection, site, list);
# a drive item id is `01` + 32 base32 characters. Graph driveItem / itemReference:
# https://learn.microsoft.com/graph/api/resources/driveitem , .../resources/itemreference
_GRAPH_ITEM_ID = re.compile(r"01[A-Z2-7]{32}\Z")
_DRIVE_ITEM_KEYS = frozenset({"itemid", "driveitemid", "identifier", "uniqueid", "listitemuniqueid", "id"})
# Azure Blob Storage connector BlobMetadata: `Id` / `FileLocator` hold base64 of the URL-encoded blob
# path (https://learn.microsoft.com/connectors/azureblob/#blobmetadata)
_BLOB_KEYS = frozenset({"filelocator", "id", "blobid", "fileid", "identifier"})
_DIGEST_HEX = frozenset({8, 16, 32, 40, 56, 64, 96, 128})     # crc32, crc64, md5, sha1, sha224/256/384/512
_DIGEST_BYTES = frozenset({4, 8, 16, 20, 28, 32, 48, 64})     # the same digests in base64 (and quickXor)
_VERSION_MAX_BYTES = 48

RULE = Rule(
    RULE_ID,
    "Random-looking base64/base64url/hex token (entropy stage) that survives the run-history filters "
    "(GUIDs, digests, ETags, images, resource ids, tracking ids, OData paging tokens, SharePoint and blob "
    "ids, row versions, timestamps, placeholders, documentation examples, prose, paths). Medium confidence "
    "for long tokens or secret-named keys; short ones under neutral keys are low (not reported by default).",
    "entropy", "medium", (),
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


def _b64_bytes(tok: str) -> bytes | None:
    """The bytes of a base64 or base64url token (padding optional), None when it is neither."""
    core = tok.rstrip("=")
    if len(core) % 4 == 1:
        return None
    if "-" in core or "_" in core:
        if "+" in core or "/" in core:
            return None
        core = core.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _decodes_to_binary_image(tok: str) -> bool:
    head = tok[:64].replace("-", "+").replace("_", "/")
    head = head[: len(head) - len(head) % 4]
    try:
        raw = base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(_MAGIC)


def _printable_text(raw: bytes) -> str | None:
    """`raw` as text when it is printable ASCII (paging cookies, paths, query strings), else None."""
    if len(raw) < 6:
        return None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _decodes_to_path(tok: str) -> bool:
    """base64 of a path: `%2fcontainer%2ffile.pdf`, `/exports/2026/orders.csv`, `Shared Documents/x`."""
    raw = _b64_bytes(tok)
    text = _printable_text(raw) if raw is not None else None
    return bool(text) and ("/" in text or "%2f" in text.lower() or "\\" in text)


def _paging_token(tok: str, ctx: "LeafContext") -> bool:
    """Shaped like what OData / blob listings page with (see _PAGING_PATH)."""
    if ctx.cookie or len(tok) >= PAGING_LONG:
        return True
    raw = bytes.fromhex(tok) if _HEX.match(tok) and len(tok) % 2 == 0 else _b64_bytes(tok)
    if raw is None:
        return False
    return raw.startswith(_DIRECTORY_TOKEN) or _printable_text(raw) is not None


def _drive_id(tok: str, start: int, text: str) -> bool:
    """`b!` + base64url of whole GUIDs (16·k bytes), also URL-encoded (`b%21…`)."""
    pre = text[max(0, start - 2):start]
    if pre == "b%" and tok.startswith("21"):
        tok = tok[2:]
    elif pre != "b!":
        return False
    seg = re.split(r"[/.]", tok, maxsplit=1)[0]
    raw = _b64_bytes(seg)
    return raw is not None and len(raw) >= 16 and len(raw) % 16 == 0


def _digest_shape(tok: str) -> bool:
    core = tok.rstrip("=")
    if _HEX.match(core):
        return len(core) in _DIGEST_HEX
    raw = _b64_bytes(tok)
    return raw is not None and len(raw) in _DIGEST_BYTES


def _version_shape(tok: str) -> bool:
    if _HEX.match(tok):
        return len(tok) <= 64
    raw = _b64_bytes(tok)
    return raw is not None and len(raw) <= _VERSION_MAX_BYTES


def _etag_value(v: str) -> bool:
    """What ETags look like: quoted (`"0x8DC…"`, `"{GUID},2"`), weak (`W/"123"`), `0x…`, digits."""
    s = v.strip()
    return (s[:2] in ('W/', 'w/') or s[:1] in ('"', "'") or s[:2].lower() == "0x" or s.isdigit()
            or _GUID.search(s[:128]) is not None)


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


_NAME_PART = re.compile(r"[-_.~]")
_ESCAPE_TAIL = re.compile(r"(?:25)*[0-9a-fA-F]{2}")  # what a %-escape (`%2f`, twice encoded `%252f`) leaves


def _path_segment(p: str) -> bool:
    """A folder or file name: lowercase, words, a short number, or words and numbers joined by
    `-_.~` (`MSA-1234-Fabrikam.pdf`, `Q3_Report_2026.xlsx`); random text is none of these."""
    if _LOWER_SEGMENT.match(p) or _natural(p) or (p.isdigit() and len(p) < 10):
        return True
    return _name_like(p)


def _name_like(p: str) -> bool:
    parts = [x for x in _NAME_PART.split(p) if x]
    return len(parts) > 1 and all(x.isalpha() or (x.isdigit() and len(x) < 10) for x in parts)


class LeafContext:
    """Per-leaf facts computed once, shared by all tokens of the leaf."""

    __slots__ = ("key_filter", "resource", "image", "etag", "url_cut", "secret_key", "paging", "cookie",
                 "drive_item_key", "blob_key", "text", "leaf")

    def __init__(self, leaf: Leaf, text: str | None = None) -> None:
        key = leaf.key or ""
        v = leaf.value if text is None else text
        self.text = v
        self.leaf = leaf
        self.paging = None  # the context filters' facts: computed when a candidate gets that far
        self.secret_key = bool(key and _SECRET_KEY.search(key))
        self.key_filter = None
        if key:
            if _ETAG_KEY.search(key):
                if _etag_value(v):
                    self.key_filter = "etag"
            elif _HASH_KEY.search(key) and not self.secret_key:
                self.key_filter = "hash-key"
            elif _VERSION_KEY.search(key) and (not self.secret_key or key.lower() == "changekey"):
                self.key_filter = "row-version"
            elif _CONTENT_KEY.match(key):
                self.key_filter = "encoded-content"
            elif _IMAGE_KEY.search(key):
                self.key_filter = "image-data"
            elif _TRACKING_KEY.search(key) and not self.secret_key and _SPACE.search(v[:4096]) is None:
                self.key_filter = "tracking-id"  # ids are one token; prose under such a key is not an id
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


    def where(self) -> None:
        """Facts for the filters keyed by where a value sits (most candidates never need them: a GUID
        is dropped before)."""
        leaf = self.leaf
        kn = leaf.key.lower().strip("{}").lstrip("$@") if leaf.key else ""
        self.drive_item_key = kn in _DRIVE_ITEM_KEYS
        self.blob_key = kn in _BLOB_KEYS
        self.paging = _PAGING_PATH.search(leaf.json_path) is not None
        self.cookie = self.paging and _COOKIE.match(self.text[:32]) is not None


# key filters that hold only for values of the right shape; the others hold for anything there
_SHAPED_KEY_FILTERS = {"hash-key": _digest_shape, "row-version": _version_shape}


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
    if tok in DOC_EXAMPLES or ("EXAMPLE" in tok and is_documentation_example(tok)):
        return DOC_FILTER  # (entropy candidates are whole tokens: an example in one is all of it)
    if ctx.paging is None:
        ctx.where()
    if ctx.paging and _paging_token(tok, ctx):
        return "odata-paging"
    if 2 <= start and ctx.text[start - 2] == "b" and _drive_id(tok, start, ctx.text):
        return "sharepoint-id"
    if ctx.blob_key and _decodes_to_path(tok):
        return "blob-locator"
    if ctx.drive_item_key and _GRAPH_ITEM_ID.match(tok):
        return "sharepoint-id"
    kf = ctx.key_filter
    if kf is not None:
        shape = _SHAPED_KEY_FILTERS.get(kf)
        if shape is None or shape(tok):
            return kf
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
    # a file or item name (`MSA-1234-Fabrikam.pdf`), also right after a URL escape (`%2fMSA-1234…`)
    esc = _ESCAPE_TAIL.match(tok) if start and ctx.text[start - 1] == "%" else None
    name = tok[esc.end():] if esc else tok
    if _natural(tok) or _name_like(name):
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


# Providers' documented token prefixes, with the shape each provider issues after it. A candidate that
# starts with one but has another shape is a look-alike (wrong length, a typo, a test or publishable
# key): its provider's pattern rule, which knows the format, did not claim it either. Low confidence.
#   GitHub: https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/
#   GitLab: https://docs.gitlab.com/ee/security/tokens/ (token prefixes)
#   Slack:  https://api.slack.com/authentication/token-types
#   Stripe: https://docs.stripe.com/keys (publishable `pk_`, test mode `sk_test_`, restricted `rk_`)
#   SendGrid: https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys (`SG.` + id + `.` + secret)
#   npm:    https://github.blog/2021-09-23-announcing-npms-new-access-token-format/
#   PyPI:   https://pypi.org/help/#apitoken
_PROVIDER_PREFIX = re.compile(r"gh[pousr]_|github_pat_|glpat-|xox[abposr]-|[sr]k_live_|[sp]k_test_|pk_live_|SG\.|"
                              r"npm_|pypi-")
_PROVIDER_SHAPE = re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|"
                             r"glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[0-9]+-[0-9A-Za-z-]{10,}|[sr]k_live_[0-9A-Za-z]{24,}|"
                             r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}")


def lookalike(tok: str) -> bool:
    """A provider's prefix on something the provider does not issue (or does not keep secret)."""
    return _PROVIDER_PREFIX.match(tok) is not None and _PROVIDER_SHAPE.fullmatch(tok) is None


def strength(tok: str) -> str:
    """Confidence of a reported candidate under a key that does not name a secret."""
    core = tok.rstrip("=")
    if _HEX.match(core):
        return "medium" if len(core) >= STRONG_HEX else "low"
    return "medium" if len(core) >= STRONG_B64 else "low"


def candidates(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, int]]:
    text = leaf.value if text is None else text
    for m in TOKEN.finditer(text):
        tok = m.group()
        if len(tok) >= MIN_TOKEN and len(set(tok)) >= 8:
            yield tok, m.start()


def find(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, str | None, str]]:
    """Yields (token, filter_or_None, confidence) for every candidate of the leaf."""
    text = leaf.value if text is None else text
    if len(text) < 20:
        return
    if len(text) == 36 and _EXACT_GUID.match(text):
        # the commonest leaf of run history, known without the tokenizer and the leaf's context: the
        # whole GUID is one candidate (8 distinct characters or more) and `classify` drops it as a guid
        if len(set(text)) >= 8:
            yield text, "guid", "low"
        return
    ctx: LeafContext | None = None
    query_at = text.find("?") if leaf.decoded == "query" else -1
    basic_at = 6 if text[:6].lower() == "basic " else -1
    for tok, start in candidates(leaf, text):
        if 0 <= query_at < start:
            continue  # each query parameter is its own (decoded) leaf
        if start == basic_at:
            continue
        if ctx is None:
            ctx = LeafContext(leaf, text)
        f = classify(tok, start, ctx)
        if f is not None:
            yield tok, f, "low"
        elif lookalike(tok):
            yield tok, f, "low"
        else:
            yield tok, f, ("medium" if ctx.secret_key else strength(tok))


# -- the filters and their examples ------------------------------------------------------------------
# Example values are fake: random characters typed for the tests, or base64 of made-up paths and paging
# records built here so the shape they stand for stays readable.
from .filters import Filter, drop, keep  # noqa: E402  (the registry needs the functions above)


def _b64(text: str | bytes, url: bool = False) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return (base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)).decode().rstrip("=" if url else "")


_GH = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"                # GitHub PAT shape (fake)
_RND40 = "Tq7Vb3Mc6Hj9Pf4Yd0Sa2Lw5Xn1Zr8Kx2Nm4Qe6W"              # random, no format: only entropy sees it
_RND24 = "Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0"
_KEY88 = "kP3nW8vQ2zR5tY7uI1oA4sD6fG9hJ0kL2zX5cV8bN1mQ3wE6rT9yU2iO5pA8sD1fG4hJ7kL0zX3cV6bN9mQ2w=="
_CONN = f"DefaultEndpointsProtocol=https;AccountName=stfakearchive01;AccountKey={_KEY88};EndpointSuffix=core.windows.net"
_AAD = "Abc8Q~xY7zQ2mK9pL4nR6tV1wS3uE5oI0aDfGh_J"
_GUIDS = bytes.fromhex("4f1c9a2e7b3d4e5fa6b7c8d9e0f1a2b3" "9e8d7c6b5a4f43e2b1c0d9e8f7a6b5c4" "0a1b2c3d4e5f40718293a4b5c6d7e8f9")
_DRIVE = "b!" + _b64(_GUIDS, url=True)
_DIR_TOKEN = _b64(b"DSpt\x02\x00\x01\x00\x00\x00\x1d:megan.bowen@contoso-fake.example)User_"
                  + _GUIDS[:16] + b"\xb9\x00\x00\x00\x00\x00\x00")
_SP_TOKEN = _b64("Paged=TRUE&p_SortBehavior=1&p_FileLeafRef=Budget-2026.xlsx&p_ID=214")
_DELTA = "aZ3xC8vB1nM6qW4eR9tY2uI7oP5sD0fG3hJ8kL1zX6cV4bN9mQ2wE5rT8yU1iO4pA7sD0fG3hJ6kL9zX2cV5b"
_LOCATOR = _b64("%2finvoices%2f2026%2fInv-0042.pdf")
_GRAPH = "https://graph.microsoft.com/v1.0"

FILTERS: tuple[Filter, ...] = (
    Filter("odata-paging", "OData / blob paging links and tokens shaped like paging tokens.",
           "Graph paging and delta query docs, Dataverse Web API paging, Blob List Blobs (NextMarker)",
           dropped=(drop({"@odata.nextLink": f"{_GRAPH}/users?$top=100&$skiptoken={_DIR_TOKEN}"}),
                    drop({"@odata.nextLink": f"{_GRAPH}/drives/x/root/children?$skiptoken={_SP_TOKEN}"}),
                    drop({"@odata.deltaLink": f"{_GRAPH}/users/delta?$deltatoken={_DELTA}"}),
                    drop({"$skiptoken": "X'" + (b"DSpt\x02\x00\x01\x00\x00\x00" + _GUIDS[:16]).hex().upper() + "'"}),
                    drop({"NextMarker": "2!88!" + _b64("000031!invoices/2026/Inv-0042.pdf!000028!9999-12-31T23:59:59.9999999Z!")})),
           kept=(keep({"@odata.nextLink": f"{_GRAPH}/users?$skiptoken={_GH}"}, "github-token", _GH),
                 keep({"$skiptoken": _RND40}, RULE_ID, _RND40),
                 keep({"$skiptoken": _CONN}, "azure-storage-account-key", _KEY88),
                 keep({"@odata.deltaLink": f"{_GRAPH}/me/delta?note={_AAD}"}, "azure-ad-client-secret", _AAD))),
    Filter("sharepoint-id", "SharePoint / OneDrive drive ids (`b!…`) and drive item ids.",
           "Graph driveItem / itemReference resources; SharePoint connector file trigger outputs",
           dropped=(drop({"{DriveId}": _DRIVE}),
                    drop({"parentReference": {"path": f"/drives/{_DRIVE}/root:/Finance"}}),
                    drop({"{DriveItemId}": "01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K"}),
                    drop({"{ItemId}": "01BYE5RZ2MRUH3XFIJ5NGY3LA4GRTJ4SBE"})),
           kept=(keep({"{DriveId}": _GH}, "github-token", _GH),
                 keep({"{DriveId}": _RND40}, RULE_ID, _RND40),
                 keep({"{ItemId}": _RND40}, RULE_ID, _RND40),
                 keep({"{Identifier}": _AAD}, "azure-ad-client-secret", _AAD))),
    Filter("blob-locator", "Azure Blob connector `FileLocator` / `Id`: base64 of the blob path.",
           "Azure Blob Storage connector reference (BlobMetadata)",
           dropped=(drop({"FileLocator": _LOCATOR}), drop({"Id": _b64("/exports/2026/05/orders-full.csv")}),
                    drop({"{Identifier}": _b64("Shared Documents/Finance/Budget-2026.xlsx")})),
           kept=(keep({"FileLocator": _GH}, "github-token", _GH),
                 keep({"FileLocator": _RND40}, RULE_ID, _RND40),
                 keep({"Id": _CONN}, "azure-storage-account-key", _KEY88))),
    Filter("tracking-id", "Run names; single-token values under tracking / correlation / request id keys.",
           "Logic Apps run history (clientTrackingId, x-ms-workflow-* headers), Graph request-id",
           dropped=(drop({"x-ms-client-request-id": "Qm7Rt2Zx9Lp4Wn1Vb8Kc3Hd6Jf0Ys5"}),
                    drop({"clientTrackingId": "Zk9xR2vT8mNw4pL7sYc1HbE5uJ3aGd6f"}),
                    drop({"x-ms-workflow-run-tracking-id": "Hb5Nq2Wz8Rt4Ym7Lc1Xv9Kd3Jp6Fs0Ga"}),
                    drop({"runs": ["08586653536760200319026785874CU62"]})),
           kept=(keep({"x-ms-client-request-id": _GH}, "github-token", _GH),
                 keep({"x-ms-encryption-key": _b64(bytes(range(7, 39)))}, RULE_ID),
                 keep({"clientTrackingId": f"order 7 {_RND40}"}, RULE_ID, _RND40))),
    Filter("etag", "ETag values (quoted, weak `W/\"…\"`, `0x…`) under ETag keys, and `W/\"…\"` anywhere.",
           "RFC 9110 §8.8.3 (entity tags); Dataverse / Graph / Blob `@odata.etag`, `ETag`",
           dropped=(drop({"ETag": "\"0x8DC1A2B3C4D5E6F7A8B9C\""}), drop({"@odata.etag": 'W/"datetime\'2026-01-05T10%3A15%3A00.1234567Z\'Qk5xR2vT8mNw4pL7sYc1"'})),
           kept=(keep({"ETag": _RND40}, RULE_ID, _RND40), keep({"@odata.etag": _GH}, "github-token", _GH))),
    Filter("hash-key", "Digests (hex / base64 of a digest's size) under hash-named keys or paths.",
           "HTTP Content-MD5; Graph hashes resource (quickXorHash, sha1Hash, sha256Hash); Logic Apps contentHash",
           dropped=(drop({"Content-MD5": _b64(bytes(range(16)))}),
                    drop({"file": {"hashes": {"quickXorHash": _b64(bytes(range(40, 60)))}}}),
                    drop({"contentHash": {"algorithm": "md5", "value": "98GuGIhrxUoG/lKXcXUgaA=="}})),
           kept=(keep({"hash": _RND40}, RULE_ID, _RND40), keep({"checksum": _GH}, "github-token", _GH))),
    Filter("row-version", "Version stamps (hex / short base64) under version keys (`versionnumber`, `changeKey`).",
           "Graph message resource (changeKey); Dataverse versionnumber; SQL rowversion",
           dropped=(drop({"changeKey": "CQAAABYAAADqkiSHD6LQ7ARfYyb6ZlAAAAABHm"}),
                    drop({"version": "3d6e2b71c0f94a58d3e6b27c1f09e4a3"})),
           kept=(keep({"changeKey": _GH}, "github-token", _GH),
                 keep({"version": _KEY88}, RULE_ID, _KEY88))),
    Filter("image-data", "Images and binary files: data URIs, base64 with a PNG/JPEG/PDF/ZIP header, image keys.",
           "PNG, JPEG, PDF, ZIP file signatures",
           dropped=(drop({"value": _b64(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>")}),
                    drop({"value": _b64(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00orders.xlsx")}),
                    drop({"photo": "data:image/jpeg;base64," + _b64(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00H")})),
           kept=(keep({"photo": _GH}, "github-token", _GH),)),
    Filter("azure-resource-id", "Azure resource ids.", "Azure Resource Manager resource ids",
           dropped=(drop({"id": "/subscriptions/f42cebc2-1111-2222-3333-444455556666/resourceGroups/rg/providers/"
                                 "Microsoft.Web/sites/Q8r2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0"}),),
           kept=(keep({"id": "/subscriptions/f42cebc2-1111-2222-3333-444455556666/?code=x " + _GH}, "github-token", _GH),)),
)
