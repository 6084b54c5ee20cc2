import base64
import json

from detectors.payload import Limits, Walker, key_path, walk


def paths(body, **kw):
    leaves, skipped = walk(body, **kw)
    return {lf.json_path: lf for lf in leaves}, skipped


def test_paths_and_keys():
    p, _ = paths({"headers": {"Authorization": "x", "x-api-key": "k"}, "body": {"items": [1, "a", {"client_secret": "s"}]}})
    assert set(p) == {"$.headers.Authorization", "$.headers['x-api-key']", "$.body.items[1]", "$.body.items[2].client_secret"}
    assert p["$.headers['x-api-key']"].key == "x-api-key"
    assert p["$.body.items[2].client_secret"].side == "action_outputs"


def test_numbers_are_not_leaves_but_digit_strings_are():
    p, _ = paths({"n": 12345678901234567890, "s": "12345678901234567890", "b": True, "z": None})
    assert set(p) == {"$.s"}


def test_bracket_escaping():
    assert key_path("$", "it's") == "$['it\\'s']"
    assert key_path("$", "$content") == "$.$content"


def test_stringified_json():
    p, _ = paths({"body": json.dumps({"client_secret": "abcdefgh"})})
    lf = p["$.body<json>.client_secret"]
    assert lf.decoding == "json" and lf.origin == "$.body" and lf.value == "abcdefgh"


def test_query_string():
    p, _ = paths({"uri": "https://api.contoso.com/x?api_key=abc123xyz&x%20y=1"})
    assert p["$.uri?api_key"].value == "abc123xyz" and p["$.uri?api_key"].decoding == "query"
    assert "$.uri?['x y']" in p
    assert "$.uri" in p  # the whole URL is a leaf too


def test_form_body():
    p, _ = paths({"body": "grant_type=client_credentials&client_secret=Pq7-Xz2.Lm9"})
    assert p["$.body<form>.client_secret"].value == "Pq7-Xz2.Lm9"
    assert p["$.body<form>.client_secret"].decoding == "form"


def test_base64_padding_is_not_a_form():
    p, _ = paths({"v": "dGVzdGluZw=="})
    assert set(p) == {"$.v"}


def test_content_base64_then_json_and_binary():
    inner = base64.b64encode(json.dumps({"password": "hunter22!"}).encode()).decode()
    p, _ = paths({"body": {"$content-type": "application/json", "$content": inner}})
    assert p["$.body.$content<base64>"].decoding == "base64"
    assert p["$.body.$content<base64><json>.password"].value == "hunter22!"
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    _, skipped = paths({"$content": png})
    assert any(s.reason == "binary" for s in skipped)


def test_content_base64_xml():
    xml = "<root><cred user='svc' password='Sup3rS3cret!'><token>tok-123456</token></cred></root>"
    p, _ = paths({"$content": base64.b64encode(xml.encode()).decode()})
    assert p["$.$content<base64><xml>/root/cred/@password"].value == "Sup3rS3cret!"
    assert p["$.$content<base64><xml>/root/cred/token"].value == "tok-123456"


def test_xml_repeated_siblings():
    p, _ = paths({"b": "<a><b>one111</b><b>two222</b></a>"})
    assert p["$.b<xml>/a/b[1]"].value == "one111" and p["$.b<xml>/a/b[2]"].value == "two222"


def test_basic_and_bearer():
    basic = "Basic " + base64.b64encode(b"svc-user:P@ss:word!").decode()
    p, _ = paths({"headers": {"Authorization": basic}})
    assert p["$.headers.Authorization<basic>.user"].value == "svc-user"
    assert p["$.headers.Authorization<basic>.password"].value == "P@ss:word!"
    assert p["$.headers.Authorization<basic>.password"].decoding == "basic"
    p, _ = paths({"headers": {"Authorization": "Bearer abc.def.ghi123"}})
    assert p["$.headers.Authorization<bearer>"].value == "abc.def.ghi123"


def test_max_depth_and_deep_nesting_no_recursion_error():
    body = cur = {}
    for _ in range(10_000):
        cur["a"] = {}
        cur = cur["a"]
    cur["s"] = "deepvalue"
    _, skipped = walk(body)
    assert any(s.reason == "too deep" for s in skipped)
    lst = []
    for _ in range(10_000):
        lst = [lst]
    _, skipped = walk(lst)
    assert any(s.reason == "too deep" for s in skipped)


def test_deep_json_text_no_recursion_error():
    text = "[" * 100_000 + "]" * 100_000
    leaves, skipped = walk(text)
    assert any(s.reason == "too deep" for s in skipped)


def test_max_leaves():
    leaves, skipped = walk({"a": ["x"] * 100}, limits=Limits(max_leaves=10))
    assert len(leaves) == 10 and any(s.reason == "too many leaves" for s in skipped)


def test_max_decode_depth():
    v = "secretvalue"
    for _ in range(8):
        v = json.dumps({"k": v})
    leaves, _ = walk({"x": v}, limits=Limits(max_decode_depth=3))
    assert max(lf.json_path.count("<json>") for lf in leaves) == 3


def test_not_decoded_when_too_long():
    big = json.dumps({"k": "v" * 200})
    leaves, skipped = walk({"x": big}, limits=Limits(max_decode_chars=100))
    assert [lf.json_path for lf in leaves] == ["$.x"]
    assert any(s.reason == "leaf too long" for s in skipped)


def test_bytes_and_invalid_utf8():
    leaves, skipped = walk(b'{"a": "hello world"}')
    assert [lf.json_path for lf in leaves] == ["$.a"]
    leaves, skipped = walk(b"text \xff\xfe with bad bytes")
    assert leaves and any(s.reason == "invalid utf-8" for s in skipped)
    leaves, skipped = walk(bytes(range(256)) * 10)
    assert any(s.reason in ("binary", "invalid utf-8") for s in skipped)


def test_time_budget_in_walker():
    import time
    w = Walker(limits=Limits(), deadline=time.monotonic() - 1)
    leaves = list(w.walk({"a": ["x" * 10] * 1000}))
    assert any(s.reason == "budget exceeded" for s in w.skipped)
    assert len(leaves) < 1000
