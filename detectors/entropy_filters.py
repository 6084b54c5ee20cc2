"""The entropy stage's filters: what a random-looking candidate is when it is not a secret.

`classify(token, start, LeafContext(leaf, text))` names the first filter that drops a candidate of the
entropy stage (entropy.py), or returns None; the engine records the drop as
`Drop(rule_id='high-entropy', filter=<name>, json_path)`, so every silence is countable and explainable.

Filters keyed by where a value sits (a key name or a JSON path) also check the value's *shape*, so a
secret pasted under an odd name is still reported: a random string under `FileLocator` that does not
decode to a blob path, under `$skiptoken` that is no paging token, under `ETag` that is not quoted.
(Pattern rules never see these filters: a GitHub token under `$skiptoken` is still a `github-token`.)
`FILTERS` in filters.py carries each filter's examples both ways; tests/detectors/test_rules_examples.py
runs them through the engine.

Filters (names as recorded in `Drop.filter`), in the order they are tried; the last, `entropy-threshold`,
is the stage's own scoring (entropy.py), applied to what `classify` lets through:

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
"""
from __future__ import annotations

import base64
import binascii
import re

from .base import Leaf
from .doc_examples import DOC_EXAMPLES, is_documentation_example
from .doc_examples import FILTER as DOC_FILTER
from .placeholders import FILTER as PLACEHOLDER_FILTER
from .placeholders import contains_placeholder

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX = re.compile(r"[0-9a-fA-F]+\Z")
_DIGITS = re.compile(r"[0-9_-]+\Z")
_RUN_NAME = re.compile(r"\d{15,}[A-Z]{2}\d{1,5}\Z")
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
    raw = bytes.fromhex(tok) if HEX.match(tok) and len(tok) % 2 == 0 else _b64_bytes(tok)
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
    if HEX.match(core):
        return len(core) in _DIGEST_HEX
    raw = _b64_bytes(tok)
    return raw is not None and len(raw) in _DIGEST_BYTES


def _version_shape(tok: str) -> bool:
    if HEX.match(tok):
        return len(tok) <= 64
    raw = _b64_bytes(tok)
    return raw is not None and len(raw) <= _VERSION_MAX_BYTES


def _etag_value(v: str) -> bool:
    """What ETags look like: quoted (`"0x8DC…"`, `"{GUID},2"`), weak (`W/"123"`), `0x…`, digits."""
    s = v.strip()
    return (s[:2] in ('W/', 'w/') or s[:1] in ('"', "'") or s[:2].lower() == "0x" or s.isdigit()
            or GUID.search(s[:128]) is not None)


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
    """The name of the filter that drops this candidate, or None when none here does (the entropy
    threshold, entropy.random_enough, decides then)."""
    if ctx.resource:
        return "azure-resource-id"
    if GUID.search(tok):
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
    if contains_placeholder(tok):
        return PLACEHOLDER_FILTER
    if len(tok) > 1024:
        return "long-blob"
    if 0 <= start < ctx.url_cut:
        return "url-path"
    if tok.count("/") >= 2 and all(_path_segment(p) for p in tok.split("/") if p):
        return "url-path"
    is_hex = bool(HEX.match(tok))
    if is_hex and len(tok) in (32, 40, 64, 96, 128) and not ctx.secret_key:
        return "hex-digest"
    if not is_hex and _decodes_to_binary_image(tok):
        return "image-data"
    # a file or item name (`MSA-1234-Fabrikam.pdf`), also right after a URL escape (`%2fMSA-1234…`)
    esc = _ESCAPE_TAIL.match(tok) if start and ctx.text[start - 1] == "%" else None
    name = tok[esc.end():] if esc else tok
    if _natural(tok) or _name_like(name):
        return "natural-language"
    return None
