"""Pathological payloads through Engine.scan and the walker (issue 6.2).

No wall-clock assertions: each case asserts that the scan completes and records the right Skip
reason (or finds the planted secret), with inputs sized to run in about a second. The full-size
variants (100 MB string, 1,000,000 keys) are marked `fuzz` + `full_size` and run under `make fuzz`.
The one place a clock appears is a subprocess with a very generous kill timeout around inputs that,
unguarded, take minutes to hours (detect-secrets' cubic regexes): it asserts "finished", not speed.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from detectors import engine as engine_mod
from detectors.engine import Engine, Limits
from detectors.known_values import KnownValues
from detectors.payload import Walker, walk

ROOT = Path(__file__).resolve().parents[2]
KEY = b"hardening-key-0123456789abcdef01"
GH = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"
KNOWN = "Kv$ecretValue-2026-hardening"


@pytest.fixture(scope="module")
def eng():
    known = KnownValues(KEY)
    known.add_value(KNOWN, "vault/planted")
    e = Engine(known=known)
    with e.session():
        yield e


def reasons(res) -> set[str]:
    return {s.reason for s in res.skipped}


def no_errors(res) -> None:
    assert "detector error" not in reasons(res), res.skipped


def rules(res) -> set[str]:
    return {h.rule_id for h in res.hits}


# -- depth ---------------------------------------------------------------------------------------

def _deep_dict(n: int, leaf: object) -> dict:
    root = cur = {}
    for _ in range(n - 1):
        cur["a"] = {}
        cur = cur["a"]
    cur["a"] = leaf
    return root


def test_json_nested_10000_deep_parsed_is_cut_with_too_deep(eng):
    body = {"shallow": GH, "deep": _deep_dict(10_000, "never reached")}
    res = eng.scan(body)
    no_errors(res)
    deep = [s for s in res.skipped if s.reason == "too deep"]
    assert deep and deep[0].json_path.startswith("$.deep.a.a.")
    assert GH in {h.secret for h in res.hits}          # the rest of the body is still scanned


def test_json_nested_10000_deep_as_bytes_and_lists(eng):
    for raw in (b'{"a":' * 10_000 + b'"x"' + b"}" * 10_000, b"[" * 10_000 + b"]" * 10_000,
                ("[" * 10_000 + json.dumps(GH) + "]" * 10_000).encode()):
        res = eng.scan(raw)
        no_errors(res)
        assert "too deep" in reasons(res)
    assert GH in {h.secret for h in res.hits}           # scanned as text when the parser gives up


def test_walker_alone_on_deep_nesting_never_raises():
    lst: list = []
    for _ in range(20_000):
        lst = [lst, "x" * 8]
    w = Walker(limits=Limits(max_depth=64))
    leaves = list(w.walk(lst))
    assert len(leaves) == 64 and any(s.reason == "too deep" for s in w.skipped)


# -- size ----------------------------------------------------------------------------------------

def test_8mb_string_not_decoded_but_scanned_in_windows(eng):
    big = "A" * (8 * 1024 * 1024 - 100) + " " + GH + " "
    res = eng.scan({"log": big})
    no_errors(res)
    assert any(s.reason == "leaf too long" and s.json_path == "$.log" for s in res.skipped)
    assert GH in {h.secret for h in res.hits}


def test_over_budget_leaf_is_recorded_with_its_location():
    e = Engine(limits=Limits(max_work_chars=4 * 1024 * 1024))
    res = e.scan({"ok": "small", "body": {"log": "A" * (8 * 1024 * 1024)}})
    no_errors(res)
    assert [s.json_path for s in res.skipped if s.reason == "budget exceeded"] == ["$.body.log"]


def test_time_budget_stops_inside_one_long_leaf(monkeypatch):
    """A leaf scanned in many windows checks the time budget between windows (fake clock: each
    call advances one second; a 5 s budget is spent after a few windows of the leaf)."""
    clock = {"t": 1000.0}

    def tick():
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(engine_mod.time, "monotonic", tick)
    e = Engine(limits=Limits(max_leaf_chars=1000, window_overlap=100, time_budget_s=5.0))
    res = e.scan({"first": "x" * 10, "huge": "word " * 20_000})
    skips = [s for s in res.skipped if s.reason == "budget exceeded"]
    assert skips and skips[0].json_path == "$.huge" and "window" in skips[0].detail


def test_window_config_edge_cases_cover_the_whole_leaf():
    """max_leaf_chars <= window_overlap must neither crash (step 0) nor leave the end unscanned."""
    for lim in (Limits(max_leaf_chars=64, window_overlap=64), Limits(max_leaf_chars=64, window_overlap=200),
                Limits(max_leaf_chars=300, window_overlap=10)):
        e = Engine(limits=lim)
        res = e.scan({"log": "." * 500 + " " + GH})
        no_errors(res)
        assert GH in {h.secret for h in res.hits}, lim


@pytest.mark.fuzz
@pytest.mark.full_size
def test_fuzz_full_size_100mb_string_records_budget_exceeded():
    e = Engine()

    def chunks():  # generated lazily, joined once: the body arrives as bytes, like a download
        for _ in range(100):
            yield b"A" * (1024 * 1024)
    body = b"".join(chunks())
    res = e.scan(body)
    no_errors(res)
    assert "budget exceeded" in reasons(res) and "leaf too long" in reasons(res)
    res = e.scan({"log": body.decode()})
    assert [s.json_path for s in res.skipped if s.reason == "budget exceeded"] == ["$.log"]


def test_many_small_keys_hit_the_leaf_cap(eng):
    e = Engine(limits=Limits(max_leaves=10_000))
    body = {f"k{i}": "v" for i in range(30_000)}
    body["k29999"] = GH
    res = e.scan(body)
    no_errors(res)
    assert [s.json_path for s in res.skipped if s.reason == "too many leaves"] == ["$.k10000"]
    res = e.scan(json.dumps(body).encode())
    assert "too many leaves" in reasons(res)


@pytest.mark.fuzz
@pytest.mark.full_size
def test_fuzz_full_size_1m_keys(eng):
    body = {f"k{i}": "v" for i in range(1_000_000)}
    res = eng.scan(body)
    no_errors(res)
    assert "too many leaves" in reasons(res)


# -- encodings -------------------------------------------------------------------------------------

def test_invalid_utf8_is_recorded_and_the_rest_scanned(eng):
    res = eng.scan(b'{"note": "caf\xe9 \xff\xfe", "t": "' + GH.encode() + b'"}')
    no_errors(res)
    assert "invalid utf-8" in reasons(res) and GH in {h.secret for h in res.hits}


def test_binary_body_is_recorded_not_scanned(eng):
    for body in (bytes(range(256)) * 400, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50):
        res = eng.scan(body)
        no_errors(res)
        assert reasons(res) == {"binary"} and not res.hits


def test_content_that_is_not_base64_or_is_binary(eng):
    cases = [{"$content": "@@@ not base64 !!! " * 10, "$content-type": "application/octet-stream"},
             {"$content": "QUJD" + "=" * 50},
             {"$content": base64.b64encode(bytes(range(256)) * 40).decode()},
             {"$content": base64.b64encode(b"\xff\xfe" + "caf\u00e9".encode("utf-16-le") * 100).decode()},
             {"$content": "A" * 10_001}]
    for body in cases:
        res = eng.scan(body)
        no_errors(res)
    assert "binary" in reasons(eng.scan(cases[2]))
    text = base64.b64encode(json.dumps({"password": "x", "t": GH}).encode()).decode()
    res = eng.scan({"body": {"$content-type": "application/json", "$content": text}})
    assert [h.json_path for h in res.hits if h.secret == GH] == ["$.body.$content<base64><json>.t"]


def test_stringified_json_nested_in_itself(eng):
    """50 layers of stringified JSON are not constructible (escaping doubles every layer: 2^50
    backslashes), so: 18 JSON layers (~1 MB), and 50 layers of URL-in-query (linear growth)."""
    s = json.dumps({"t": GH, "k": KNOWN})
    for _ in range(18):
        s = json.dumps({"a": s})
    assert len(s) > 500_000
    res = eng.scan({"body": s})
    no_errors(res)
    assert GH in {h.secret for h in res.hits}
    assert any(h.detector == "known_value" for h in res.hits)
    u = "https://x.example/cb?sig=" + GH
    for i in range(50):
        u = f"https://h{i}.example/p?next={quote(u, safe='')}"
    res = eng.scan({"uri": u})
    no_errors(res)
    assert res.hits  # the raw text still holds the token below the decode-depth limit


# -- inputs known to make detect-secrets' regexes slow ----------------------------------------------

HOSTILE = [
    " " * 1000,
    " " * 10_000 + "=" + " " * 10_000 + "(",                 # ds #868 / #977 (is_indirect_reference)
    "password" + " " * 10_000 + "=",
    "=" * 100_000,
    '"' * 50_000 + "'" * 50_000,
    "secret" + "= " * 20_000 + '"',
    "ibm cloud iam key" + " " * 10_000 + "!",                # build_assignment_regex: cubic on spaces
    "iam token" + " " * 10_000 + "x",
    "cos secret_key" + " " * 10_000 + "x",
    "cloudant clkey" + " " * 10_000 + "x",
    "softlayer slkey" + " " * 10_000 + "x",
    "ibm " + "key " * 25_000,
    '<img src="data:image/png;base64,' + "9" * 40_000 + '\n"\n>',  # ds #418
    "a" * 100_000 + "!",
]
HOSTILE_DICTS = [{"password": " " * 10_000 + "=" + " " * 10_000 + "("}, {"api_key": '"' * 50_000},
                 {"ibm_api_key": " " * 10_000 + "x"}, {"note": "iam key" + "\t " * 5_000 + "x"}]


def test_slow_regex_inputs_finish_in_a_subprocess():
    """Run the whole hostile set in a child with a kill timeout two orders of magnitude above the
    normal cost (~1 s): unguarded, `ibm ... key` + 10,000 spaces alone takes hours."""
    code = (
        "import json, sys\n"
        "from detectors.engine import Engine\n"
        "from tests.hardening.test_pathological_payloads import HOSTILE, HOSTILE_DICTS\n"
        "e = Engine()\n"
        "with e.session():\n"
        "    for body in HOSTILE + HOSTILE_DICTS:\n"
        "        r = e.scan(body)\n"
        "        assert not [s for s in r.skipped if s.reason == 'detector error'], r.skipped\n"
        "print('done', len(HOSTILE) + len(HOSTILE_DICTS))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == f"done {len(HOSTILE) + len(HOSTILE_DICTS)}"


def test_space_cubic_plugins_never_see_a_run_of_spaces(monkeypatch):
    """White-box guard for the fix: the four build_assignment_regex plugins get space runs collapsed."""
    e = Engine()
    seen: list[tuple[str, str]] = []
    real_run = e._ds.run

    def spy(name, line, filename="payload"):
        seen.append((name, line))
        return real_run(name, line, filename)

    monkeypatch.setattr(e._ds, "run", spy)
    with e.session():
        for body in ("ibm iam key" + " " * 300 + "x", "cloudant clkey" + " " * 300 + "x",
                     "softlayer slkey" + " " * 300 + "x", "cos secret_key" + " " * 300 + "x"):
            e.scan(body)
    cubic = [line for name, line in seen if name in engine_mod._SPACE_CUBIC_PLUGINS]
    assert {n for n, _ in seen} >= engine_mod._SPACE_CUBIC_PLUGINS
    assert cubic and all("  " not in line for line in cubic)


def test_space_collapse_keeps_detection(eng):
    key44 = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7dEf0hIj3k"
    for body in ({"note": "ibm_api_key" + " " * 40 + "=  " + key44},
                 "ibm_cloud_iam_key:" + " " * 3000 + key44 + " (cos)"):
        res = eng.scan(body)
        assert ("ibm-cloud-iam-key", key44) in {(h.rule_id, h.secret) for h in res.hits}


# -- decoders on malformed input -----------------------------------------------------------------------

def test_basic_header_that_is_not_base64(eng):
    for value in ("Basic !!!notbase64###", "Basic " + base64.b64encode(bytes(range(256))).decode(),
                  "Basic " + base64.b64encode(b"no-colon-here").decode(), "Basic ====", "Basic " + "A" * 100_001,
                  "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode()):
        res = eng.scan({"headers": {"Authorization": value}})
        no_errors(res)
    res = eng.scan({"headers": {"Authorization": "Basic " + base64.b64encode(b"svc:Qw3rty8Zx1-Lp0Mn").decode()}})
    assert any(h.json_path.endswith("<basic>.password") for h in res.hits)


def test_query_string_of_100000_parameters(eng):
    q = "&".join(f"p{i}=v{i}" for i in range(100_000))
    res = eng.scan({"uri": f"https://x.example.com/api?{q}&api_key={GH}"})
    no_errors(res)
    assert [h.json_path for h in res.hits if h.secret == GH] == ["$.uri?api_key"]


def test_walk_helper_on_odd_types():
    for body in (None, 3, 2.5, True, b"", "", memoryview(b"abc"), bytearray(b'{"a": "bcdefgh"}'), object()):
        leaves, skipped = walk(body)
        assert isinstance(leaves, list)


# -- content link: a size claim that lies ----------------------------------------------------------

def test_content_size_that_lies_is_capped_while_streaming():
    """The link says contentSize 10 and the server streams without end (chunked, no length): the
    client stops at the cap with 'too large' instead of reading for ever."""
    from scanner.net.errors import ContentTooLarge
    from tests.hardening.helpers import RawServer, client, run

    def endless(head, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        for _ in range(10_000):   # 160 MB at most; the client hangs up long before
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def liar(head, conn):       # no length at all: the body runs on until the server closes
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + b"y" * 300_000)

    with RawServer(endless) as s1, RawServer(liar) as s2:
        link = {"uri": s1.content_url + "/contents/ActionOutputs?sig=S", "contentSize": 10,
                "contentHash": {"algorithm": "md5", "value": "AAAAAAAAAAAAAAAAAAAAAA=="}}

        async def go():
            async with client(max_content_bytes=100_000) as c:
                with pytest.raises(ContentTooLarge) as e1:
                    await c.fetch_content(link["uri"])
                with pytest.raises(ContentTooLarge) as e2:
                    await c.fetch_content(s2.content_url + "/contents/ActionInputs?sig=S")
                return e1.value, e2.value, c.stats
        e1, e2, stats = run(go())
    assert e1.reason == e2.reason == "too large"
    assert "sig=" not in str(e1)
    assert len(s1.requests) == 1   # 'too large' is not retried
