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
    assert [s.reason for s in skipped] == ["binary file"]  # a known format: its strings are scanned
    _, skipped = paths({"$content": base64.b64encode(bytes(range(256))).decode()})
    assert [s.reason for s in skipped] == ["binary"]


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


# -- keys are scanned too, and no json_path carries a secret (issue 9, item 10) -----------------------

GH_KEY = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"  # fake, GitHub-token shaped
AWS_KEY = "AKIAQWERTYUIOPASDFGH"  # fake, AWS-access-key-id shaped, no digit at all


def all_paths(res) -> list[str]:
    return [h.json_path for h in res.hits] + [s.json_path for s in res.skipped] + [d.json_path for d in res.dropped]


def test_secret_shaped_keys_are_leaves_marked_as_keys_and_come_first():
    leaves, _ = walk({"headers": {"Content-Type": "x", GH_KEY: {"inner": "value1"}}, "n": {AWS_KEY: 1}})
    order = [lf.json_path for lf in leaves]
    key_leaf = next(lf for lf in leaves if lf.json_path == f"$.headers.{GH_KEY}<key>")
    assert key_leaf.value == GH_KEY and key_leaf.key is None and key_leaf.decoded == ""
    # the key is scanned before anything under it; a key with no string under it is a leaf too
    assert order.index(f"$.headers.{GH_KEY}<key>") < order.index(f"$.headers.{GH_KEY}.inner")
    assert f"$.n.{AWS_KEY}<key>" in order
    assert not [p for p in order if p.endswith("Content-Type']<key>") or p.endswith("headers<key>")]


def test_only_keys_that_could_hold_a_secret_are_scanned():
    from detectors.payload import scan_key
    names = ["contentType", "@odata.etag", "{Identifier}", "x-ms-correlation-request-id", "$content-type",
             "Ocp-Apim-Subscription-Key", "connectionReferenceName", "Authorization", "k1234"]
    secrets = [GH_KEY, AWS_KEY, "AKIAIOSFODNN7EXAMPLE", "XkQpLmNvBzRtYwUeIoAsDf", "a1b2c3d4e5", "p@ss w0rd!"]
    assert [n for n in names if scan_key(n)] == []
    assert [s for s in secrets if not scan_key(s)] == []


def test_a_key_is_not_decoded():
    leaves, _ = walk({'{"password": "hunter22!"}': 1})
    assert [lf.json_path for lf in leaves] == ["$['{\"password\": \"hunter22!\"}']<key>"]


def test_a_secret_used_as_a_key_is_found_and_shown_redacted(engine):
    res = engine.scan({GH_KEY: 1})
    assert [(h.rule_id, h.json_path) for h in res.hits] == [("github-token", "$['ghp_…(40)']<key>")]
    res = engine.scan({"headers": {AWS_KEY: "x"}})
    assert [(h.rule_id, h.json_path) for h in res.hits] == [("aws-access-key", "$.headers['AKIA…(20)']<key>")]


def test_paths_below_a_secret_key_are_redacted(engine):
    res = engine.scan({"body": {GH_KEY: {"password": "Winter2031!", "deeper": [{"x": "y"}]}}})
    got = {(h.rule_id, h.json_path) for h in res.hits}
    assert got == {("github-token", "$.body['ghp_…(40)']<key>"), ("secret-keyword", "$.body['ghp_…(40)'].password")}
    assert not [p for p in all_paths(res) if GH_KEY in p]


def test_secret_key_inside_a_decoded_layer_and_with_quotes(engine):
    res = engine.scan({"b": json.dumps({"x": {GH_KEY: 1}}), "q": {f"it's {GH_KEY}": 1}})
    paths = sorted(h.json_path for h in res.hits)
    assert paths == ["$.b<json>.x['ghp_…(40)']<key>", "$.q['it\\'s ghp_…(40)']<key>"]


def test_filtered_or_unscanned_keys_do_not_show_in_paths():
    from detectors.engine import Engine
    guid = "3f2c8a1e-9b7d-4c6a-8e5f-1a2b3c4d5e6f"
    res = Engine().scan({"items": {guid: {"Title": "x"}}})
    assert [(d.filter, d.json_path) for d in res.dropped] == [("guid", "$.items['3f2c…(36)']<key>")]
    # the leaf cap stops the walk on the key itself: the key was never scanned, so it is not shown
    res = Engine(limits=Limits(max_leaves=1)).scan({"a": "first value", GH_KEY: 1})
    assert [(s.reason, s.json_path) for s in res.skipped] == [("too many leaves", "$['ghp_…(40)']<key>")]
    _, skipped = walk({"a": "first value", GH_KEY: 1}, limits=Limits(max_leaves=1))
    assert [s.json_path for s in skipped] == ["$['ghp_…(40)']<key>"]


def test_redact_path_keeps_the_notation():
    from detectors.payload import redact_path
    assert redact_path(f"$.body.{GH_KEY}.x", [GH_KEY]) == "$.body['ghp_…(40)'].x"
    assert redact_path(f"$['a {GH_KEY}'].x", [GH_KEY]) == "$['a ghp_…(40)'].x"
    assert redact_path(f"$.uri?{GH_KEY}", [GH_KEY]) == "$.uri?ghp_…(40)"
    assert redact_path("$.a.b", [GH_KEY]) == "$.a.b"
    assert redact_path("$.a['x-y']<key>", [], whole_key=True) == "$.a['…(3)']<key>"
    # a secret that spans segments (dots in an XML name) is still replaced
    assert GH_KEY[:10] + "." + GH_KEY[10:] not in redact_path(f"$.x<xml>/{GH_KEY[:10]}.{GH_KEY[10:]}",
                                                               [GH_KEY[:10] + "." + GH_KEY[10:]])


def test_secret_as_a_header_name_in_a_definition_is_a_redacted_posture_finding():
    from detectors.engine import Engine

    from scanner.posture.analyze import analyze_definition
    d = {"triggers": {"manual": {"type": "Request", "kind": "Button", "inputs": {}}},
         "actions": {"HTTP": {"type": "Http", "inputs": {"uri": "https://x.example", "headers": {GH_KEY: "x"}}}}}
    fs = analyze_definition(d, engine=Engine(), key=b"k")
    assert [(f.rule_id, f.json_path) for f in fs] == [("PA005", "$.actions.HTTP.inputs.headers['ghp_…(40)']<key>")]
    assert GH_KEY not in repr(fs)


def test_a_file_in_content_has_its_printable_strings_scanned_and_other_binary_is_recorded():
    """A PDF a connector returned (Get file content) is a known file: its uncompressed strings are
    scanned and the skip is `binary file` (not blocking); unknown binary stays `binary`."""
    import base64

    from detectors.engine import Engine
    from scanner.skip_reasons import NON_BLOCKING_SKIPS

    token = "ghp_" + "Zq8Xw2Lm4Np6Rt1Vb3Hj5Kd7Fs9Gc0Ya2Ue4"
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Subject (" + token.encode() + b") >>\n" + bytes(range(256))
    result = Engine().scan({"body": {"$content-type": "application/pdf", "$content": base64.b64encode(pdf).decode()}})
    assert [(h.rule_id, h.json_path) for h in result.hits] == [("github-token", "$.body.$content<base64><strings>")]
    assert [s.reason for s in result.skipped] == ["binary file"] and "binary file" in NON_BLOCKING_SKIPS
    noise = Engine().scan({"body": {"$content": base64.b64encode(bytes(range(256)) * 4).decode()}})
    assert [s.reason for s in noise.skipped] == ["binary"] and "binary" not in NON_BLOCKING_SKIPS
