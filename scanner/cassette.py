"""Cassettes: recorded API interactions as VCR.py-style YAML, scrubbed before they touch disk.

`flowleaks record` wraps the sweep's HTTP transport in `RecordingTransport`; `replay.py` serves a
cassette back over loopback HTTP. Scrubbing removes what would make a cassette a leak: every request
header (Authorization included), SAS `sig` values in any URL or body, and — unless the cassette is
built from a fake tenant on purpose — every secret the detectors find in a body.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import yaml

SIG_RE = re.compile(r"(?i)(\bsig=|%26sig%3d)[^&\"'\s\\]+")
SCRUBBED_SIG = "SCRUBBED"
DROPPED_QUERY = {"sig"}


def scrub_sig(text: str) -> str:
    return SIG_RE.sub(lambda m: m.group(1) + SCRUBBED_SIG, text)


def normalise_uri(uri: str) -> str:
    """The key a replay matches on: scheme, host, path and the query minus `sig`, sorted."""
    p = urlsplit(uri)
    q = sorted((k, v) for k, v in parse_qsl(p.query, keep_blank_values=True) if k.lower() not in DROPPED_QUERY)
    netloc = p.netloc.lower()
    default = {"https": ":443", "http": ":80"}.get(p.scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return urlunsplit((p.scheme, netloc, p.path, urlencode(q), ""))


@dataclass
class Interaction:
    method: str
    uri: str
    status: int
    headers: dict[str, str]
    body: str

    def to_vcr(self) -> dict[str, Any]:
        return {
            "request": {"method": self.method, "uri": self.uri, "body": None, "headers": {}},
            "response": {"status": {"code": self.status, "message": httpx.codes.get_reason_phrase(self.status)},
                         "headers": {k: [v] for k, v in self.headers.items()},
                         "body": {"string": self.body}},
        }

    @classmethod
    def from_vcr(cls, d: dict[str, Any]) -> "Interaction":
        req, resp = d["request"], d["response"]
        headers = {k: (v[0] if isinstance(v, list) else v) for k, v in (resp.get("headers") or {}).items()}
        return cls(req["method"], req["uri"], int(resp["status"]["code"]), headers,
                   (resp.get("body") or {}).get("string") or "")


@dataclass
class Cassette:
    interactions: list[Interaction] = field(default_factory=list)

    def save(self, path: str | Path) -> None:
        data = {"interactions": [i.to_vcr() for i in self.interactions], "version": 1}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True, width=120)

    @classmethod
    def load(cls, path: str | Path) -> "Cassette":
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        return cls([Interaction.from_vcr(d) for d in data.get("interactions") or []])


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests through and keeps each (request, final response) in memory until `cassette()`.

    Bodies are scrubbed when the cassette is built, not as they arrive: by then the sweep has told
    the scrubber every secret it found (including those only the flow definition reveals, like a Key
    Vault Get secret's output), so they can be removed wherever they appear, in any encoding.
    A retry overwrites the earlier failure of the same request.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, origin_map: dict[str, str] | None = None):
        self.inner = inner
        self.origin_map = origin_map or {}  # e.g. a fake's loopback origins -> the real hosts' names
        self.by_key: dict[tuple[str, str], Interaction] = {}

    def _map(self, text: str) -> str:
        for old, new in self.origin_map.items():
            text = text.replace(old, new)
        return text

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        uri = str(request.url)
        keep = {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "retry-after")}
        key = (request.method, normalise_uri(uri))
        prior = self.by_key.get(key)
        if prior is None or prior.status != 200:
            self.by_key[key] = Interaction(request.method, self._map(scrub_sig(uri)), response.status_code, keep,
                                           body.decode("utf-8", "replace"))
        return httpx.Response(response.status_code, headers=response.headers, content=body,
                              request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def cassette(self, scrub_body: Callable[[str], str] | None) -> Cassette:
        out = []
        for i in self.by_key.values():
            if i.status != 200:
                continue
            body = scrub_body(i.body) if scrub_body else i.body
            out.append(Interaction(i.method, i.uri, i.status, i.headers, self._map(scrub_sig(body))))
        return Cassette(out)


def leaf_scrubber(engine: Any) -> Callable[[str], str]:
    """Replace every JSON string leaf in which `engine` finds a secret with a marker.

    Whole leaves go, not substrings: a secret inside a Basic header, a `$content` base64 body or a
    query string is only reversible-encoded there, so the encoded leaf has to go with it. Give the
    engine the sweep's found secrets as known values and it finds them in every encoding.
    """
    from detectors.base import preview

    def marker(text: str) -> str | None:
        result = engine.scan(text, side="action_outputs")
        if not result.hits:
            return None
        h = max(result.hits, key=lambda x: len(x.secret))
        return f"SCRUBBED-{h.rule_id}-{preview(h.secret)}"

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return marker(node) or node
        if isinstance(node, list):
            return [walk(x) for x in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    def scrub(text: str) -> str:
        try:
            body = json.loads(text)
        except ValueError:
            return marker(text) or text
        return json.dumps(walk(body), ensure_ascii=False)

    return scrub
