"""`flowleaks record` scrubbing: `sig` in every encoding wherever it appears, and found secrets of
any length wherever they appear (inside longer strings, in keys, in encoded layers)."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from urllib.parse import quote

import httpx
import pytest
import yaml

from detectors.engine import Engine
from scanner.replay.cassette import Cassette, FoundSecrets, RecordingTransport, leaf_scrubber
from tests.e2e.conftest import flowleaks
from tests.fakeapi import FakeFlowApi, Tenant

SIG = "lL3mfnEcLt0AVQsHS9hsh3NwbrV7FfqdfiZ4J6akFe4"
SIG_RAW = "ab+cD/ef9XyZ0123456789gh=="  # a sig as base64 with + / = before URL-encoding
SIG_JSON = SIG_RAW.replace("/", "\\/")  # as JSON may write it: `\/`

# Any `sig` parameter or key, in any encoding, not followed by the marker. Written independently of
# scanner/redact.py's patterns, so a gap there cannot hide here.
UNSCRUBBED = re.compile(r"""(?ix)(?<![a-z])sig(?:=|%3d|%253d|\\u003d|\\?["']\s*:\s*\\?["'])(?!SCRUBBED)""")

SIG_BODIES = {
    "query": f'{{"uri": "https://prod-07.westeurope.logic.azure.com/w/x?sv=1.0&sig={SIG}&se=2"}}',
    "first param": f'{{"uri": "https://h.example/p?sig={SIG}"}}',
    "upper case": f'{{"uri": "https://h.example/p?sv=1&SIG={SIG}"}}',
    "url-encoded ?": f'{{"next": "https%3A%2F%2Fh.example%2Fp%3Fsig%3D{SIG}%26se%3D2"}}',
    "url-encoded &": f'{{"next": "https%3A%2F%2Fh.example%2Fp%3Fsv%3D1%26sig%3D{SIG}%26se%3D2"}}',
    "double-encoded": f'{{"next": "x%253Fsv%253D1%2526sig%253D{SIG}%2526se%253D2"}}',
    "json-escaped &": f'{{"uri": "https://h.example/p?sv=1\\u0026sig={SIG}\\u0026se=2"}}',
    "json-escaped slash": f'{{"uri": "https://h.example/p?sv=1&sig={SIG_JSON}&se=2"}}',
    "html &amp;": f"<a href='https://h.example/p?sv=1&amp;sig={SIG}&amp;se=2'>link</a>",
    "nested json": json.dumps({"body": json.dumps({"uri": f"https://h.example/p?sv=1&sig={SIG_RAW}"})}),
    "doubly nested": json.dumps({"a": json.dumps({"b": json.dumps({"uri": f"https://h/p?x=1&sig={SIG}"})})}),
    "json key": f'{{"sas": {{"sv": "1.0", "sig": "{SIG}"}}}}',
}


def sig_forms() -> list[str]:
    return [SIG, SIG_RAW, quote(SIG_RAW, safe=""), SIG_JSON, SIG_RAW.replace("/", "\\\\/"), "ef9XyZ0123456789gh"]


def record(bodies: dict[str, str], uri_query: str = f"sv=1&sig={SIG}", headers: dict | None = None):
    """Serve each body from a mock transport through RecordingTransport; return the recorder."""
    texts = list(bodies.values())

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=texts[int(request.url.path.rsplit("/", 1)[-1])].encode(),
                              headers=headers or {})

    recorder = RecordingTransport(httpx.MockTransport(answer))

    async def go():
        async with httpx.AsyncClient(transport=recorder) as client:
            for n in range(len(texts)):
                await client.get(f"https://h.example/case/{n}?{uri_query}")
    asyncio.run(go())
    return recorder


def saved(cassette: Cassette, tmp_path) -> tuple[str, list[str]]:
    path = tmp_path / "c.yaml"
    cassette.save(path)
    text = path.read_text()
    strings = []
    for i in yaml.safe_load(text)["interactions"]:
        strings += [i["request"]["uri"], i["response"]["body"]["string"]]
        strings += [v for vs in i["response"]["headers"].values() for v in vs]
    return text, strings


def no_sig_left(text: str, strings: list[str]) -> None:
    for s in [text, *strings]:
        assert not UNSCRUBBED.search(s), s[max(0, UNSCRUBBED.search(s).start() - 40):][:120]
        for form in sig_forms():
            assert form not in s, (form, s[:200])


@pytest.mark.parametrize("name", list(SIG_BODIES))
@pytest.mark.parametrize("scrub_secrets", [False, True], ids=["keep-secrets", "scrubbed"])
def test_sig_is_scrubbed_in_every_encoding_in_uris_headers_and_bodies(name, scrub_secrets, tmp_path):
    header = {"Content-Type": f'application/json; link="https://h.example/p?a=1&sig={SIG}"'}
    recorder = record({name: SIG_BODIES[name]}, headers=header)
    engine = Engine(known=FoundSecrets(os.urandom(32)))
    with engine.session():
        cassette = recorder.cassette(leaf_scrubber(engine) if scrub_secrets else None)
    text, strings = saved(cassette, tmp_path)
    no_sig_left(text, strings)
    assert "SCRUBBED" in cassette.interactions[0].uri  # the request URI's own sig


# -- found secrets of any length -----------------------------------------------------------------

SHORT = "Pw9!x"                      # under KnownValues.MIN_LENGTH
LONG = "Kv$ecretValue-2026-abcdef"   # found by the sweep only through the flow definition


def scrubbed_with_found(body: object, *found: str) -> str:
    secrets = FoundSecrets(os.urandom(32))
    for s in found:
        assert secrets.add_value(s, "found")
    engine = Engine(known=secrets)
    with engine.session():
        return leaf_scrubber(engine)(json.dumps(body))


def test_a_short_found_secret_goes_wherever_it_stands_and_the_rest_of_the_string_stays():
    body = {
        "conn": f"Server=db;User=bob;Pwd={SHORT};Encrypt=yes",
        "note": f"bob uses {SHORT} for the share",
        "whole": SHORT,
        "url": f"https://h.example/login?user=bob&pwd={quote(SHORT, safe='')}&x=1",
        "json": json.dumps({"inner": f"pre {SHORT} post"}),
        "basic": "Basic " + base64.b64encode(f"bob:{SHORT}".encode()).decode(),
        SHORT: "a secret used as a key",
        "list": [f"x{SHORT}y", 5, None],
    }
    out = scrubbed_with_found(body, SHORT)
    for form in (SHORT, quote(SHORT, safe=""), json.dumps(SHORT)[1:-1], base64.b64encode(f"bob:{SHORT}".encode()).decode()):
        assert form not in out, form
    scrubbed = json.loads(out)
    assert re.fullmatch(r"Server=db;User=bob;Pwd=SCRUBBED-[\w-]+-…\(5\);Encrypt=yes", scrubbed["conn"])
    assert scrubbed["note"] == "bob uses SCRUBBED-found-…(5) for the share"
    assert scrubbed["list"][1:] == [5, None]
    assert "a secret used as a key" in scrubbed.values()


def test_a_long_found_secret_inside_a_longer_string_goes_and_its_surroundings_stay():
    content = base64.b64encode(f"header {LONG} trailer".encode()).decode()
    body = {"log": f"prefix-{LONG}-suffix", "nested": json.dumps({"v": f"<{LONG}>"}),
            "file": {"$content-type": "application/octet-stream", "$content": content}, LONG: 1}
    out = scrubbed_with_found(body, LONG)
    assert LONG not in out and content not in out and base64.b64encode(LONG.encode()).decode()[:16] not in out
    scrubbed = json.loads(out)
    assert scrubbed["log"].startswith("prefix-SCRUBBED-known-value-") and scrubbed["log"].endswith("-suffix")


def test_a_detected_secret_in_a_non_json_body_is_cut_out_not_the_whole_body():
    token = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    secrets = FoundSecrets(os.urandom(32))
    engine = Engine(known=secrets)
    with engine.session():
        out = leaf_scrubber(engine)(f"<html>token: {token} end</html>")
    assert token not in out
    assert out.startswith("<html>token: SCRUBBED-") and out.endswith(" end</html>")


# -- a cassette recorded from the fake, end to end ------------------------------------------------

def test_cassette_recorded_from_the_fake_holds_no_sig_and_no_secret(tmp_path):
    tenant = Tenant.generate(seed=9, environments=1, flows_per_env=6, runs_per_flow=2)
    out = tmp_path / "repro.yaml"
    with FakeFlowApi(tenant, runs_page_size=1) as api:
        result = flowleaks("record", "--as-admin", "--out", str(out), env=api.env_vars())
        token = api.token
    assert result.code == 0, result.stderr
    text, strings = saved(Cassette.load(out), tmp_path)
    assert text.count("sig=SCRUBBED") > 10  # content links were recorded, their sigs replaced
    no_sig_left(text, strings)
    assert token not in text
    secrets = tenant.secrets(visible_only=True)
    assert secrets
    for s in secrets:
        for form in {s, quote(s, safe=""), json.dumps(s)[1:-1], base64.b64encode(s.encode()).decode()[2:-4]}:
            assert form not in text, s[:4]
