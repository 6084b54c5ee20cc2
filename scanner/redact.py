"""The one place that knows how to make text safe to print: URLs, SAS signatures, tokens, secrets.

Used by the log filter (scanner/logs.py), by error messages (scanner/net/http.py), by `skipped.detail`
(scanner/pipeline/crawl.py) and by cassette scrubbing (scanner/replay/cassette.py). Everything here over-redacts
rather than under-redacts: a log line that lost a harmless query parameter costs nothing, a log line
that kept a `sig` is a credential on disk.

Encodings matter because the same URL shows up raw (`?a=1&sig=x`), inside another URL's query
(`%3Fsig%3D`, `%26sig%3D`, doubly `%2526sig%253D`), JSON-escaped (`\\u0026sig=`, `https:\\/\\/`),
and HTML-escaped (`&amp;sig=`).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

REDACTED = "REDACTED"
QUERY_MARK = "?…"

# What may stand right before a parameter name in some encoding. Each lookbehind is fixed-width, as
# Python requires; the first covers `?`, `&`, `&amp;` (ends in `;`), quotes, spaces and line starts.
_BEFORE = (r"(?:(?<![A-Za-z0-9_.$%-])|(?<=%3f)|(?<=%26)|(?<=%253f)|(?<=%2526)|(?<=\\u0026)|(?<=\\u003f))")
_EQUALS = r"(?:=|%3d|%253d|\\u003d)"
# A value runs until the next parameter in any encoding. `\/` (a JSON-escaped slash) and `\u00XX`
# escapes other than `&` belong to the value, so a JSON-escaped sig is not cut short and half-leaked.
_VALUE = r"(?:\\/|\\u00(?!26)[0-9a-f]{2}|(?!%26|%2526)[A-Za-z0-9+/=%._~*!$:@-])+"

# Query/form parameters and JSON/dict keys whose value is a credential (or, for skiptoken, a paging
# cursor the design treats as one).
_SIG = r"sig"
_SKIPTOKEN = r"(?:\$|%24|%2524)?skip_?token"
_QUERY_SECRETS = (_SIG, _SKIPTOKEN, r"code", r"client_secret", r"client_assertion", r"access_token",
                  r"refresh_token", r"id_token", r"device_code", r"assertion", r"password", r"api[_-]?key",
                  r"subscription[_-]key", r"sharedaccesskey", r"accountkey", r"token")
# As JSON/dict keys too ("code" then also hides error codes: a price worth paying for OAuth codes).
_KEY_SECRETS = _QUERY_SECRETS + (r"secret", r"client_?secret", r"authorization")


def _param_re(names: tuple[str, ...]) -> re.Pattern[str]:
    alt = "|".join(names)
    return re.compile(rf"(?i)({_BEFORE}(?:{alt}){_EQUALS})({_VALUE})")


def _key_re(names: tuple[str, ...]) -> re.Pattern[str]:
    # "name": "value" and 'name': 'value' (a JSON body, a Python dict in a library's debug line)
    alt = "|".join(names)
    return re.compile(rf"""(?i)((?:\\?["'])(?:{alt})(?:\\?["'])\s*:\s*(?:\\?["']))((?:(?!\\?["']).)*)""")


SIG_RE = _param_re((_SIG,))
SIG_KEY_RE = _key_re((_SIG,))
SECRET_PARAM_RE = _param_re(_QUERY_SECRETS)
SECRET_KEY_RE = _key_re(_KEY_SECRETS)

# Header values that are credentials, in `Name: value` or `'Name': 'value'` form.
_HEADER_RE = re.compile(r"""(?i)(\b(?:proxy-)?authorization|\bcookie|\bset-cookie|\bx-api-key|\bapi-key"""
                        r"""|\bocp-apim-subscription-key|\bx-ms-token[\w-]*)(["']?\s*[:=]\s*["']?)[^"'\r\n]+""")
_SCHEME_TOKEN_RE = re.compile(r"(?i)\b(bearer|basic|sharedaccesssignature)(\s+)[A-Za-z0-9\-._~+/%=&:]{8,}")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")

# Absolute URLs, plain, JSON-escaped (`https:\/\/`) or percent-encoded (`https%3A%2F%2F`).
_URL_RE = re.compile(r"(?i)\b(?:https?|wss?)(?::|%3a)(?:\\?/|%2f){2}[^\s\"'<>`]+")
_URL_CUT_RE = re.compile(r"(?i)[?#&]|\\u003f|\\u0026|%3f|%26|%23")
_USERINFO_RE = re.compile(r"(?i)^((?:[a-z]+)(?::|%3a)(?:\\?/|%2f){2})[^/\\@]*(?:@|%40)")
# A request target without scheme and host (`"GET /path?a=1 HTTP/1.1"`, urllib3's debug line).
# It must start after a space, quote, bracket or `=`: a lookbehind that any `/` passed would make a long
# run of `/-/-/-` quadratic.
_PATH_QUERY_RE = re.compile(r"(?:^|(?<=[\s\"'(\[=]))(/[^\s\"'?<>]*)\?[^\s\"'<>]+")


def redact_url(url: object) -> str:
    """scheme://host[:port]/path — the query (SAS sig, skiptoken), fragment and user info are dropped."""
    try:
        p = urlsplit(str(url))
    except ValueError:
        return "<unparseable url>"
    return f"{p.scheme}://{p.netloc.rsplit('@', 1)[-1]}{p.path}"


def _url_in_text(m: re.Match[str]) -> str:
    url = m.group(0)
    cut = _URL_CUT_RE.search(url)
    head = url[:cut.start()] if cut else url
    return _USERINFO_RE.sub(r"\1", head) + (QUERY_MARK if cut else "")


def scrub_sig(text: str, marker: str = REDACTED) -> str:
    """Replace every SAS `sig` value, in every encoding, with `marker` (the parameter name stays)."""
    text = SIG_RE.sub(lambda m: m.group(1) + marker, text)
    return SIG_KEY_RE.sub(lambda m: m.group(1) + marker, text)


def redact_text(text: object) -> str:
    """Free text made safe to log or store: URLs keep scheme://host/path only (`?…` marks a dropped
    query), and credential parameters, header values, bearer tokens and JWTs become REDACTED."""
    s = str(text)
    s = _HEADER_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, s)
    s = _SCHEME_TOKEN_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, s)
    s = _JWT_RE.sub(REDACTED, s)
    s = SECRET_PARAM_RE.sub(lambda m: m.group(1) + REDACTED, s)
    s = SECRET_KEY_RE.sub(lambda m: m.group(1) + REDACTED, s)
    s = _URL_RE.sub(_url_in_text, s)
    return _PATH_QUERY_RE.sub(lambda m: m.group(1) + QUERY_MARK, s)
