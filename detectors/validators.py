"""Named validators a catalogue rule may ask for (`validate = "<name>"`): structure checks that a
regex cannot express. Each takes the candidate secret and says whether it is well-formed."""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Callable

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(width, "0")


def github_crc32(token: str) -> bool:
    """GitHub's token format (github.blog, 2021-04-05 "Behind GitHub's new authentication token
    formats"): prefix_ + 30 base62 characters + a 6-character base62 CRC32 of those 30."""
    body = token.split("_", 1)[-1] if "_" in token else token
    if len(body) < 7:
        return False
    payload, check = body[:-6], body[-6:]
    return _base62(zlib.crc32(payload.encode()), 6) == check


def jwt(token: str) -> bool:
    """Three base64url parts; the first decodes to a JSON object with `alg` (RFC 7519, RFC 7515)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def base64_decodes(token: str) -> bool:
    """Standard or URL-safe base64 that decodes (padding optional)."""
    t = token.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(t + "=" * (-len(t) % 4), validate=True)
    except (ValueError, binascii.Error):
        return False
    return True


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "github-crc32": github_crc32,
    "jwt": jwt,
    "base64": base64_decodes,
}
