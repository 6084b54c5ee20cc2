"""detect-secrets adapter: its plugins and heuristic filters, used through its API.

* One settings context for the whole scan: `ds_settings()` wraps `detect_secrets.settings.
  transient_settings` with the plugins of `DS_PLUGINS` and detect-secrets' default heuristic filters,
  but *no* verification filter (no network). `Engine.session()` enters it once.
* Plugins are called with `analyze_line(filename, line)`, never `scan_line` (which clears the filter
  caches and re-disables a filter on every call, and needs a settings context anyway).
* Key-aware plugins (KeywordDetector) get a synthesized line `key: "value"` so the key name counts:
  `{"password": "Winter2026!"}` becomes `password: "Winter2026!"`.
* detect-secrets' own high-entropy plugins are not run (they flag every GUID); flowleaks' entropy stage
  replaces them. Plugins whose reported value is not the secret (AzureStorageKeyDetector reports
  `AccountKey=…`, PrivateKeyDetector the `BEGIN … PRIVATE KEY` marker) are superseded by our own rules.
* Each candidate goes through detect-secrets' heuristic filters (called directly, by name); a candidate
  a filter removes becomes a `Drop` with filter `ds.<function name>`.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Iterator

from detect_secrets.settings import get_plugins
from detect_secrets.filters import heuristic as ds_heuristic
from detect_secrets.settings import transient_settings

from .placeholders import FILTER as PLACEHOLDER_FILTER
from .placeholders import is_placeholder
from .rules import Rule, ex


@dataclass(frozen=True)
class DSPlugin:
    name: str             # detect-secrets class name
    rule_id: str          # our rule id
    keywords: tuple[str, ...]  # prefilter literals: lowercase = case-insensitive, with capitals =
    #                            case-sensitive; () = run on every leaf >= min_len
    confidence: str = "high"
    bounded: bool = True  # the match must not sit inside a longer [A-Za-z0-9] run
    min_len: int = 8
    description: str = ""
    # detect-secrets returns a regex *group* when its pattern has one (GitHubTokenDetector yields
    # 'ghp'); expand the returned text over this character class to the whole token.
    expand: str | None = r"[A-Za-z0-9_-]"
    # for case-sensitive keywords: regexes every match of the plugin contains (its denylist without the
    # boundary groups, in syntax Python and Hyperscan read alike), so the native pass (prefilter.py)
    # looks for those instead of two-letter literals that are in every other upper-case word
    gate: tuple[str, ...] = ()


# detect-secrets plugin name → our rule id (`ds.<Plugin>` in docs)
DS_PLUGINS: tuple[DSPlugin, ...] = (
    DSPlugin("ArtifactoryDetector", "artifactory-token", ("AKC", "AP"), "low", description="JFrog Artifactory API token / password",
             gate=("AKC[a-zA-Z0-9]{10}", "AP[0-9A-F][a-zA-Z0-9]{8}")),
    DSPlugin("AWSKeyDetector", "aws-access-key", ("akia", "asia", "abia", "acca", "a3t", "aws"), description="AWS access key id / secret"),
    DSPlugin("BasicAuthDetector", "basic-auth-url", ("://",), bounded=False, expand=None, description="Credentials in a URL (`scheme://user:password@host`)"),
    DSPlugin("CloudantDetector", "cloudant-credentials", ("cloudant",), bounded=False, description="IBM Cloudant credentials"),
    DSPlugin("DiscordBotTokenDetector", "discord-bot-token", (), "medium", min_len=59, expand=r"[A-Za-z0-9_.-]", description="Discord bot token"),
    DSPlugin("GitHubTokenDetector", "github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), description="GitHub token"),
    DSPlugin("GitLabTokenDetector", "gitlab-token", ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-", "gr1348941", "glcbt-", "glimt-", "glptt-", "glagent-", "gloas-"), description="GitLab token"),
    DSPlugin("IbmCloudIamDetector", "ibm-cloud-iam-key", ("ibm", "iam"), "medium", bounded=False, description="IBM Cloud IAM key"),
    DSPlugin("IbmCosHmacDetector", "ibm-cos-hmac", ("ibm", "cos"), "medium", bounded=False, description="IBM COS HMAC credentials"),
    DSPlugin("JwtTokenDetector", "jwt", ("eyj",), "medium", expand=r"[A-Za-z0-9_.+/=-]", description="JSON Web Token"),
    DSPlugin("KeywordDetector", "secret-keyword", (), "medium", bounded=False, min_len=1, expand=None,
             description="Value assigned to a secret-sounding key (`password`, `secret`, `api_key`, …); key-aware"),
    DSPlugin("MailchimpDetector", "mailchimp-key", ("-us",), description="Mailchimp API key"),
    DSPlugin("NpmDetector", "npm-token", ("_authtoken",), bounded=False, description="npm token"),
    DSPlugin("OpenAIDetector", "openai-key", ("t3blbkfj",), description="OpenAI API key"),
    DSPlugin("PypiTokenDetector", "pypi-token", ("pypi-",), description="PyPI upload token"),
    DSPlugin("SendGridDetector", "sendgrid-key", ("sg.",), expand=r"[A-Za-z0-9_.-]", description="SendGrid API key"),
    DSPlugin("SlackDetector", "slack-token", ("xox", "hooks.slack.com"), bounded=False, expand=r"[A-Za-z0-9_/.:-]", description="Slack token / webhook"),
    DSPlugin("SoftlayerDetector", "softlayer-credentials", ("softlayer",), bounded=False, description="SoftLayer credentials"),
    DSPlugin("SquareOAuthDetector", "square-oauth-secret", ("sq0csp-",), description="Square OAuth secret"),
    DSPlugin("StripeDetector", "stripe-key", ("k_live_",), description="Stripe live key"),
    DSPlugin("TelegramBotTokenDetector", "telegram-bot-token", (), "medium", min_len=44, expand=r"[A-Za-z0-9_:-]", description="Telegram bot token"),
    DSPlugin("TwilioKeyDetector", "twilio-key", ("AC", "SK"), "medium", description="Twilio account SID / API key",
             gate=("AC[a-z0-9]{32}", "SK[a-z0-9]{32}")),
)
# Not run, with the reason (for docs):
DS_NOT_RUN = {
    "Base64HighEntropyString": "replaced by flowleaks' entropy stage (flags every GUID and hash)",
    "HexHighEntropyString": "replaced by flowleaks' entropy stage",
    "IPPublicDetector": "public IPs are not secrets; run history is full of them",
    "AzureStorageKeyDetector": "superseded by azure-storage-account-key (reports the key, not `AccountKey=…`)",
    "PrivateKeyDetector": "superseded by private-key (reports the block, not the BEGIN marker)",
}
BY_NAME = {p.name: p for p in DS_PLUGINS}

_EXAMPLES: dict[str, tuple[tuple, tuple]] = {
    "aws-access-key": ((ex({"accessKeyId": "AKIAQ3EGT7NZK5XW2PLM"}, "AKIAQ3EGT7NZK5XW2PLM"),), (ex({"id": "AKIAEXAMPLE"}),)),
    "basic-auth-url": ((ex({"url": "https://svc-flow:Qw3rty8Zx1@ftp.contoso.com/in"}, "Qw3rty8Zx1"),), (ex({"url": "https://ftp.contoso.com/in"}),)),
    "github-token": ((ex({"t": "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"}, "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"),), (ex({"t": "ghp_short"}),)),
    "gitlab-token": ((ex({"t": "glpat-Xk29sLq8Wm3Zr7Tn4Yb1"}, "glpat-Xk29sLq8Wm3Zr7Tn4Yb1"),), (ex({"t": "glpat-"}),)),
    "jwt": ((ex({"id_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.c2lnbmF0dXJlZmFrZWZha2U"}, None),), (ex({"t": "eyJhbGciOiJub25lIn0"}),)),
    "secret-keyword": ((ex({"password": "Winter2026!"}, "Winter2026!"), ex({"db_password": "Xk2!mQ9z"}, "Xk2!mQ9z")),
                       (ex({"password": "********"}), ex({"passwordLastSet": "2026-01-01"}), ex({"secretName": "db-password"}),
                        ex({"password": "@{parameters('pw')}"}))),
    "slack-token": ((ex({"hook": "https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMN/aB3dE5fG7hI9jK1lM3nO5pQ7"}, None),), (ex({"hook": "https://hooks.slack.com/"}),)),
    "stripe-key": ((ex({"k": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}, "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),), (ex({"k": "sk_test_4eC39HqLyjWDarjtT1zdp7dc"}),)),
    "sendgrid-key": ((ex({"k": "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ012"}, None),), (ex({"k": "SG.short"}),)),
    "twilio-key": ((ex({"sid": "AC0f9e8d7c6b5a49382716a5b4c3d2e1f0"}, "AC0f9e8d7c6b5a49382716a5b4c3d2e1f0"),),
                   (ex({"hash": "5eac0f9e8d7c6b5a49382716a5b4c3d2e1f0aa"}),)),
}


def ds_rules() -> list[Rule]:
    out = []
    for p in DS_PLUGINS:
        pos, neg = _EXAMPLES.get(p.rule_id, ((), ()))
        out.append(Rule(p.rule_id, p.description, "pattern", p.confidence, p.keywords, pos, neg,
                        source=f"detect-secrets:{p.name}"))
    return out


def ds_settings_config() -> dict[str, Any]:
    return {
        "plugins_used": [
            {"name": p.name, **({"keyword_exclude": KEYWORD_EXCLUDE} if p.name == "KeywordDetector" else {})}
            for p in DS_PLUGINS
        ],
        # detect-secrets' default heuristic filters; no verification (no network), no file filters.
        "filters_used": [{"path": f"detect_secrets.filters.heuristic.{n}"} for n in DS_FILTERS],
    }


DS_FILTERS = ("is_sequential_string", "is_potential_uuid", "is_likely_id_string", "is_templated_secret",
              "is_prefixed_with_dollar_sign", "is_indirect_reference", "is_not_alphanumeric_string")

# KeywordDetector's own exclusion hook (its `keyword_exclude` option), matched against the synthesized
# line: key names that *mention* a secret without holding one.
KEYWORD_EXCLUDE = (r"^[^:\"]*?(?:name|uri|url|ids?|policy|policies|lastset|expir\w*|type|version|length|"
                   r"hint|changed|date|time|count|enabled|required|reset|reference|ref|label|prompt|"
                   r"description|strength|complexity|profile|sync|rotation|vault)\"?\s*:")


class DSAdapter:
    """Holds plugin instances from one settings context; `find(leaf, text)` yields candidates."""

    def __init__(self) -> None:
        self.plugins: dict[str, Any] = {}

    @contextlib.contextmanager
    def session(self) -> Iterator["DSAdapter"]:
        with transient_settings(ds_settings_config()):
            self.plugins = {type(p).__name__: p for p in get_plugins()}
            try:
                yield self
            finally:
                self.plugins = {}

    def run(self, name: str, line: str, filename: str = "payload") -> list[str]:
        plugin = self.plugins.get(name)
        if plugin is None:
            return []
        return [ps.secret_value for ps in plugin.analyze_line(filename=filename, line=line, line_number=0)
                if ps.secret_value]


_BOUND = re.compile(r"[A-Za-z0-9]")


def bounded(text: str, secret: str) -> bool:
    """True when some occurrence of secret in text is not glued to more [A-Za-z0-9]."""
    start = 0
    while True:
        i = text.find(secret, start)
        if i < 0:
            return False
        j = i + len(secret)
        if (i == 0 or not _BOUND.match(text[i - 1])) and (j >= len(text) or not _BOUND.match(text[j])):
            return True
        start = i + 1


_EXPANDERS: dict[str, re.Pattern] = {}


MAX_EXPANSIONS = 64  # occurrences of one returned group grown per text (a hostile body stays linear)


def expand_tokens(text: str, secret: str, char_class: str) -> list[str]:
    """Grow `secret` over char_class on both sides to the whole token, at every occurrence: a plugin
    that returns its regex's *group* (GitHubTokenDetector returns `ghp` once for two tokens) stands
    for each token that group starts. Distinct tokens, in text order."""
    s = secret.strip(" \t\r\n\"'=:")
    if not s:
        return [s]
    i = text.find(s)
    if i < 0:
        return [s]
    rx = _EXPANDERS.get(char_class)
    if rx is None:
        rx = _EXPANDERS[char_class] = re.compile(char_class + "*")
    cc = re.compile(char_class)
    out: dict[str, None] = {}
    while i >= 0 and len(out) < MAX_EXPANSIONS:
        left = i
        while left > 0 and cc.match(text[left - 1]) and i - left < 4096:
            left -= 1
        m = rx.match(text, i + len(s))
        right = m.end() if m else i + len(s)
        out[text[left:right]] = None
        i = text.find(s, max(right, i + 1))
    return list(out)


# Keys that make KeywordDetector look (mirror of its DENYLIST, lowercase, as a search regex), and the
# value keywords that select it on a leaf's text
KEYWORD_DETECTOR_KEY = re.compile(r"(?i)(api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|"
                                  r"priv_?key|private_?key|client_?key|db_?pass|database_?pass|key_?pass|password|"
                                  r"passwd|pwd|secret|contraseña|contrasena)")
KEYWORD_DETECTOR_VALUE_KEYWORDS = ("password", "passwd", "pwd", "secret", "api_key", "apikey")


def keyword_windows(low: str, text: str) -> Iterator[str]:
    """The parts of a long text around each value keyword, merged where they overlap: detect-secrets'
    keyword regexes are slow on long lines (ds #868), so KeywordDetector looks only there."""
    spans: list[list[int]] = []
    for k in KEYWORD_DETECTOR_VALUE_KEYWORDS:
        i = low.find(k)
        while i >= 0 and len(spans) < 64:
            spans.append([max(0, i - 64), min(len(text), i + len(k) + 256)])
            i = low.find(k, i + 1)
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    for a, b in merged:
        yield text[a:b]


def synth_line(key: str, value: str) -> str:
    return f'{key}: "{value.replace(chr(34), chr(39))}"'


def ds_filter(secret: str, line: str, plugin: Any) -> str | None:
    """Name of the first detect-secrets heuristic filter that removes this candidate, else None."""
    if ds_heuristic.is_sequential_string(secret):
        return "ds.is_sequential_string"
    if ds_heuristic.is_potential_uuid(secret):
        return "ds.is_potential_uuid"
    if ds_heuristic.is_likely_id_string(secret, line, plugin):
        return "ds.is_likely_id_string"
    if ds_heuristic.is_templated_secret(secret):
        return "ds.is_templated_secret"
    if ds_heuristic.is_prefixed_with_dollar_sign(secret):
        return "ds.is_prefixed_with_dollar_sign"
    # The filter's regex needs a '(' or '['; checking first skips its backtracking (measured at ~17% of
    # a crawl's CPU when called on every candidate line).
    if ("(" in line or "[" in line) and ds_heuristic.is_indirect_reference(line):
        return "ds.is_indirect_reference"
    if ds_heuristic.is_not_alphanumeric_string(secret):
        return "ds.is_not_alphanumeric_string"
    if is_placeholder(secret):
        return PLACEHOLDER_FILTER
    return None
