"""Payload walker: turns one run-history body into string Leaves with JSON paths, decoding nested layers.

json_path notation (the one notation flowleaks uses everywhere; **contract** for `findings.json_path`)
---------------------------------------------------------------------------------------------------
* `$` is the root of the body (trigger/action inputs or outputs, or a flow definition).
* Object members: `.name` when the key is an identifier (`[A-Za-z_$][A-Za-z0-9_$]*`, so
  `$.body.$content`), otherwise bracket notation with single quotes: `$.headers['x-api-key']`
  (a `'` or `\\` inside the key is escaped with `\\`). Array items: `[3]`.
* A decoded layer appends a marker to the path of the string that held the encoded text, then goes on
  inside the decoded layer with the same notation:

  ====================  =====================================================  =====================
  marker                meaning                                                 Leaf.decoding
  ====================  =====================================================  =====================
  `<json>`              a string that holds JSON: `$.body<json>.client_secret`  json
  `?name`               query parameter of a URL: `$.uri?api_key`               query
                        (`?['x y']` when the name is not `[\\w.~-]+`)
  `<form>.name`         form-encoded body `a=1&b=2`: `$.body<form>.client_secret` form
  `<base64>`            `$content` / `contentBytes` base64 decoded to UTF-8      base64
                        text: `$.body.$content<base64>`; further layers follow:
                        `$.body.$content<base64><json>.password`
  `<basic>.user`        `Authorization: Basic` credentials, decoded             basic
  `<basic>.password`
  `<bearer>`            the token of `Authorization: Bearer <token>`             bearer
  `<xml>/a/b`           text of XML element b in a, `<xml>/a/@attr` an attribute xml
                        (repeated siblings: `/a/b[2]`, 1-based as in XPath)
  `<key>`               the member's *name* (a key is scanned like a string:    the layer's
                        a token used as a key): `$.headers['x-ghp…']<key>`      (raw, json…)
  ====================  =====================================================  =====================

  Every decoded string is itself a Leaf, and is decoded further while the decode depth allows.
  The original (encoded) string is a Leaf too, so rules that need the whole text (a trigger URL)
  still see it; the engine dedupes one secret seen in several layers of one string (`Leaf.origin`).

* Numbers, booleans and nulls are not leaves; digit strings given as JSON strings are.
* Keys are leaves too (`<key>`) when they could hold a secret (see `scan_key`); they are not decoded.
* A json_path never carries a secret: `redact_paths` (called by the engine on every result) rewrites
  each hit's secret found in a path with `preview()`, so a secret used as a key shows as
  `$.body['ghp_…(40)']<key>`, and so does every path below it (`$['ghp_…(40)'].password`); a filtered
  candidate or an unscanned key at a `<key>` path shows the whole key as a preview.

Bounds (see `Limits`): container depth (`too deep`), leaves per payload (`too many leaves`), nested
decode depth (deeper layers are simply not decoded), the size of a string we try to decode
(`leaf too long`, detail `not decoded`), and the engine's per-payload work budget. The walker is
iterative: a body nested 10,000 deep records one `too deep` Skip per cut branch and never raises.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

from .base import Drop, Hit, Leaf, Skip, preview


@dataclass(frozen=True)
class Limits:
    max_depth: int = 64                # JSON/XML container nesting per layer
    max_leaves: int = 200_000          # leaves yielded per payload
    max_decode_depth: int = 4          # nested decoded layers (json in base64 in json ...)
    max_decode_chars: int = 8_000_000  # strings longer than this are scanned but not decoded
    max_leaf_chars: int = 1_000_000    # longer leaves are scanned in overlapping windows
    window_overlap: int = 8_192        # overlap between windows (longest secret we never split)
    max_work_chars: int = 64_000_000   # characters scanned per payload (all layers together)
    time_budget_s: float = 30.0        # wall time per payload
    max_skips: int = 100               # Skip records per payload (the rest are counted in detail)
    max_drops: int = 2_000             # Drop records per payload


_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_QNAME = re.compile(r"[\w.~-]+\Z")
_URL_WITH_QUERY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s?#]*\?[^\s#]*(?:#\S*)?\Z")
_FORM = re.compile(r"[A-Za-z_][\w.\-\[\]%]*=(?!=)[^&=\s]*(?:&[A-Za-z_][\w.\-\[\]%]*=[^&\s]*)*\Z")
_BASIC = re.compile(r"\s*basic\s+([A-Za-z0-9+/=_-]{4,})\s*\Z", re.I)
_BEARER = re.compile(r"\s*bearer\s+(\S{8,})\s*\Z", re.I)
_B64_BODY = re.compile(r"[A-Za-z0-9+/\s]*={0,2}\s*\Z")
BASE64_KEYS = frozenset({"$content", "contentbytes", "$contentbytes", "contentbase64"})


def _esc(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


def key_path(path: str, key: str) -> str:
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}['{_esc(key)}']"


# A key is scanned when it could hold a secret. Names made of words and separators (`contentType`,
# `@odata.etag`, `x-ms-correlation-request-id`, `{Identifier}`) are skipped, so a common body does not
# double its leaves; a key with a digit or another character (`ghp_…`, `AKIA…7`) is scanned, and so is
# a name-like one with a long upper-case run (an AWS key id without digits) or one long run of letters
# whose case flips like random text rather than camelCase. Under 8 characters nothing is looked at.
_NAME_LIKE = re.compile(r"[@$#{(]*[A-Za-z]+(?:[-_ .:/@$#][A-Za-z]+)*[})]*\Z")
_UPPER_RUN = re.compile(r"[A-Z]{8}")
_CASE_FLIP = re.compile(r"[a-z][A-Z]")
KEY_MIN_CHARS = 8
KEY_RANDOM_LETTERS = 20  # shortest letters-only run the entropy stage would look at


# The same field names recur in every body: each plain name is judged once. Only names are kept (a
# key that could be a secret is judged again each time, so no secret outlives its payload here).
_PLAIN_KEYS: set[str] = set()
_PLAIN_KEYS_MAX = 20_000


def scan_key(key: str) -> bool:
    if key in _PLAIN_KEYS:
        return False
    if _could_be_secret(key):
        return True
    if len(_PLAIN_KEYS) >= _PLAIN_KEYS_MAX:
        _PLAIN_KEYS.clear()
    _PLAIN_KEYS.add(key)
    return False


def _could_be_secret(key: str) -> bool:
    if len(key) < KEY_MIN_CHARS:
        return False
    if not _NAME_LIKE.match(key) or _UPPER_RUN.search(key):
        return True
    return len(key) >= KEY_RANDOM_LETTERS and key.isalpha() and \
        len(_CASE_FLIP.findall(key)) * 5 >= len(key)


def query_path(path: str, name: str) -> str:
    """A query parameter's path: `$.uri?name`, or `$.uri?['x y']` when the name is not `[\\w.~-]+`."""
    if _QNAME.match(name):
        return f"{path}?{name}"
    esc = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}?['{esc}']"


# Files connectors return as `$content` (SharePoint/OneDrive Get file content, blob, mail attachments),
# by their magic bytes (the formats' specifications: PDF 1.7 §7.5.2, PNG §5.2, JFIF, GIF89a, ZIP
# APPNOTE 4.3.7 — also DOCX/XLSX/PPTX —, OLE2 compound files for legacy Office).
_FILE_MAGIC = ((b"%PDF-", "PDF"), (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"\xff\xd8\xff", "JPEG image"),
               (b"GIF87a", "GIF image"), (b"GIF89a", "GIF image"), (b"PK\x03\x04", "ZIP/Office file"),
               (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE2/legacy Office file"))
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{8,}")
MAX_STRINGS_BYTES = 8 * 1024 * 1024


def file_kind(raw: bytes) -> str | None:
    """What known file format `raw` is, by its magic bytes; None for other binary data."""
    return next((kind for magic, kind in _FILE_MAGIC if raw.startswith(magic)), None)


def _printable_ratio(text: str) -> float:
    if not text:
        return 0.0
    sample = text[:4096]
    bad = sum(1 for c in sample if (c < " " and c not in "\t\r\n") or c == "\ufffd")
    return 1.0 - bad / len(sample)


def body_from_input(body: Any, skipped: list[Skip]) -> Any:
    """bytes/str → parsed JSON when it parses, else text. Never raises."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = raw.decode("utf-8", errors="replace")
            if _printable_ratio(body) < 0.85:
                skipped.append(Skip("$", "binary", f"{len(raw)} bytes not UTF-8 text"))
                return None
            skipped.append(Skip("$", "invalid utf-8", "undecodable bytes replaced"))
    if isinstance(body, str):
        s = body.strip()
        if s[:1] in ("{", "[") and s[-1:] in ("}", "]"):
            try:
                return json.loads(s)
            except RecursionError:
                skipped.append(Skip("$", "too deep", "JSON nesting beyond the parser; scanned as text"))
            except ValueError:
                pass
    return body


class Walker:
    """Iterates the Leaves of one body. `skipped` collects what was not walked, and why."""

    def __init__(self, side: str = "action_outputs", limits: Limits | None = None,
                 deadline: float | None = None) -> None:
        self.side = side
        self.limits = limits or Limits()
        self.skipped: list[Skip] = []
        self.skip_overflow = 0
        self.leaves = 0
        self.deadline = deadline
        self.stopped = False

    def skip(self, path: str, reason: str, detail: str = "") -> None:
        if len(self.skipped) < self.limits.max_skips:
            self.skipped.append(Skip(path, reason, detail))
        else:
            self.skip_overflow += 1

    def walk(self, body: Any, root: str = "$") -> Iterator[Leaf]:
        lim = self.limits
        # stack items: (kind, node, path, key, depth, ddepth, decoding, origin)
        # kind 'n' = JSON node, 's' = string to emit and decode
        stack: list[tuple] = [("n", body, root, None, 0, 0, "raw", None)]
        pop, push = stack.pop, stack.append
        while stack:
            kind, node, path, key, depth, ddepth, decoding, origin = pop()
            if kind == "n":
                if isinstance(node, str):
                    push(("s", node, path, key, depth, ddepth, decoding, origin))
                elif isinstance(node, dict):
                    if depth >= lim.max_depth:
                        self.skip(path, "too deep", f"depth {depth}")
                        continue
                    items = list(node.items())
                    for k, v in reversed(items):
                        ks = k if isinstance(k, str) else str(k)
                        if isinstance(v, (str, dict, list, tuple)):
                            push(("n", v, key_path(path, ks), ks, depth + 1, ddepth, decoding, origin))
                        if len(ks) >= KEY_MIN_CHARS and scan_key(ks):
                            # pushed last: the key is scanned before anything under it
                            push(("k", ks, key_path(path, ks) + "<key>", None, depth + 1, ddepth, decoding,
                                  origin))
                elif isinstance(node, (list, tuple)):
                    if depth >= lim.max_depth:
                        self.skip(path, "too deep", f"depth {depth}")
                        continue
                    for i in range(len(node) - 1, -1, -1):
                        v = node[i]
                        if isinstance(v, (str, dict, list, tuple)):
                            push(("n", v, f"{path}[{i}]", key, depth + 1, ddepth, decoding, origin))
                continue
            # a string leaf ('s') or a key ('k', scanned but never decoded)
            if self.leaves >= lim.max_leaves:
                self.skip(path, "too many leaves", f"stopped after {lim.max_leaves} leaves")
                self.stopped = True
                return
            if self.deadline is not None and (self.leaves & 255) == 0 and time.monotonic() > self.deadline:
                self.skip(path, "budget exceeded", "time budget spent while walking")
                self.stopped = True
                return
            self.leaves += 1
            org = origin if origin is not None else path
            items: list = []
            if kind == "s" and ddepth < lim.max_decode_depth and len(node) >= 6:
                if len(node) > lim.max_decode_chars:
                    self.skip(path, "leaf too long", f"{len(node)} chars, not decoded")
                elif _may_decode(node, key):
                    try:
                        items = self._decode(node, path, key, depth, ddepth, org)
                    except RecursionError:
                        self.skip(path, "too deep", "decoded layer nested beyond the parser")
                    except Exception as exc:  # a decoder bug must not stop the scan; no value in detail
                        self.skip(path, "parse error", type(exc).__name__)
            yield Leaf(node, path, key, self.side, decoding, org, items[0][6] if items else "")
            for item in items:
                push(item)

    # -- decoders: each returns stack items (pushed in reverse so they come out in order) --------
    # (`_may_decode` is the cheap test of the conditions `_decode` starts with: most strings fail it)
    def _decode(self, s: str, path: str, key: str | None, depth: int, ddepth: int, org: str) -> list:
        out: list = []
        d = ddepth + 1
        st = s.strip()
        first = st[:1]
        kl = key.lower() if key else ""
        if first in ("{", "[") and st[-1:] in ("}", "]"):
            try:
                obj = json.loads(st)
            except ValueError:
                obj = None
            if isinstance(obj, (dict, list)):
                out.append(("n", obj, path + "<json>", key, 0, d, "json", org))
                return out
        if first == "<" and st[-1:] == ">" and not st.startswith("<!--"):
            items = self._xml(st, path + "<xml>", d, org)
            if items is not None:
                return items
        m = _BASIC.match(s)
        if m:
            try:
                raw = base64.b64decode(m.group(1) + "==="[: (-len(m.group(1))) % 4], validate=False)
                text = raw.decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                text = None
            if text and ":" in text:
                user, _, pw = text.partition(":")
                out.append(("s", user, path + "<basic>.user", "user", 0, d, "basic", org))
                out.append(("s", pw, path + "<basic>.password", "password", 0, d, "basic", org))
                return out[::-1]
        m = _BEARER.match(s)
        if m:
            out.append(("s", m.group(1), path + "<bearer>", key, 0, d, "bearer", org))
            return out
        if "://" in s[:24] and "?" in s and _URL_WITH_QUERY.match(st):
            query = urlsplit(st).query
            for name, value in parse_qsl(query, keep_blank_values=False):
                out.append(("s", value, query_path(path, name), name, 0, d, "query", org))
            return out[::-1]
        if "=" in s and _FORM.match(st):
            pairs = parse_qsl(st, keep_blank_values=False)
            if pairs:
                for name, value in pairs:
                    out.append(("s", value, key_path(path + "<form>", name), name, 0, d, "form", org))
                return out[::-1]
        if kl in BASE64_KEYS and len(st) >= 8 and _B64_BODY.match(st):
            try:
                raw = base64.b64decode("".join(st.split()), validate=True)
            except (binascii.Error, ValueError):
                return out
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or _printable_ratio(text) < 0.9:
                kind = file_kind(raw)
                if kind is None:
                    self.skip(path, "binary", f"{len(raw)} bytes of base64 content, not text")
                    return out
                # A file a connector returned (Get file content): its printable runs are scanned, which
                # finds what is stored uncompressed; compressed streams are not opened (recorded).
                self.skip(path, "binary file", f"{len(raw)} bytes of {kind}; printable strings scanned")
                strings = "\n".join(m.group().decode("ascii") for m in _PRINTABLE_RUN.finditer(raw[:MAX_STRINGS_BYTES]))
                if strings:
                    out.append(("s", strings, path + "<base64><strings>", None, 0, d, "base64", org))
                return out
            out.append(("s", text, path + "<base64>", None, 0, d, "base64", org))
        return out

    def _xml(self, text: str, base: str, d: int, org: str) -> list | None:
        if "<!DOCTYPE" in text[:2048] or "<!ENTITY" in text[:4096]:
            return None  # no DTDs: no entity expansion games
        try:
            root = ElementTree.fromstring(text)
        except (ElementTree.ParseError, ValueError):
            return None
        items: list = []
        # iterative walk: (element, path, depth)
        stack = [(root, base + "/" + _local(root.tag), 0)]
        while stack:
            el, p, depth = stack.pop()
            if depth >= self.limits.max_depth:
                self.skip(p, "too deep", f"XML depth {depth}")
                continue
            for an, av in el.attrib.items():
                if av and len(av) >= 1:
                    items.append(("s", av, f"{p}/@{_local(an)}", _local(an), 0, d, "xml", org))
            if el.text and el.text.strip():
                items.append(("s", el.text.strip(), p, _local(el.tag), 0, d, "xml", org))
            counts: dict[str, int] = {}
            children = list(el)
            for c in children:
                counts[_local(c.tag)] = counts.get(_local(c.tag), 0) + 1
            seen: dict[str, int] = {}
            kids = []
            for c in children:
                name = _local(c.tag)
                seen[name] = seen.get(name, 0) + 1
                cp = f"{p}/{name}" + (f"[{seen[name]}]" if counts[name] > 1 else "")
                kids.append((c, cp, depth + 1))
            stack.extend(reversed(kids))
        return items[::-1]


_DECODE_FIRST = frozenset("{[<bB")


def _may_decode(s: str, key: str | None) -> bool:
    """False only where `_decode` would return nothing: no JSON/XML opening, no `basic`/`bearer` (or
    leading space), no `=` (form, base64 padding), no URL scheme near the start, no base64 key."""
    c = s[0]
    return (c in _DECODE_FIRST or c.isspace() or "=" in s or "://" in s[:24]
            or (key is not None and key.lower() in BASE64_KEYS))


def _local(tag: Any) -> str:
    t = tag if isinstance(tag, str) else str(tag)
    return t.rsplit("}", 1)[-1]


def walk(body: Any, side: str = "action_outputs", limits: Limits | None = None) -> tuple[list[Leaf], list[Skip]]:
    """Convenience: all leaves of `body` and what was skipped."""
    skipped: list[Skip] = []
    parsed = body_from_input(body, skipped)
    w = Walker(side, limits)
    leaves = list(w.walk(parsed))
    _, skips, _ = redact_paths([], skipped + w.skipped, [])
    return leaves, skips


# -- json_path redaction ---------------------------------------------------------------------------
# A path is cut into member segments (`['…']` with escapes, `.ident`) and the text between them
# (markers, `?name`, `/xml`, `[3]`); a secret is replaced by its preview inside one segment, and the
# whole path is searched again in case a secret spans segments.
_PATH_TOKEN = re.compile(r"\['(?:[^'\\]|\\.)*'\]|\.[A-Za-z_$][A-Za-z0-9_$]*|[^.\[]+|[.\[]")
_UNESC = re.compile(r"\\(.)")
KEY_MARKER = "<key>"


def _member(tok: str) -> str | None:
    """The name of a member segment (`['a\\'b']` or `.name`), None for other text."""
    if tok.startswith("['"):
        return _UNESC.sub(r"\1", tok[2:-2])
    if tok.startswith(".") and len(tok) > 1:
        return tok[1:]
    return None


def _replace_all(text: str, secrets: list[str]) -> str:
    for s in secrets:  # longest first, so a secret inside another is not half-replaced
        text = text.replace(s, preview(s))
    return text


def _redact_tokens(path: str, secrets: list[str], whole_key: bool) -> str:
    toks = _PATH_TOKEN.findall(path)
    last = len(toks) - 2 if whole_key and len(toks) >= 2 and toks[-1] == KEY_MARKER else -1
    out: list[str] = []
    for i, tok in enumerate(toks):
        name = _member(tok)
        if name is None:
            out.append(_replace_all(tok, secrets))
            continue
        red = preview(name) if i == last else _replace_all(name, secrets)
        # a redacted name is no identifier any more: it is written in brackets
        out.append(tok if red == name else f"['{_esc(red)}']")
    text = "".join(out)
    for s in secrets:
        if s in text or _esc(s) in text:
            text = text.replace(_esc(s), _esc(preview(s))).replace(s, preview(s))
    return text


def redact_path(path: str, secrets: Iterable[str] = (), *, whole_key: bool = False) -> str:
    """`path` with every secret in it shown as `preview(secret)`; with `whole_key`, a path ending in
    `<key>` also shows that key as a preview (a filtered candidate or an unscanned key)."""
    found = sorted({s for s in secrets if s and (s in path or _esc(s) in path)}, key=len, reverse=True)
    if not found and not (whole_key and path.endswith(KEY_MARKER)):
        return path
    return _redact_tokens(path, found, whole_key)


def redact_paths(hits: list[Hit], skipped: list[Skip], dropped: list[Drop]
                 ) -> tuple[list[Hit], list[Skip], list[Drop]]:
    """The hook the engine calls on each result so that no json_path carries a secret: hits are
    rewritten in place; Skips and Drops (frozen) are replaced. Cheap when nothing matches."""
    secrets = [h.secret for h in hits if isinstance(h.secret, str) and h.secret]
    for h in hits:
        h.json_path = redact_path(h.json_path, secrets)
    skips = [_redacted(s, secrets) for s in skipped]
    drops = [_redacted(d, secrets) for d in dropped]
    return hits, skips, drops


def _redacted(rec: Any, secrets: list[str]) -> Any:
    p = redact_path(rec.json_path, secrets, whole_key=True)
    return rec if p == rec.json_path else replace(rec, json_path=p)
