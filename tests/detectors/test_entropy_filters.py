import base64
import random

import pytest

from detectors import entropy
from detectors.base import Leaf


def run(key, value, path=None):
    leaf = Leaf(value, path or (f"$.{key}" if key else "$"), key)
    return list(entropy.find(leaf))


DECOYS = [
    ("guid", "id", "d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"),
    ("guid", "value", "prefix-d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"),
    ("tracking-id", "value", "08586653536760200319026785874CU62"),
    ("tracking-id", "x-ms-workflow-run-id", "Q8r2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0"),
    ("tracking-id", "clientTrackingId", "Qm7Rt2Zx9Lp4Wn1Vb8Kc3Hd6Jf0Ys5"),
    ("hex-digest", "value", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("hex-digest", "value", "2d8d4d3c94604eeeadc68464ea5fb361"),
    ("hash-key", "contentVersion", "98GuGIhrxUoG/lKXcXUgaA=="),
    ("hash-key", "md5", "98GuGIhrxUoG/lKXcXUgaA=="),
    ("etag", "ETag", "\"0x8DC1A2B3C4D5E6F7A8B9\""),
    ("etag", "value", 'W/"datetime\'2024-01-01T00%3A00%3A00.1234567Z\'QmFzZTY0RXRhZ1ZhbHVl"'),
    ("image-data", "value", "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"),
    ("image-data", "value", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"),
    ("image-data", "value", "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U"),
    ("image-data", "thumbnailUrl", "Zx81kLp0QwErTy62Zx81kLp0QwErTy62abc"),
    ("azure-resource-id", "id", None),
    ("numeric", "value", "636853245678901234567890"),
    ("placeholder", "value", "xxxxxxxxxxxxxxxxxxxxabc123DEF456"),
    ("placeholder", "apiKey", "REPLACE_ME_WITH_YOUR_KEY_abc123XYZ"),
    ("placeholder", "value", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    ("natural-language", "value", "TheQuickBrownFoxJumpsOverTheLazyDog"),
    ("natural-language", "value", "sharepoint-online-document-library-connector"),
    ("url-path", "dataset", "https://contoso.sharepoint.com/sites/FinanceTeamSite7/Shared%20Documents/Q3Reports2024"),
    ("url-path", "path", "/home/site/wwwroot/FunctionApp/ProcessOrders/function.json"),
    ("encoded-content", "$content", "eyJwYXNzd29yZCI6Imh1bnRlcjIyISJ9eyJwYXNzd29yZCI6Imh1bnRlcjIyISJ9"),
]


@pytest.mark.parametrize("filt,key,value", DECOYS, ids=[f"{d[0]}-{i}" for i, d in enumerate(DECOYS)])
def test_decoy_dropped_with_named_filter(filt, key, value):
    if value is None:
        value = "/subscriptions/f42cebc2-1111-2222-3333-444455556666/resourceGroups/rg/providers/Microsoft.Web/sites/Q8r2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0"
    out = run(key, value)
    assert out, "no candidate at all"
    assert all(f is not None for _, f, _ in out), f"reported: {out}"
    assert filt in {f for _, f, _ in out}, out


@pytest.mark.parametrize("n", range(20))
def test_random_secrets_kept(n):
    rnd = random.Random(n)  # seeded: deterministic, still random-looking
    raw = bytes(rnd.getrandbits(8) for _ in range(32))
    b64 = base64.urlsafe_b64encode(raw).decode()[:40]   # 40 chars base64url
    hx = raw[:24].hex()                                 # 48 hex chars
    std = base64.b64encode(raw).decode()                # 44 chars base64
    for v in (b64, hx, std):
        out = run("value", v)
        assert any(f is None for _, f, _ in out), (len(v), out)


def test_secret_key_raises_confidence():
    out = run("storageKey", "u7Kp2Qz9Wm4Xr1Tn8Yb3Lc6Vd0Hs5Ja7Fe2Go9Ik4=")
    assert out[0][1] is None and out[0][2] == "medium"


def test_hex_digest_length_under_secret_key_kept():
    out = run("apiSecret", "2d8d4d3c94604eeeadc68464ea5fb361")
    assert out[0][1] is None


def test_engine_records_drops(engine):
    res = engine.scan({"runs": ["08586653536760200319026785874CU62"], "id": "d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"})
    assert not res.hits
    assert {(d.rule_id, d.filter, d.json_path) for d in res.dropped} >= {
        ("high-entropy", "tracking-id", "$.runs[0]"), ("high-entropy", "guid", "$.id")}
