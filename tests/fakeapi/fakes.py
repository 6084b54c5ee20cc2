"""Deterministic fake credentials and look-alike decoys.

Every value is drawn from the `random.Random` passed in, so the same seed gives the same strings. The
credentials match the real formats closely enough for pattern detectors to fire, but none of them is
valid anywhere: hosts are `*-fake.example` or made-up storage accounts, and keys are random.
Decoys are the high-entropy strings that are *not* secrets (GUIDs, digests, ETags, thumbnails, ids,
placeholders); a scanner that reports them has a false positive.
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import struct
import uuid
import zlib
from urllib.parse import quote

ALNUM = string.ascii_letters + string.digits
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
AZURE_SECRET_CHARS = ALNUM + "_~.-"
AWS_KEY_ID_CHARS = string.ascii_uppercase + "234567"
SEASONS = ("Winter", "Spring", "Summer", "Autumn")
PLACEHOLDERS = ("<your-key>", "${API_KEY}", "xxxxxxxx", "REPLACE_WITH_YOUR_SECRET", "********")


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- identifiers (also used as decoys) -----------------------------------------------------------

def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def hex_id(rng: random.Random, n: int = 32) -> str:
    return "".join(rng.choices("0123456789abcdef", k=n))


# --- credentials -------------------------------------------------------------------------------

def github_token(rng: random.Random) -> str:
    """`ghp_` + 30 random + 6-char base62 CRC32 of the random part (GitHub's checksummed format)."""
    body = pick(rng, ALNUM, 30)
    crc = zlib.crc32(body.encode())
    digits = ""
    while crc:
        crc, r = divmod(crc, 62)
        digits = BASE62[r] + digits
    return "ghp_" + body + digits.rjust(6, "0")


def aws_key_pair(rng: random.Random) -> tuple[str, str]:
    return "AKIA" + pick(rng, AWS_KEY_ID_CHARS, 16), pick(rng, ALNUM + "/+", 40)


def azure_client_secret(rng: random.Random) -> str:
    """Entra ID client secret (2021+ format): 3 chars, `8Q~`, 34 more; 40 in all."""
    return pick(rng, ALNUM, 3) + "8Q~" + pick(rng, AZURE_SECRET_CHARS, 34)


def storage_account_key(rng: random.Random) -> str:
    """64 random bytes in base64: 88 characters ending in `==`."""
    return base64.b64encode(rng.randbytes(64)).decode()


def storage_account_name(rng: random.Random) -> str:
    return "stfake" + pick(rng, string.ascii_lowercase + string.digits, 10)


def storage_connection_string(account: str, key: str) -> str:
    return (f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            "EndpointSuffix=core.windows.net")


def sas_sig(rng: random.Random) -> str:
    """A blob SAS `sig` as it appears in a URL: base64 of an HMAC-SHA256, percent-encoded."""
    return quote(base64.b64encode(rng.randbytes(32)).decode(), safe="")


def blob_sas_url(account: str, container: str, blob: str, sig: str) -> str:
    return (f"https://{account}.blob.core.windows.net/{container}/{blob}?sv=2022-11-02&ss=b&srt=co"
            f"&sp=rwdlac&se=2027-01-31T23:59:59Z&st=2026-01-01T00:00:00Z&spr=https&sig={sig}")


def logicapp_trigger_url(rng: random.Random, workflow_hex: str, region: str = "westeurope") -> tuple[str, str]:
    """A Power Automate / Logic Apps HTTP trigger URL; its `sig` (43 base64url chars) is the secret."""
    sig = b64url(rng.randbytes(32))
    url = (f"https://prod-{rng.randint(10, 99)}.{region}.logic.azure.com:443/workflows/{workflow_hex}"
           "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun"
           f"&sv=1.0&sig={sig}")
    return url, sig


def password(rng: random.Random) -> str:
    return f"{rng.choice(SEASONS)}{rng.randint(2019, 2027)}!{pick(rng, string.ascii_lowercase, 3)}"


def basic_header(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def jwt(rng: random.Random, tenant_id: str, audience: str, issued_at: int) -> str:
    """An RS256-shaped access token (random signature; no key can verify it)."""
    header = {"typ": "JWT", "alg": "RS256", "kid": b64url(rng.randbytes(20))}
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{tenant_id}/", "iat": issued_at,
              "nbf": issued_at, "exp": issued_at + 3599, "appid": guid(rng), "oid": guid(rng),
              "tid": tenant_id, "sub": guid(rng), "ver": "1.0"}
    parts = [b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims)]
    return ".".join(parts + [b64url(rng.randbytes(256))])


def api_key(rng: random.Random) -> str:
    return pick(rng, ALNUM, 40)


def function_key(rng: random.Random) -> str:
    """Azure Functions `code=` key: 54 base64url-ish characters and `==`."""
    return pick(rng, ALNUM + "-_", 54) + "=="


def vault_secret_value(rng: random.Random) -> str:
    """A Key Vault value with no recognisable format: only known-value matching can find it."""
    return pick(rng, ALNUM + "!#%*+-=?@^_", rng.randint(24, 40))


# --- decoys ------------------------------------------------------------------------------------

def md5_hex(rng: random.Random) -> str:
    return hashlib.md5(rng.randbytes(16)).hexdigest()


def sha1_hex(rng: random.Random) -> str:
    return hashlib.sha1(rng.randbytes(16)).hexdigest()


def sha256_hex(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def etag(rng: random.Random) -> str:
    return '"0x8DC' + pick(rng, "0123456789ABCDEF", 11) + '"'


def resource_id(rng: random.Random, subscription: str) -> str:
    return (f"/subscriptions/{subscription}/resourceGroups/rg-integration-{pick(rng, string.ascii_lowercase, 4)}"
            f"/providers/Microsoft.Storage/storageAccounts/{storage_account_name(rng)}")


def png_thumbnail(rng: random.Random, size: int = 6) -> str:
    """Base64 of a real (tiny, noisy) PNG: long, high-entropy and harmless."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + rng.randbytes(size * 3) for _ in range(size))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()
