"""Named filters: every candidate a detector drops has a filter name (`Drop.filter`, the `filtered`
table), and every filter carries examples both ways in `FILTERS`, the registry below, run by
tests/detectors/test_rules_examples.py:

* `dropped`: bodies whose only candidate the filter removes: scanning one reports nothing, and
  records a Drop with the filter's name for `rule_id`;
* `kept`: real-looking secrets placed where the filter looks (under the same key, in the same kind
  of path), still reported by `rule_id` (a pattern rule, or the entropy stage when the value does not
  have the filtered shape): a filter keyed by where a value sits must not hide what sits there.

Example secrets are fake (random characters made for the tests) unless the filter is about public
documentation examples, whose values are quoted from the providers' pages (see doc_examples.py).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .doc_examples import FILTER as DOC_FILTER
from .entropy import RULE_ID as ENTROPY_RULE
from .placeholders import FILTER as PLACEHOLDER_FILTER


@dataclass(frozen=True)
class FilterCase:
    body: Any
    rule_id: str              # the rule whose candidate is dropped (dropped) / that still reports (kept)
    secret: str | None = None  # kept: the exact secret expected (None: any)

    def __repr__(self) -> str:  # short test ids; the bodies are fake anyway
        return f"FilterCase({self.rule_id}, {str(self.body)[:40]!r}…)"


@dataclass(frozen=True)
class Filter:
    name: str                 # as recorded in Drop.filter
    description: str
    source: str               # where the shape comes from (a provider's documentation, or flowleaks)
    dropped: tuple[FilterCase, ...] = field(default=(), repr=False)
    kept: tuple[FilterCase, ...] = field(default=(), repr=False)

    def as_doc(self) -> dict:
        return {"name": self.name, "description": self.description, "source": self.source,
                "dropped": [c.body for c in self.dropped], "kept": [c.body for c in self.kept]}


def drop(body: Any, rule_id: str = ENTROPY_RULE) -> FilterCase:
    return FilterCase(body, rule_id)


def keep(body: Any, rule_id: str, secret: str | None = None) -> FilterCase:
    return FilterCase(body, rule_id, secret)


# -- the registry -------------------------------------------------------------------------------------
# The engine's own filters (documentation examples, the confidence floor), the placeholder check every
# detector makes (placeholders.py), and the entropy stage's filters keyed by where a value sits
# (entropy_filters.py; its shape-only ones, `guid`, `numeric`, `natural-language`…, are shown in
# tests/detectors/test_entropy_filters.py). Example values are fake: random characters typed for the
# tests, or base64 of made-up paths and paging records built here so the shape they stand for stays
# readable.
LOW_CONFIDENCE = "low confidence"


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
_AWS_DOC_ID, _AWS_DOC_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_FAKE_AWS_ID = "AKIAQ3EGT7NZK5XW2PLM"  # AWS key id shape, random (fake)
FILTERS: tuple[Filter, ...] = (
    Filter(DOC_FILTER, "A provider's documented example credential, whichever rule (pattern, detect-secrets "
                       "plugin, entropy) found it; known values are not checked (the user gave them).",
           "AWS CLI / SigV4 docs, Azurite docs, Azure Storage SAS docs, Stripe API docs (doc_examples.py)",
           dropped=(drop({"aws_access_key_id": _AWS_DOC_ID}, "aws-access-key"),
                    drop({"notes": f"aws configure: {_AWS_DOC_ID}"}, "aws-access-key"),
                    drop({"password": _AWS_DOC_SECRET}, "secret-keyword"),
                    drop({"credentials": f"[default]\naws_access_key_id = {_AWS_DOC_ID}\n"
                                         f"aws_secret_access_key = {_AWS_DOC_SECRET}\n"}, "aws-access-key"),
                    # the Azurite docs' connection string
                    drop({"cs": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={_AZURITE_KEY};"
                                "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}, "azure-storage-account-key"),
                    drop({"data": _AZURITE_KEY}, ENTROPY_RULE),
                    # found by the catalogue's Stripe rule (detectors/rules), dropped all the same
                    drop({"stripe": "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}, "stripe-test-key"),
                    # the Azure Storage "Service SAS examples" page's request URL
                    drop({"url": "https://myaccount.blob.core.windows.net/pictures/profile.jpg?sv=2012-02-12&st=2009-02-09"
                                 "&se=2009-02-10&sr=c&sp=r&si=YWJjZGVmZw%3d%3d&sig=dD80ihBh5jfNpymO5Hg1IdiJIEvHcJpCMiCMnN%2fRnbI%3d"},
                         "azure-sas-token")),
           kept=(keep({"aws_access_key_id": _FAKE_AWS_ID}, "aws-access-key", _FAKE_AWS_ID),
                 keep({"notes": f"old {_AWS_DOC_ID}, new {_FAKE_AWS_ID}"}, "aws-access-key", _FAKE_AWS_ID),
                 keep({"cs": _CONN}, "azure-storage-account-key", _KEY88))),
    Filter(LOW_CONFIDENCE, "A hit below the engine's confidence floor (`Engine(min_confidence=…)`, CLI "
                           "`--min-confidence`; default medium): short random-looking tokens under neutral keys, "
                           "provider look-alikes (a documented prefix on a shape the provider does not issue).",
           "flowleaks",
           dropped=(drop({"value": _RND24}), drop({"Reference": "Zr8Kx2Nm4Qe6Wt3Yb7Lp1Vd"}),
                    # provider look-alikes: a GitHub prefix on the wrong length, a Stripe publishable key
                    drop({"token": "ghp_Xk29sLq8Wm3Zr7Tn4Yb1Qz5Vc8Hj2P"}),
                    drop({"stripe": "pk_live_51Hx3Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8"})),
           kept=(keep({"value": _RND40}, ENTROPY_RULE, _RND40),
                 keep({"token": _GH}, "github-token", _GH),
                 keep({"storageKey": _RND24}, ENTROPY_RULE, _RND24))),
    Filter(PLACEHOLDER_FILTER, "A value that stands where a secret goes: a sample word, a mask, a template or release "
                               "variable (`#{x}#`, `$(x)`, `__x__`, `${x}`), or a token holding a placeholder word "
                               "or run; checked by the pattern rules, the detect-secrets candidates and the entropy "
                               "stage (placeholders.py).",
           "flowleaks: documentation sample values, masks, release-time token syntaxes",
           dropped=(drop({"value": "xxxxxxxxxxxxxxxxxxxxabc123DEF456"}),
                    drop({"note": "key=REPLACE_ME_WITH_YOUR_KEY_abc123XYZ"}),
                    drop({"value": "Tq7Vb3Mc6Hj9Pf4Yd0SAMPLE2Lw5Xn1Zr8Kx2Nm4"}),
                    drop({"password": "your-password-here"}, "secret-keyword"),
                    drop({"password": "changeme"}, "secret-keyword"),
                    drop({"password": "__DbPassword__"}, "secret-keyword")),
           kept=(keep({"password": "Changeme2026!"}, "secret-keyword", "Changeme2026!"),
                 keep({"cs": "Server=tcp:sql1.database.windows.net;Database=orders;User ID=app;Password=Xk2#{q9Lm4Vt7;"},
                      "sql-connection-string-password", "Xk2#{q9Lm4Vt7"),
                 keep({"note": f"sample {_RND40}"}, ENTROPY_RULE, _RND40),
                 keep({"value": _RND40}, ENTROPY_RULE, _RND40))),
    Filter("odata-paging", "OData / blob paging links and tokens shaped like paging tokens.",
           "Graph paging and delta query docs, Dataverse Web API paging, Blob List Blobs (NextMarker)",
           dropped=(drop({"@odata.nextLink": f"{_GRAPH}/users?$top=100&$skiptoken={_DIR_TOKEN}"}),
                    drop({"@odata.nextLink": f"{_GRAPH}/drives/x/root/children?$skiptoken={_SP_TOKEN}"}),
                    drop({"@odata.deltaLink": f"{_GRAPH}/users/delta?$deltatoken={_DELTA}"}),
                    drop({"$skiptoken": "X'" + (b"DSpt\x02\x00\x01\x00\x00\x00" + _GUIDS[:16]).hex().upper() + "'"}),
                    drop({"NextMarker": "2!88!" + _b64("000031!invoices/2026/Inv-0042.pdf!000028!9999-12-31T23:59:59.9999999Z!")})),
           kept=(keep({"@odata.nextLink": f"{_GRAPH}/users?$skiptoken={_GH}"}, "github-token", _GH),
                 keep({"$skiptoken": _RND40}, ENTROPY_RULE, _RND40),
                 keep({"$skiptoken": _CONN}, "azure-storage-account-key", _KEY88),
                 keep({"@odata.deltaLink": f"{_GRAPH}/me/delta?note={_AAD}"}, "azure-ad-client-secret", _AAD))),
    Filter("sharepoint-id", "SharePoint / OneDrive drive ids (`b!…`) and drive item ids.",
           "Graph driveItem / itemReference resources; SharePoint connector file trigger outputs",
           dropped=(drop({"{DriveId}": _DRIVE}),
                    drop({"parentReference": {"path": f"/drives/{_DRIVE}/root:/Finance"}}),
                    drop({"{DriveItemId}": "01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K"}),
                    drop({"{ItemId}": "01BYE5RZ2MRUH3XFIJ5NGY3LA4GRTJ4SBE"})),
           kept=(keep({"{DriveId}": _GH}, "github-token", _GH),
                 keep({"{DriveId}": _RND40}, ENTROPY_RULE, _RND40),
                 keep({"{ItemId}": _RND40}, ENTROPY_RULE, _RND40),
                 keep({"{Identifier}": _AAD}, "azure-ad-client-secret", _AAD))),
    Filter("blob-locator", "Azure Blob connector `FileLocator` / `Id`: base64 of the blob path.",
           "Azure Blob Storage connector reference (BlobMetadata)",
           dropped=(drop({"FileLocator": _LOCATOR}), drop({"Id": _b64("/exports/2026/05/orders-full.csv")}),
                    drop({"{Identifier}": _b64("Shared Documents/Finance/Budget-2026.xlsx")})),
           kept=(keep({"FileLocator": _GH}, "github-token", _GH),
                 keep({"FileLocator": _RND40}, ENTROPY_RULE, _RND40),
                 keep({"Id": _CONN}, "azure-storage-account-key", _KEY88))),
    Filter("tracking-id", "Run names; single-token values under tracking / correlation / request id keys.",
           "Logic Apps run history (clientTrackingId, x-ms-workflow-* headers), Graph request-id",
           dropped=(drop({"x-ms-client-request-id": "Qm7Rt2Zx9Lp4Wn1Vb8Kc3Hd6Jf0Ys5"}),
                    drop({"clientTrackingId": "Zk9xR2vT8mNw4pL7sYc1HbE5uJ3aGd6f"}),
                    drop({"x-ms-workflow-run-tracking-id": "Hb5Nq2Wz8Rt4Ym7Lc1Xv9Kd3Jp6Fs0Ga"}),
                    drop({"runs": ["08586653536760200319026785874CU62"]})),
           kept=(keep({"x-ms-client-request-id": _GH}, "github-token", _GH),
                 keep({"x-ms-encryption-key": _b64(bytes(range(7, 39)))}, ENTROPY_RULE),
                 keep({"clientTrackingId": f"order 7 {_RND40}"}, ENTROPY_RULE, _RND40))),
    Filter("etag", "ETag values (quoted, weak `W/\"…\"`, `0x…`) under ETag keys, and `W/\"…\"` anywhere.",
           "RFC 9110 §8.8.3 (entity tags); Dataverse / Graph / Blob `@odata.etag`, `ETag`",
           dropped=(drop({"ETag": "\"0x8DC1A2B3C4D5E6F7A8B9C\""}), drop({"@odata.etag": 'W/"datetime\'2026-01-05T10%3A15%3A00.1234567Z\'Qk5xR2vT8mNw4pL7sYc1"'})),
           kept=(keep({"ETag": _RND40}, ENTROPY_RULE, _RND40), keep({"@odata.etag": _GH}, "github-token", _GH))),
    Filter("hash-key", "Digests (hex / base64 of a digest's size) under hash-named keys or paths.",
           "HTTP Content-MD5; Graph hashes resource (quickXorHash, sha1Hash, sha256Hash); Logic Apps contentHash",
           dropped=(drop({"Content-MD5": _b64(bytes(range(16)))}),
                    drop({"file": {"hashes": {"quickXorHash": _b64(bytes(range(40, 60)))}}}),
                    drop({"contentHash": {"algorithm": "md5", "value": "98GuGIhrxUoG/lKXcXUgaA=="}})),
           kept=(keep({"hash": _RND40}, ENTROPY_RULE, _RND40), keep({"checksum": _GH}, "github-token", _GH))),
    Filter("row-version", "Version stamps (hex / short base64) under version keys (`versionnumber`, `changeKey`).",
           "Graph message resource (changeKey); Dataverse versionnumber; SQL rowversion",
           dropped=(drop({"changeKey": "CQAAABYAAADqkiSHD6LQ7ARfYyb6ZlAAAAABHm"}),
                    drop({"version": "3d6e2b71c0f94a58d3e6b27c1f09e4a3"})),
           kept=(keep({"changeKey": _GH}, "github-token", _GH),
                 keep({"version": _KEY88}, ENTROPY_RULE, _KEY88))),
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


def filters_by_name() -> dict[str, Filter]:
    return {f.name: f for f in FILTERS}
