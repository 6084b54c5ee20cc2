"""flowleaks' own pattern rules for what Power Automate / Logic Apps run history leaks.

One small object per rule (`PatternRule`): metadata (`.rule`: id, description, confidence, prefilter
keywords, positive and negative examples) and `find(leaf)`, which yields `(secret, confidence)`
for the secret *part* only: the `sig` value, not the URL; the AccountKey, not the connection string.

Rules are either value-driven (a regex over the leaf text, run only when one of its keywords occurs in
the lowercased text) or key-driven (`key_re`: run when the leaf's key name matches, e.g. `x-api-key`).
All example secrets below are fake (random characters made for the tests).
"""
from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator
from urllib.parse import unquote

from .base import Leaf
from .placeholders import is_placeholder
from .rules import Rule, ex

# fake values used in examples
_SIG = "Xo9kqL2vT8mNw4ZpR7sYc1HbE5uJ3aGd6fKiQ0tVxWe"
_AAD = "Abc8Q~xY7zQ2mK9pL4nR6tV1wS3uE5oI0aDfGh_J"
_KEY88 = "kP3nW8vQ2zR5tY7uI1oA4sD6fG9hJ0kL2zX5cV8bN1mQ3wE6rT9yU2iO5pA8sD1fG4hJ7kL0zX3cV6bN9mQ2w=="
_SBKEY = "q7W2eR9tY4uI1oP6aS3dF8gH5jK0lZ2xC7vB4nM1qW8="
_FNKEY = "aZ3xC8vB1nM6qW4eR9tY2uI7oP5sD0fG3hJ8kL1zX6cV4bN9mQ2w=="
_SAS = "sv=2022-11-02&ss=b&srt=sco&sp=rwdlacupiytfx&se=2026-12-31T23:59:59Z&st=2026-01-01T00:00:00Z&spr=https&sig=N8pQ2wE5rT7yU1iO4pA6sD9fG3hJ0kL2zX5cV8bN1mQ%3D"
_JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkZha2UgVXNlciIsImlhdCI6MTUxNjIzOTAyMn0"
        ".Zm9vYmFyYmF6cXV4ZmFrZXNpZ25hdHVyZWZvcnRlc3Rz")
_PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
        "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----")


class PatternRule:
    """A value regex (group `s` = the secret) and/or a key-name regex, plus an optional validator."""

    def __init__(self, rule: Rule, regex: str | None = None, *, flags: int = 0,
                 key_re: str | None = None, decodings: tuple[str, ...] | None = None,
                 validate: Callable[[str, Leaf, re.Match | None], str | None] | None = None,
                 min_len: int = 8) -> None:
        self.rule = rule
        self.id = rule.id
        self.regex = re.compile(regex, flags) if regex else None
        self.key_re = re.compile(key_re, re.I) if key_re else None
        self.decodings = decodings
        self.validate = validate
        self.min_len = min_len

    def key_matches(self, key: str | None) -> bool:
        return bool(self.key_re and key and self.key_re.search(key))

    def find(self, leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, str]]:
        text = leaf.value if text is None else text
        if self.decodings is not None and leaf.decoding not in self.decodings:
            return
        if self.regex is None:  # key-driven: the whole value is the secret
            if self.key_matches(leaf.key):
                v = text.strip()
                if len(v) >= self.min_len and not is_placeholder(v):
                    out = self.validate(v, leaf, None) if self.validate else v
                    if out:
                        yield out, self.rule.confidence
            return
        if self.key_re is not None and not self.key_matches(leaf.key):
            return
        for m in self.regex.finditer(text):
            s = m.group("s")
            if len(s) < self.min_len:
                continue
            if self.validate:
                s = self.validate(s, leaf, m)
                if not s:
                    continue
            if is_placeholder(s):
                continue
            yield s, self.rule.confidence


def _unq(s: str, leaf: Leaf, m) -> str | None:
    # a `sig` is base64url of an HMAC-SHA256 (43 characters): about 1 in 1,400 has no digit, so mixed
    # case counts as well as a digit (a placeholder is neither: `XXXX…`, `yoursig…`)
    v = unquote(s)
    if len(v) < 16 or not re.search(r"[A-Za-z]", v):
        return None
    return v if re.search(r"\d", v) or (re.search(r"[a-z]", v) and re.search(r"[A-Z]", v)) else None


_SAS_CTX = re.compile(r"(?i)(?:^|[?&;\s])(?:sv|skn|se)=")


def _sas(s: str, leaf: Leaf, m) -> str | None:
    text = m.string
    lo = max(0, m.start() - 2048)
    hi = min(len(text), m.end() + 1024)
    ctx = text[lo:hi]
    low = ctx.lower()
    if "logic.azure" in low or "powerplatform.com" in low:
        return None  # the trigger-URL rule owns these
    if not _SAS_CTX.search(ctx):
        return None
    return _unq(s, leaf, m)


def _storage_not_cosmos(s: str, leaf: Leaf, m) -> str | None:
    ctx = m.string[max(0, m.start() - 400): m.end() + 400].lower()
    return None if "documents.azure" in ctx or "accountendpoint" in ctx else s


def _cosmos(s: str, leaf: Leaf, m) -> str | None:
    ctx = m.string[max(0, m.start() - 400): m.end() + 400].lower()
    return s if ("documents.azure" in ctx or "accountendpoint" in ctx) else None


def _sql_pw(s: str, leaf: Leaf, m) -> str | None:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = s[1:-1]
    return s if s and not is_placeholder(s) else None


def _jwt_or_token(s: str, leaf: Leaf, m) -> str | None:
    return s if re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,}", s) else None


def _token_like(s: str, leaf: Leaf, m) -> str | None:
    return s if not re.search(r"\s", s) and 8 <= len(s) <= 512 else None


_URLCH = r"[^\s\"'<>\\]"
RULES: list[PatternRule] = [
    PatternRule(Rule(
        "logic-apps-trigger-url",
        "Logic Apps / Power Automate trigger or invoke URL (or run content link) carrying its SAS `sig`; "
        "anyone with the URL can start the flow or read the content. Reports the `sig` value.",
        "pattern", "high", ("sig=",),
        positive=(
            ex({"uri": "https://prod-27.westeurope.logic.azure.com:443/workflows/5b3c0d7e9f1a4b2c8d6e0f1a2b3c4d5e/"
                       f"triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={_SIG}"},
               _SIG),
            ex({"body": {"flowUrl": "https://default1e852b49aa.bc.environment.api.powerplatform.com:443/powerautomate/"
                                    "automations/direct/workflows/0a1b2c3d4e5f60718293a4b5c6d7e8f9/triggers/manual/paths/"
                                    f"invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={_SIG}"}}, _SIG),
            ex(f"Call https://prod-01.northeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sv=1.0&sig={_SIG} now"),
            # a sig with no digit (about 1 in 1,400 HMACs): mixed case is enough
            ex({"uri": "https://prod-25.westeurope.logic.azure.com:443/workflows/9a8b/triggers/manual/paths/invoke"
                       "?api-version=2016-06-01&sv=1.0&sig=QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUiOpAsDf-gh"},
               "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUiOpAsDf-gh"),
        ),
        negative=(
            ex({"uri": "https://prod-27.westeurope.logic.azure.com:443/workflows/5b3c/triggers/manual/paths/invoke?api-version=2016-06-01"}),
            ex({"uri": "https://prod-27.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=XXXXXXXXXXXXXXXXXXXXXXXX"}),
            ex({"uri": "https://example.com/page?sig=short"}),
            ex({"uri": "https://prod-27.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig=<signature>"}),
        )),
        r"(?i)https?://[\w.-]+\.(?:logic\.azure\.(?:com|us|cn)|(?:environment\.)?api\.powerplatform\.(?:com|us|cn))"
        r"(?::\d+)?/" + _URLCH + r"*?[?&]sig=(?P<s>[A-Za-z0-9%_+/=-]{16,})", validate=_unq, min_len=16),

    PatternRule(Rule(
        "azure-ad-client-secret",
        "Microsoft Entra ID (Azure AD) application client secret (`xxx8Q~…` format).",
        "pattern", "high", ("q~",),
        positive=(ex({"client_credential": _AAD}, _AAD), ex(f"secret={_AAD}&grant_type=client_credentials", _AAD)),
        negative=(ex({"value": "abc8Q~short"}), ex({"value": "Hello 8Q~ world this is text"})),
    ), r"(?<![A-Za-z0-9_~.-])(?P<s>[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])", min_len=37),

    PatternRule(Rule(
        "azure-storage-account-key",
        "Azure Storage account key in a connection string (`AccountKey=` beside `AccountName=`/"
        "`core.windows.net`). Reports the key.",
        "pattern", "high", ("accountkey",),
        positive=(ex({"cs": f"DefaultEndpointsProtocol=https;AccountName=contosofiles;AccountKey={_KEY88};EndpointSuffix=core.windows.net"}, _KEY88),),
        negative=(ex({"cs": "DefaultEndpointsProtocol=https;AccountName=contosofiles;AccountKey=<key>;EndpointSuffix=core.windows.net"}),
                  ex({"cs": f"AccountEndpoint=https://contoso.documents.azure.com:443/;AccountKey={_KEY88};"}, None)),
    ), r"(?i)AccountKey\s*=\s*(?P<s>[A-Za-z0-9+/]{40,}={0,2})", validate=_storage_not_cosmos, min_len=40),

    PatternRule(Rule(
        "azure-cosmosdb-key",
        "Azure Cosmos DB account key (`AccountEndpoint=https://….documents.azure.com…;AccountKey=`).",
        "pattern", "high", ("accountkey",),
        positive=(ex({"cs": f"AccountEndpoint=https://contoso.documents.azure.com:443/;AccountKey={_KEY88};"}, _KEY88),),
        negative=(ex({"cs": f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={_KEY88}"}),),
    ), r"(?i)AccountKey\s*=\s*(?P<s>[A-Za-z0-9+/]{40,}={0,2})", validate=_cosmos, min_len=40),

    PatternRule(Rule(
        "azure-sas-token",
        "Azure Storage / Service Bus shared access signature (`sig=` with `sv=`/`se=` or `skn=`). Reports `sig`.",
        "pattern", "high", ("sig=",),
        positive=(ex({"url": f"https://contosofiles.blob.core.windows.net/reports/q1.pdf?{_SAS}"}, "N8pQ2wE5rT7yU1iO4pA6sD9fG3hJ0kL2zX5cV8bN1mQ="),
                  ex({"auth": f"SharedAccessSignature sr=contoso.servicebus.windows.net&sig={_SIG}&se=1767225599&skn=RootManageSharedAccessKey"}, _SIG)),
        negative=(ex({"url": "https://contosofiles.blob.core.windows.net/reports/q1.pdf"}),
                  ex({"url": "https://example.com/?sig=abcdefabcdefabcdefabcdef"})),
    ), r"(?i)(?:^|[?&;\s])sig=(?P<s>[A-Za-z0-9%+/=_-]{16,})", validate=_sas, min_len=16),

    PatternRule(Rule(
        "azure-servicebus-key",
        "Service Bus / Event Hubs / IoT Hub shared access key (`SharedAccessKey=` in a connection string).",
        "pattern", "high", ("sharedaccesskey",),
        positive=(ex({"cs": f"Endpoint=sb://contoso-bus.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={_SBKEY}"}, _SBKEY),
                  ex({"cs": f"Endpoint=sb://contoso-hub.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={_SBKEY};EntityPath=events"}, _SBKEY)),
        negative=(ex({"cs": "Endpoint=sb://contoso-bus.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"}),),
    ), r"(?i)SharedAccessKey\s*=\s*(?P<s>[A-Za-z0-9+/]{20,}={0,2})", min_len=20),

    PatternRule(Rule(
        "azure-functions-key",
        "Azure Functions key in a function URL (`…azurewebsites.net/api/…?code=`). Reports the key.",
        "pattern", "high", ("code=",),
        positive=(ex({"uri": f"https://contoso-fn.azurewebsites.net/api/ProcessOrder?code={_FNKEY}"}, _FNKEY),),
        negative=(ex({"uri": "https://contoso-fn.azurewebsites.net/api/ProcessOrder?code=<function-key>"}),
                  ex({"uri": "https://login.example.com/callback?code=abc"})),
    ), r"(?i)https?://[\w.-]+\.azurewebsites\.(?:net|us|cn)(?::\d+)?/" + _URLCH + r"*?[?&]code=(?P<s>[A-Za-z0-9%_+/=-]{20,})",
        validate=_unq, min_len=20),

    PatternRule(Rule(
        "azure-functions-key-header",
        "Azure Functions key sent as the `x-functions-key` header.",
        "pattern", "high", (),
        positive=(ex({"headers": {"x-functions-key": _FNKEY}}, _FNKEY),),
        negative=(ex({"headers": {"x-functions-key": "@parameters('fnKey')"}}),),
    ), None, key_re=r"^x-functions-key$", validate=_token_like, min_len=16),

    PatternRule(Rule(
        "sql-connection-string-password",
        "Password in a SQL / ODBC / ADO.NET connection string (`Server=…;Password=…`). Reports the password.",
        "pattern", "high", ("password", "pwd"),
        positive=(ex({"cs": "Server=tcp:contoso.database.windows.net,1433;Database=crm;User ID=flowapp;Password=Tr0ub4dor&3xyz;Encrypt=True"}, "Tr0ub4dor&3xyz"),
                  ex({"cs": "Data Source=sql01;Initial Catalog=hr;User Id=sa;Pwd='S3cure!Pass';"}, "S3cure!Pass")),
        negative=(ex({"cs": "Server=sql01;Database=hr;Integrated Security=True"}),
                  ex({"cs": "Server=sql01;Database=hr;User ID=sa;Password=<password>;"})),
    ), r"(?i)(?:server|data source|host|address|addr|network address)\s*=[^\n]{0,300}?[;\s](?:password|pwd)\s*=\s*"
       r"(?P<s>'[^']*'|\"[^\"]*\"|[^;\s\"']+)", validate=_sql_pw, min_len=1),

    PatternRule(Rule(
        "api-key-header",
        "API key header or parameter by name: `x-api-key`, `api-key`, `Ocp-Apim-Subscription-Key`, "
        "`subscription-key`, `apikey` (key-name aware; the value is the secret).",
        "pattern", "high", (),
        positive=(ex({"headers": {"x-api-key": "k7Hq2Wm9Zp4Rt6Yv1Bn8"}}, "k7Hq2Wm9Zp4Rt6Yv1Bn8"),
                  ex({"headers": {"Ocp-Apim-Subscription-Key": "0f9e8d7c6b5a49382716a5b4c3d2e1f0"}}, "0f9e8d7c6b5a49382716a5b4c3d2e1f0"),
                  ex({"uri": "https://api.contoso.com/v1/items?subscription-key=9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"}, "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"),
                  ex({"headers": {"api-key": "Zx81kLp0QwErTy62"}}, "Zx81kLp0QwErTy62")),
        negative=(ex({"headers": {"x-api-key": "@parameters('apiKey')"}}), ex({"headers": {"x-api-key": "<your-api-key>"}}),
                  ex({"headers": {"x-api-version": "2023-01-01"}})),
    ), None, key_re=r"^(?:x-api-key|x-apikey|api-key|apikey|api_key|ocp-apim-subscription-key|subscription-key|x-subscription-key)$",
        validate=_token_like, min_len=8),

    PatternRule(Rule(
        "client-secret-body",
        "OAuth `client_secret` in a token request body (form or JSON) or any `client_secret` field.",
        "pattern", "high", (),
        positive=(ex({"body": "grant_type=client_credentials&client_id=7f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b&client_secret=Pq7-Xz2.Lm9_Wr4~Kt6"}, "Pq7-Xz2.Lm9_Wr4~Kt6"),
                  ex({"body": {"clientSecret": "Vb3nM8qW1eR6tY9u"}}, "Vb3nM8qW1eR6tY9u")),
        negative=(ex({"body": {"client_secret": "@{parameters('secret')}"}}), ex({"body": {"client_secret_name": "app-secret"}})),
    ), None, key_re=r"^client[_-]?secret$", validate=_token_like, min_len=8),

    PatternRule(Rule(
        "private-key",
        "PEM / OpenSSH / PuTTY private key block. Reports the whole block.",
        "pattern", "high", ("private key", "putty-user-key-file"),
        positive=(ex({"key": _PEM}, _PEM),),
        negative=(ex({"key": "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1\n-----END PUBLIC KEY-----"}),
                  ex({"text": "Paste your -----BEGIN PRIVATE KEY----- here"})),
    ), r"(?P<s>-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,16384}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
       r"|PuTTY-User-Key-File-\d: [\s\S]{16,8192}?Private-MAC: [0-9a-fA-F]+)", min_len=40),

    PatternRule(Rule(
        "bearer-token",
        "Token in an `Authorization: Bearer` header (JWT → high confidence, opaque → medium).",
        "pattern", "high", (),
        positive=(ex({"headers": {"Authorization": f"Bearer {_JWT}"}}, _JWT),
                  ex({"headers": {"Authorization": "Bearer 9fQ2xL7mW4zR8tY1vB6nK3pS"}}, "9fQ2xL7mW4zR8tY1vB6nK3pS")),
        negative=(ex({"headers": {"Authorization": "Bearer <token>"}}), ex({"headers": {"Authorization": "Bearer @{body('Get_token')}"}})),
    ), None, key_re=r".", decodings=("bearer",), validate=_jwt_or_token, min_len=16),

    PatternRule(Rule(
        "basic-auth-header",
        "Password of `Authorization: Basic base64(user:password)`. Reports the password.",
        "pattern", "high", (),
        positive=(ex({"headers": {"Authorization": "Basic c3ZjLWZsb3c6V2ludGVyMjAyNiFQYXNz"}}, "Winter2026!Pass"),),
        negative=(ex({"headers": {"Authorization": "Basic dXNlcjo="}}),),
    ), None, key_re=r"^password$", decodings=("basic",), min_len=4),
]

def bearer_confidence(secret: str) -> str:
    return "high" if secret.startswith("eyJ") and secret.count(".") >= 2 else "medium"


def rules() -> Iterable[Rule]:
    return (r.rule for r in RULES)
