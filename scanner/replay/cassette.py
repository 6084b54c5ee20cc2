"""Cassettes: recorded API interactions as VCR.py-style YAML, scrubbed before they touch disk.

`flowleaks record` wraps the sweep's HTTP transport in `RecordingTransport`; `replay.py` serves a
cassette back over loopback HTTP. Scrubbing removes what would make a cassette a leak: every request
header (Authorization included), SAS `sig` values in every encoding wherever they appear (URIs,
kept headers, bodies, JSON nested in JSON strings), and — unless the cassette is built from a fake
tenant on purpose — every secret the sweep found or the detectors find in a body, of any length.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

import httpx
import yaml

from detectors.known_values import KnownValues

from scanner import redact

SIG_RE = redact.SIG_RE
SCRUBBED_SIG = "SCRUBBED"
DROPPED_QUERY = {"sig"}
MARKER_RE = re.compile(r"SCRUBBED-[\w.-]+-.{0,4}…\(\d+\)")


def scrub_sig(text: str) -> str:
    """Every `sig` value, in every encoding (`sig=`, `%3Fsig%3D`, `%26sig%3D`, `\\u0026sig=`, `&amp;sig=`,
    `"sig": "…"`), becomes SCRUBBED. The replay matches URIs with `sig` left out, so it still plays."""
    return redact.scrub_sig(text, SCRUBBED_SIG)


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


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 time with a zone (`Z` or an offset; up to 7 fraction digits, as the API writes them)
    as an aware datetime; None if it is not one."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?(Z|[+-]\d\d:?\d\d)", text.strip(), re.I)
    if not m:
        return None
    zone = "+00:00" if m.group(3).upper() == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{(m.group(2) or '0')[:6].ljust(6, '0')}{zone}")
    except ValueError:
        return None


def format_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Cassette:
    interactions: list[Interaction] = field(default_factory=list)
    # When it was recorded (the recording scanner's clock): the replay moves every timestamp by
    # `now - recorded_at`, so the recorded runs never age. None: served as recorded.
    recorded_at: str | None = None

    def save(self, path: str | Path) -> None:
        data = {"interactions": [i.to_vcr() for i in self.interactions], "version": 1}
        if self.recorded_at:
            data["recorded_at"] = self.recorded_at
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from scanner.private import open_private  # a cassette of a real tenant is private even when scrubbed

        with open_private(path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True, width=120)

    @classmethod
    def load(cls, path: str | Path) -> "Cassette":
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError("a cassette is a YAML mapping with `interactions`")
        recorded_at = data.get("recorded_at")
        if isinstance(recorded_at, datetime):  # written unquoted, YAML reads a timestamp
            recorded_at = format_time(recorded_at if recorded_at.tzinfo else recorded_at.replace(tzinfo=timezone.utc))
        if recorded_at is not None and parse_time(str(recorded_at)) is None:
            raise ValueError("recorded_at is not an ISO-8601 time with a zone")
        return cls([Interaction.from_vcr(d) for d in data.get("interactions") or []],
                   str(recorded_at) if recorded_at is not None else None)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests through and keeps each (request, final response) in memory until `cassette()`.

    Bodies are scrubbed when the cassette is built, not as they arrive: by then the sweep has told
    the scrubber every secret it found (including those only the flow definition reveals, like a Key
    Vault Get secret's output), so they can be removed wherever they appear, in any encoding.
    A retry overwrites the earlier failure of the same request.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, origin_map: dict[str, str] | None = None):
        self.inner = inner or httpx.AsyncHTTPTransport()  # the client's own kind of transport, wrapped
        self.origin_map = origin_map or {}  # e.g. a fake's loopback origins -> the real hosts' names
        self.by_key: dict[tuple[str, str], Interaction] = {}
        # the replay's anchor: made just before the sweep starts, as its window is
        self.recorded_at = format_time(datetime.now(timezone.utc))

    def _map(self, text: str) -> str:
        for old, new in self.origin_map.items():
            text = text.replace(old, new)
        return text

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        uri = str(request.url)
        keep = {k: scrub_sig(v) for k, v in response.headers.items() if k.lower() in ("content-type", "retry-after")}
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
        return Cassette(pseudonymise_paging(out), self.recorded_at)


_PAGING_PARAMS = ("$skiptoken", "%24skiptoken", "$deltatoken", "%24deltatoken")


def pseudonymise_paging(interactions: list[Interaction]) -> list[Interaction]:
    """Paging tokens (`$skiptoken`, `$deltatoken`) are opaque cursors that may encode names, ids or a
    query's state: each becomes `SCRUBBED-page-<n>`, the same pseudonym in the request URI that used it
    and in the `nextLink` that handed it out, so the cassette still replays page by page."""
    tokens: dict[str, str] = {}
    for i in interactions:
        query = urlsplit(i.uri).query
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name.lower() in _PAGING_PARAMS and value and value not in tokens:
                tokens[value] = f"SCRUBBED-page-{len(tokens) + 1}"
    if not tokens:
        return interactions
    order = sorted(tokens, key=len, reverse=True)  # a token inside a longer one is not half-replaced

    def swap(text: str) -> str:
        for t in order:
            if t in text:
                text = text.replace(t, tokens[t])
        return text

    return [Interaction(i.method, swap(i.uri), i.status, i.headers, swap(i.body)) for i in interactions]


class FoundSecrets(KnownValues):
    """The secrets a `record` sweep found, as keyed hashes only (invariant 4: no plaintext kept).

    KnownValues ignores values shorter than MIN_LENGTH (in a scan they would match everywhere), but
    a cassette must lose a five-character password too. Short values are kept here as keyed hashes
    of their raw, JSON-, URL- and XML-escaped forms and looked for at every position of a string by
    `short_spans`; long ones go to KnownValues, which finds them in every encoding.
    """

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._short: set[bytes] = set()
        self._short_lengths: set[int] = set()

    def add_value(self, value: str | bytes, source: str = "found") -> bool:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if len(value.strip()) >= self.MIN_LENGTH:
            return super().add_value(value, source)
        forms = _short_forms(value)
        for form in forms:
            self._short.add(self._short_mac(form))
            self._short_lengths.add(len(form))
        return bool(forms)

    @property
    def has_short_values(self) -> bool:
        return bool(self._short)

    def _short_mac(self, text: str) -> bytes:
        # blake2b: keyed, and fast enough to run at every position of every string
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._key[:64], digest_size=16).digest()

    def short_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every short found value inside `text`."""
        if not self._short:
            return []
        mac, table = self._short_mac, self._short
        return [(i, i + n) for n in self._short_lengths for i in range(len(text) - n + 1)
                if mac(text[i:i + n]) in table]

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_short": self._short, "_short_lengths": self._short_lengths}


def _short_forms(value: str) -> set[str]:
    forms: set[str] = set()
    for v in {value, value.strip()}:
        if v:
            forms |= {v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1], quote(v, safe=""),
                      xml_escape(v)}
    return forms


def _cut(text: str, spans: Iterable[tuple[int, int]], marker: str) -> str:
    """`text` with every span (overlapping ones merged) replaced by `marker`."""
    out, pos = [], 0
    for start, end in sorted(spans):
        if end <= pos:
            continue
        out.append(text[pos:max(pos, start)])
        out.append(marker)
        pos = end
    return "".join(out) + text[pos:]


def leaf_scrubber(engine: Any) -> Callable[[str], str]:
    """A body scrubber: every secret `engine` finds in a JSON string (value or key) is replaced by a
    marker with its redacted preview, where it stands, so a secret inside a longer string goes and
    the rest of the string stays.

    When a secret is left that no substring search can see — only a reversible encoding of it is in
    the string (a Basic header, a `$content` base64 body, a URL-encoded query) — the whole string
    goes. Give the engine a `FoundSecrets` of everything the sweep found (including what only the flow
    definition reveals, like a Key Vault Get secret's output) and it finds those in every encoding,
    whatever their length.
    """
    from detectors.base import preview
    from detectors.payload import walk as layers

    known = engine.known

    def marker(rule_id: str, secret: str) -> str:
        return f"SCRUBBED-{rule_id}-{preview(secret)}"

    def short_marker(length: int) -> str:  # a short value's preview shows no characters anyway
        return f"SCRUBBED-found-…({length})"

    def hits(text: str, key: str | None) -> list:
        # the key gives the keyword rules the context they had in the sweep
        found = engine.scan({key: text} if key else text, side="action_outputs").hits
        # a piece of our own marker is not a secret (`sig=SCRUBBED-azure-sas-token-…` still looks like
        # a SAS signature to the rule: mixed case, 16+ characters)
        return [h for h in found if h.secret and not MARKER_RE.fullmatch(h.secret) and "SCRUBBED-" not in h.secret]

    def scrub_detected(text: str, key: str | None) -> str:
        for _ in range(3):  # replace where they stand, then look again
            left = sorted(hits(text, key), key=lambda h: -len(h.secret))
            if not left:
                return text
            raw = [h for h in left if h.secret in text]
            if not raw:
                break
            for h in raw:
                text = text.replace(h.secret, marker(h.rule_id, h.secret))
        return marker(left[0].rule_id, left[0].secret)

    def scrub_short(text: str, key: str | None) -> str:
        if not getattr(known, "has_short_values", False):
            return text
        spans = known.short_spans(text)
        text = _cut(text, spans, short_marker(spans[0][1] - spans[0][0])) if spans else text
        # a short value inside an encoded layer (base64, Basic, URL-encoded...) takes its whole string
        decoded = layers({key: text} if key else text)[0]
        inside = next((end - start for lf in decoded if lf.decoding != "raw"
                       for start, end in known.short_spans(lf.value)), None)
        return short_marker(inside) if inside else text

    def scrub_string(text: str, key: str | None = None) -> str:
        return scrub_short(scrub_detected(text, key), key)

    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, str):
            return scrub_string(node, key)
        if isinstance(node, list):
            return [walk(x, key) for x in node]
        if isinstance(node, dict):
            return {scrub_string(k): walk(v, k) for k, v in node.items()}
        return node

    def scrub(text: str) -> str:
        try:
            body = json.loads(text)
        except ValueError:
            return scrub_string(text)
        return json.dumps(walk(body), ensure_ascii=False)

    return scrub
