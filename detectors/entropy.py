"""Entropy stage: random-looking base64 / base64url / hex tokens that no pattern rule claimed.

A *candidate* is a run of `[A-Za-z0-9+/_-]` of at least 20 characters (optionally `=`-padded) with at
least 8 distinct characters; runs joined by single dots are one candidate (`xxxx.yyyy.zzzz`, a JWT-like
or dotted token, is one secret, reported once). Each candidate goes through the filters of
entropy_filters.py, in order, then the entropy threshold below; the first that matches drops it and the
engine records `Drop(rule_id='high-entropy', filter=<name>, json_path)`, so every silence is countable
and explainable. Candidates that survive every filter and clear the entropy threshold are reported as
rule `high-entropy`.

Confidence: `medium` when the key names a secret (`…Key`, `…Secret`, `token`, …) or the token is long
enough that chance explains it poorly (base64-ish ≥ 32 characters, hex ≥ 40); `low` otherwise (20–31
characters under a neutral key: short ids and hashes of every kind look like that), and `low` for a
provider look-alike: a documented prefix (`ghp_`, `glpat-`, `xoxb-`, `sk_live_`, `SG.`…) on a shape that
provider does not issue, or on a key it does not keep secret (`pk_live_`, `sk_test_`). The engine keeps
low-confidence hits as Drops with filter `low confidence` unless `Engine(min_confidence="low")`.

Thresholds: base64-ish tokens need entropy ≥ 0.8·log2(min(len, 64)) bits/char and upper, lower and
digits; hex tokens (≥ 32 chars) need ≥ 0.8·log2(16) = 3.2 bits/char. A random 32-character base64
secret scores ≈ 4.6 against a threshold of 4.0; a random 40-character hex secret ≈ 3.8 against 3.2.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterator

from .base import Leaf
from .entropy_filters import GUID, HEX, LeafContext, classify
from .rules import Rule, ex

RULE_ID = "high-entropy"

# A run of the token alphabet, or several joined by single dots, at least MIN_TOKEN long (the
# lookahead skips short words in C; the length is checked again because `a..b` stops at the `..`).
TOKEN = re.compile(r"(?=[A-Za-z0-9+/_.=-]{20})[A-Za-z0-9+/_-]+(?:\.[A-Za-z0-9+/_-]+)*={0,2}")
MIN_TOKEN = 20
STRONG_B64 = 32  # base64-ish candidates this long (core, without padding) are medium confidence
STRONG_HEX = 40  # hex candidates this long

RULE = Rule(
    RULE_ID,
    "Random-looking base64/base64url/hex token (entropy stage) that survives the run-history filters "
    "(GUIDs, digests, ETags, images, resource ids, tracking ids, OData paging tokens, SharePoint and blob "
    "ids, row versions, timestamps, placeholders, documentation examples, prose, paths). Medium confidence "
    "for long tokens or secret-named keys; short ones under neutral keys are low (not reported by default).",
    "entropy", "medium", (),
    positive=(
        ex({"value": "q8Zr2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2"}, "q8Zr2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2"),
        ex({"data": "7c1e9b24f05a83d6e2b71c0f94a58d3e6b27c1f09e4a35d8"}, "7c1e9b24f05a83d6e2b71c0f94a58d3e6b27c1f09e4a35d8"),
        ex({"config": {"storageKey": "u7Kp2Qz9Wm4Xr1Tn8Yb3Lc6Vd0Hs5Ja7Fe2Go9Ik4="}}, "u7Kp2Qz9Wm4Xr1Tn8Yb3Lc6Vd0Hs5Ja7Fe2Go9Ik4="),
    ),
    negative=(
        ex({"id": "d3f0a9c2-7b1e-4c5d-9a8f-0e1d2c3b4a59"}),
        ex({"name": "08586653536760200319026785874CU62"}),
        ex({"contentHash": {"algorithm": "md5", "value": "98GuGIhrxUoG/lKXcXUgaA=="}}),
        ex({"ETag": "\"0x8DC1A2B3C4D5E6F\""}),
        ex({"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}),
        ex({"thumbnail": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}),
        ex({"id": "/subscriptions/f42cebc2-1111-2222-3333-444455556666/resourceGroups/rg-flows/providers/Microsoft.Logic/workflows/InvoiceFlow"}),
        ex({"x-ms-client-request-id": "Qm7Rt2Zx9Lp4Wn1Vb8Kc3Hd6Jf0Ys5"}),
        ex({"startTime": "2018-09-06T17:00:09.9484194Z"}),
        ex({"apiKey": "<your-api-key-goes-here-please>"}),
        ex({"note": "TheQuickBrownFoxJumpsOverTheLazyDogAgain"}),
        ex({"dataset": "https://contoso.sharepoint.com/sites/FinanceTeamSite/Shared%20Documents/QuarterlyReports"}),
        ex({"value": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
    ),
)


def shannon(s: str) -> float:
    """Shannon entropy of `s` in bits per character (0 for the empty string)."""
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def random_enough(tok: str) -> bool:
    """The entropy threshold (see Thresholds above): False drops the candidate as `entropy-threshold`."""
    core = tok.rstrip("=")
    n = len(core)
    h = shannon(core)
    if HEX.match(tok):
        return n >= 32 and h >= 3.2
    has_upper = any("A" <= c <= "Z" for c in core)
    has_lower = any("a" <= c <= "z" for c in core)
    has_digit = any("0" <= c <= "9" for c in core)
    if not (has_upper and has_lower and has_digit):
        return False
    return h >= 0.8 * math.log2(min(n, 64))


# Providers' documented token prefixes, with the shape each provider issues after it. A candidate that
# starts with one but has another shape is a look-alike (wrong length, a typo, a test or publishable
# key): its provider's pattern rule, which knows the format, did not claim it either. Low confidence.
#   GitHub: https://github.blog/2021-04-05-behind-githubs-new-authentication-token-formats/
#   GitLab: https://docs.gitlab.com/ee/security/tokens/ (token prefixes)
#   Slack:  https://api.slack.com/authentication/token-types
#   Stripe: https://docs.stripe.com/keys (publishable `pk_`, test mode `sk_test_`, restricted `rk_`)
#   SendGrid: https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys (`SG.` + id + `.` + secret)
#   npm:    https://github.blog/2021-09-23-announcing-npms-new-access-token-format/
#   PyPI:   https://pypi.org/help/#apitoken
_PROVIDER_PREFIX = re.compile(r"gh[pousr]_|github_pat_|glpat-|xox[abposr]-|[sr]k_live_|[sp]k_test_|pk_live_|SG\.|"
                              r"npm_|pypi-")
_PROVIDER_SHAPE = re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|"
                             r"glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[0-9]+-[0-9A-Za-z-]{10,}|[sr]k_live_[0-9A-Za-z]{24,}|"
                             r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}")


def lookalike(tok: str) -> bool:
    """A provider's prefix on something the provider does not issue (or does not keep secret)."""
    return _PROVIDER_PREFIX.match(tok) is not None and _PROVIDER_SHAPE.fullmatch(tok) is None


def strength(tok: str) -> str:
    """Confidence of a reported candidate under a key that does not name a secret."""
    core = tok.rstrip("=")
    if HEX.match(core):
        return "medium" if len(core) >= STRONG_HEX else "low"
    return "medium" if len(core) >= STRONG_B64 else "low"


def candidates(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, int]]:
    text = leaf.value if text is None else text
    for m in TOKEN.finditer(text):
        tok = m.group()
        if len(tok) >= MIN_TOKEN and len(set(tok)) >= 8:
            yield tok, m.start()


def find(leaf: Leaf, text: str | None = None) -> Iterator[tuple[str, str | None, str]]:
    """Yields (token, filter_or_None, confidence) for every candidate of the leaf."""
    text = leaf.value if text is None else text
    if len(text) < 20:
        return
    if len(text) == 36 and GUID.fullmatch(text):
        # the commonest leaf of run history, known without the tokenizer and the leaf's context: the
        # whole GUID is one candidate (8 distinct characters or more) and `classify` drops it as a guid
        if len(set(text)) >= 8:
            yield text, "guid", "low"
        return
    ctx: LeafContext | None = None
    query_at = text.find("?") if leaf.decoded == "query" else -1
    basic_at = 6 if text[:6].lower() == "basic " else -1
    for tok, start in candidates(leaf, text):
        if 0 <= query_at < start:
            continue  # each query parameter is its own (decoded) leaf
        if start == basic_at:
            continue
        if ctx is None:
            ctx = LeafContext(leaf, text)
        f = classify(tok, start, ctx)
        if f is None and not random_enough(tok):
            f = "entropy-threshold"
        if f is not None:
            yield tok, f, "low"
        elif lookalike(tok):
            yield tok, f, "low"
        else:
            yield tok, f, ("medium" if ctx.secret_key else strength(tok))
