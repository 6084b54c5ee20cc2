"""Hypothesis fuzzers (issue 6.3): walker, decoders, known values, preview, API response parsers.

Every test name contains "fuzz" (`make fuzz` runs `pytest tests -k fuzz` with
FLOWLEAKS_FUZZ_EXAMPLES=5000); the default is 50 examples each so `make test` stays fast.
"""
from __future__ import annotations

import base64
import json
import string
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from detectors.base import PREVIEW_CHARS, PREVIEW_MIN_LENGTH, preview
from detectors.engine import Engine
from detectors.known_values import KnownValues
from detectors.payload import Walker, body_from_input
from scanner.pipeline.detection import decode_body
from scanner.api.flow_api import FlowApi, content_links, is_secured, link_key, parse_api_time
from scanner.net.errors import FlowleaksHttpError
from tests.hardening.helpers import AUD, Scripted, client, fuzz_examples, run

N = fuzz_examples()
FUZZ = settings(max_examples=N, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
KEY = b"fuzz-key-0123456789abcdef0123456"
pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module")
def engine():
    e = Engine()
    with e.session():
        yield e


# -- strategies ----------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_like = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                         max_leaves=25)
b64 = st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
encoded_strings = st.one_of(
    st.text(max_size=80),
    st.builds(lambda s: "Basic " + s, st.text(max_size=40) | b64),
    st.builds(lambda s: "Bearer " + s, st.text(min_size=0, max_size=40)),
    st.builds(lambda q: "https://h.example/p?" + q, st.text(max_size=60)),
    st.builds(lambda d: "https://h.example/p?" + urlencode(d), st.dictionaries(st.text(max_size=6), st.text(max_size=12), max_size=4)),
    st.builds(lambda d: urlencode(d), st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=6), st.text(max_size=12), max_size=4)),
    st.builds(lambda t, a, v: f"<{t} {a}=\"{v}\">{v}</{t}>", st.text(string.ascii_letters, min_size=1, max_size=5),
              st.text(string.ascii_letters, min_size=1, max_size=5), st.text(max_size=20)),
    st.builds(lambda x: "<" + x + ">", st.text(max_size=40)),
    json_like.map(json.dumps),
    st.builds(lambda s: s[: len(s) // 2], json_like.map(json.dumps)),   # truncated JSON
    b64,
)
with_decoders = st.recursive(
    encoded_strings | scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["$content", "contentBytes", "Authorization", "body", "uri", "password", "x"]) | st.text(max_size=6),
        c, max_size=4),
    max_leaves=20)


def _no_internal_errors(res) -> None:
    bad = [s for s in res.skipped if s.reason in ("detector error", "parse error")]
    assert not bad, bad


# -- walker and decoders ---------------------------------------------------------------------------

@FUZZ
@given(body=with_decoders)
def test_fuzz_walker_and_decoders_never_raise(engine, body):
    w = Walker()
    for leaf in w.walk(body_from_input(body, [])):
        assert isinstance(leaf.value, str) and leaf.json_path.startswith("$")
    assert not [s for s in w.skipped if s.reason == "parse error"], w.skipped  # a decoder raised
    _no_internal_errors(engine.scan(body))
    _no_internal_errors(engine.scan(json.dumps(body, default=str).encode()))


@FUZZ
@given(raw=st.binary(max_size=300) | json_like.map(lambda v: json.dumps(v).encode()) |
       st.builds(lambda a, b: a + b, json_like.map(lambda v: json.dumps(v).encode()), st.binary(max_size=20)))
def test_fuzz_decode_body_then_scan(engine, raw):
    body = decode_body(raw)
    assert isinstance(body, (dict, list, str, bytes, int, float, bool, type(None)))
    _no_internal_errors(engine.scan(body))


# -- known values: a planted value is found wherever and however it is embedded ------------------

PRINTABLE = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")
ENCODINGS = {
    "raw": lambda v: v,
    "url": lambda v: quote(v, safe=""),
    "url_plus": lambda v: quote_plus(v, safe=""),
    "json": lambda v: json.dumps(v)[1:-1],
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
}


@st.composite
def planted(draw):
    value = draw(st.text(PRINTABLE, min_size=8, max_size=48))
    assume(len(value.strip()) >= 8)
    enc = draw(st.sampled_from(sorted(ENCODINGS)))
    encoded = ENCODINGS[enc](value)
    if enc == "base64" and draw(st.booleans()):      # base64 of prefix + value: any alignment
        pre = draw(st.binary(max_size=5))
        encoded = base64.b64encode(pre + value.encode()).decode()
    prefix = draw(st.text(PRINTABLE, max_size=20))
    suffix = draw(st.text(PRINTABLE, max_size=20))
    structure = draw(json_like)
    # a random path into the structure where the string goes
    choices = draw(st.lists(st.integers(0, 10), max_size=6))
    return value, enc, prefix + encoded + suffix, structure, choices


def _embed(structure, choices, text):
    """Put `text` somewhere in structure (as a value, in a list, or as a new member)."""
    if not isinstance(structure, (dict, list)):
        return {"wrap": [structure, text]} if choices else text
    node = structure
    for c in choices:
        kids = list(node.values()) if isinstance(node, dict) else node
        containers = [k for k in kids if isinstance(k, (dict, list))]
        if not containers:
            break
        node = containers[c % len(containers)]
    if isinstance(node, dict):
        node[f"k{len(node)}"] = text
    else:
        node.insert((choices[-1] if choices else 0) % (len(node) + 1), text)
    return structure


@FUZZ
@given(p=planted())
def test_fuzz_planted_known_value_is_found(p):
    value, enc, text, structure, choices = p
    known = KnownValues(KEY)
    assert known.add_value(value, "vault/planted")
    eng = Engine(known=known)
    body = _embed(structure, choices, text)
    for form in (body, decode_body(json.dumps(body).encode())):  # parsed, and as the crawl reads bytes
        res = eng.scan(form)
        found = [h for h in res.hits if h.detector == "known_value" and h.known_secret == "vault/planted"]
        assert found, (enc, res.skipped)
    # and the matcher alone, on the embedding text
    assert any(src == "vault/planted" for _, _, src in known.match_texts([text]))


@FUZZ
@given(value=st.text(min_size=1, max_size=40), noise=st.lists(st.text(max_size=40), max_size=5))
def test_fuzz_known_value_matcher_never_raises(value, noise):
    known = KnownValues(KEY)
    known.add_value(value, "s")
    known.add_hashes_from_lines(noise + ["0" * 64, "zz"])
    known.match_texts(noise + [value])
    known.match_whole(value)


# -- preview ----------------------------------------------------------------------------------------

@FUZZ
@given(secret=st.text(max_size=200))
def test_fuzz_preview_shows_at_most_four_leading_characters(secret):
    p = preview(secret)
    head, sep, tail = p.rpartition("…")
    assert sep == "…" and tail == f"({len(secret)})"
    if len(secret) < PREVIEW_MIN_LENGTH:
        assert head == ""
    else:
        assert head == secret[:PREVIEW_CHARS] and len(head) <= 4


@FUZZ
@given(secret=st.text(string.ascii_letters + string.digits, min_size=8, max_size=40))
def test_fuzz_hit_previews_through_the_engine(engine, secret):
    res = engine.scan({"headers": {"x-api-key": secret}, "password": secret})
    for h in res.hits:
        p = preview(h.secret)
        assert p.endswith(f"…({len(h.secret)})")
        assert len(p) - len(f"…({len(h.secret)})") <= (4 if len(h.secret) >= 16 else 0)


# -- API response parsers -----------------------------------------------------------------------------

any_json = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                        max_leaves=12)
link_like = st.fixed_dictionaries({}, optional={
    "uri": st.text(max_size=30) | st.none() | st.integers(), "secureData": any_json,
    "contentHash": any_json | st.fixed_dictionaries({"value": any_json}), "contentSize": any_json})


@FUZZ
@given(obj=any_json | st.dictionaries(st.sampled_from(["inputsLink", "outputsLink", "x"]), link_like | any_json))
def test_fuzz_content_links_is_secured_link_key(obj):
    links = content_links(obj)
    assert set(links) == {"inputs", "outputs"}
    for link in links.values():
        assert isinstance(is_secured(link), bool)
        key = link_key(link) if isinstance(link, dict) else link_key(obj)
        assert key is None or isinstance(key, str)


times = st.one_of(
    st.text(max_size=40), st.none(), st.integers(), any_json,
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.builds(lambda d, o: d.isoformat() + o, st.datetimes(), st.sampled_from(["+05:00", "-01:30", "+00:00"])),
    st.builds(lambda d, f: d.strftime("%Y-%m-%dT%H:%M:%S.") + f + "Z", st.datetimes(), st.text("0123456789", min_size=1, max_size=9)),
)


@FUZZ
@given(value=times)
def test_fuzz_parse_api_time(value):
    out = parse_api_time(value)
    assert out is None or isinstance(out, str)
    if out is not None:  # what it returns, DuckDB can store
        import duckdb
        duckdb.sql("SELECT CAST(? AS TIMESTAMP)", params=[out]).fetchall()


# FlowApi.pages against one loopback server that serves whatever the current example says.
_PAGES: dict[str, bytes] = {}


def _serve(method, path, headers):
    body = _PAGES.get(path.split("?")[0])
    if body is None:
        return 404, {"Content-Type": "application/json"}, b'{"error":{"code":"NotFound"}}'
    return 200, {"Content-Type": "application/json"}, body


@pytest.fixture(scope="module")
def page_server():
    with Scripted(_serve) as s:
        yield s


next_links = st.one_of(
    st.none(), st.just(""), st.integers(), any_json, st.text(max_size=30),
    st.sampled_from(["/p1", "/p2", "p2?x=1", "http://127.0.0.1:99999/x", "http://[::1", "https://evil.example/p2",
                     "//evil.example/p2", "javascript:alert(1)", "/p0", "http://localhost/p2", "?$skiptoken=1"]),
)
page_bodies = st.one_of(
    st.fixed_dictionaries({"value": st.lists(any_json, max_size=4) | any_json},
                          optional={"nextLink": next_links, "@odata.nextLink": next_links}),
    any_json,
).map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40)


@FUZZ
@given(pages=st.lists(page_bodies, min_size=1, max_size=4))
def test_fuzz_flow_api_pages_against_a_loopback_server(page_server, pages):
    _PAGES.clear()
    _PAGES.update({f"/p{i}": body for i, body in enumerate(pages)})

    async def go():
        async with client(max_attempts=1) as c:
            api = FlowApi(c, page_server.url, AUD, max_pages=10)
            got = []
            try:
                async for page in api.pages(page_server.url + "/p0?api-version=1", "runs"):
                    assert isinstance(page, list) and all(isinstance(i, dict) for i in page)
                    got.extend(page)
            except FlowleaksHttpError:
                pass
            return got
    run(go())
