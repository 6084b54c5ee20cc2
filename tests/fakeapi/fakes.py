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
    """A Key Vault value with no recognisable format: a password-like string with symbols (only
    known-value matching or the Get secret output rule can find it), or, as often, generated random
    bytes in base64 (the entropy stage sees those too: one leak, and it must be one finding)."""
    if rng.random() < 0.5:
        return base64.b64encode(rng.randbytes(rng.choice((24, 30, 32)))).decode()
    return pick(rng, ALNUM + "!#%*+-=?@^_", rng.randint(24, 40))


def random_secret(rng: random.Random) -> str:
    """A credential with no provider format (a generated API key / shared secret): 30 or 32 random bytes
    in base64url or base64. Only the entropy stage can find it."""
    raw = rng.randbytes(rng.choice((30, 32)))
    return b64url(raw) if rng.random() < 0.5 else base64.b64encode(raw).decode()


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


# --- run-history identifiers of Graph, SharePoint, Dataverse and Blob (decoys: none is a secret) ----
# Shapes follow the services' documentation; the bytes are random.

BASE32 = string.ascii_uppercase + "234567"


def drive_id(rng: random.Random) -> str:
    """SharePoint / OneDrive drive id: `b!` + base64url of three GUIDs (site collection, site, list)."""
    return "b!" + b64url(rng.randbytes(48))


def drive_item_id(rng: random.Random) -> str:
    """Graph driveItem id: `01` + 32 base32 characters."""
    return "01" + pick(rng, BASE32, 32)


def graph_etag(rng: random.Random, item_guid: str, ctag: bool = False) -> str:
    """driveItem eTag / cTag: `"{GUID},n"` / `"c:{GUID},n"`."""
    return f'"{"c:" if ctag else ""}{{{item_guid.upper()}}},{rng.randint(1, 40)}"'


def quick_xor_hash(rng: random.Random) -> str:
    """OneDrive quickXorHash: base64 of 20 bytes."""
    return base64.b64encode(rng.randbytes(20)).decode()


def directory_skiptoken(rng: random.Random, upn: str) -> str:
    """Graph directory paging token (users, groups): base64 of a binary record starting `DSpt`."""
    rec = (b"DSpt\x02\x00\x01\x00\x00\x00" + bytes([len(upn) + 1]) + b":" + upn.encode() + b")User_"
           + uuid.UUID(guid(rng)).bytes + rng.randbytes(rng.randint(4, 12)))
    return base64.b64encode(rec).decode().rstrip("=")


def sharepoint_skiptoken(name: str, item_id: int) -> str:
    """Graph over SharePoint lists / drives: base64 of `Paged=TRUE&p_…` (the list's paging state)."""
    return base64.b64encode(f"Paged=TRUE&p_SortBehavior=1&p_FileLeafRef={name}&p_ID={item_id}".encode()
                            ).decode().rstrip("=")


def delta_token(rng: random.Random) -> str:
    """Graph `$deltatoken`: a long opaque base64url state token."""
    return b64url(rng.randbytes(rng.randint(72, 110)))


def dataverse_paging_cookie(rng: random.Random, entity: str, first: str, last: str, page: int = 1) -> str:
    """Dataverse Web API `$skiptoken`: the FetchXML paging cookie, XML whose cookie is URL-encoded twice."""
    inner = f'<cookie page="{page}"><{entity}id last="{{{last.upper()}}}" first="{{{first.upper()}}}" /></cookie>'
    return (f'<cookie pagenumber="{page + 1}" pagingcookie="{quote(quote(inner, safe=""), safe="")}" '
            f'istracking="False" />')


def dataverse_etag(rng: random.Random) -> str:
    return f'W/"{rng.randint(1_000_000, 99_999_999)}"'


def change_key(rng: random.Random) -> str:
    """Graph (Exchange) `changeKey`: base64 of a 30-byte version record."""
    return base64.b64encode(b"\x09\x00\x00\x00\x16\x00\x00\x00" + rng.randbytes(22)).decode()


def blob_file_locator(path: str) -> str:
    """Azure Blob connector `Id` / `FileLocator`: base64 of the URL-encoded blob path (`%2f…`)."""
    return base64.b64encode(quote(path, safe="").replace("%2F", "%2f").encode()).decode()


def blob_next_marker(path: str) -> str:
    """Blob List Blobs `NextMarker` (the connector's `nextPageMarker`): `2!<n>!` + base64 of the position."""
    body = base64.b64encode(f"{len(path):06d}!{path}!000028!9999-12-31T23:59:59.9999999Z!".encode()).decode()
    return f"2!{len(body)}!{body}"


def crc64_b64(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(8)).decode()


def md5_b64(rng: random.Random) -> str:
    return base64.b64encode(hashlib.md5(rng.randbytes(16)).digest()).decode()


def azure_ref(rng: random.Random) -> str:
    """Azure Front Door `X-Azure-Ref`: an opaque base64 request reference (older format)."""
    return "0" + base64.b64encode(rng.randbytes(rng.choice((51, 54, 57)))).decode()


def workflow_system_id(workflow_hex: str) -> str:
    """Logic Apps `x-ms-workflow-system-id`: the workflow's path in its scale unit."""
    return f"/locations/westeurope/scaleunits/prod-{int(workflow_hex[:2], 16) % 90 + 10}/workflows/{workflow_hex}"


def invoice_csv(rng: random.Random, lines: int = 12) -> str:
    """An invoice export as a blob holds it: ids, amounts, dates and an md5 per row (no secret)."""
    rows = ["invoice,customer,amount,issued,md5"]
    for i in range(lines):
        rows.append(f"INV-{rng.randint(10000, 99999)},{guid(rng)},{rng.randint(10, 9999)}.{rng.randint(0, 99):02d},"
                    f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},{md5_hex(rng)}")
    return "\n".join(rows) + "\n"


# AWS documentation's example credentials (`aws configure` transcripts, ~/.aws/credentials): pasted
# into flows from READMEs, public, valid nowhere. A scanner that reports them is wrong.
# https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html
AWS_DOC_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# The Azurite / Storage Emulator well-known key (devstoreaccount1):
# https://learn.microsoft.com/azure/storage/common/storage-connect-azurite
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_CONNECTION = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                      "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
