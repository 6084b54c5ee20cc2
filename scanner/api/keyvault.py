"""Known values from Azure Key Vault: list enabled secrets, read each value, hash it, forget it.

A value lives in this module only between the GET that returns it and `known.add_value`, which
keeps keyed hashes of its encodings and nothing else (DESIGN invariant 4).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from scanner.net import paging
from scanner.net.clouds import Cloud
from scanner.net.errors import FlowleaksHttpError
from scanner.net.http import HttpClient

log = logging.getLogger("flowleaks.keyvault")
API_VERSION = "7.4"
MAX_PAGES = 10_000  # 250,000 secrets at 25 a page; a vault handing out new nextLinks for ever stops here


@dataclass
class VaultLoad:
    vault: str
    loaded: int = 0
    disabled: int = 0
    errors: list[str] = field(default_factory=list)


def vault_url(value: str, cloud: Cloud) -> str:
    """A vault's base URL as given, or the vault name expanded with the cloud's suffix."""
    v = value.strip().rstrip("/")
    if "://" in v:
        return v
    return f"https://{v}.{cloud.vault_suffix}"


def vault_name(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.split(".")[0] if not host.replace(".", "").isdigit() and host != "localhost" else \
        f"{host}:{urlsplit(url).port}"


def _enabled(item: dict) -> bool:
    attributes = item.get("attributes")
    return not isinstance(attributes, dict) or attributes.get("enabled", True) is not False


async def load_vault(http: HttpClient, url: str, cloud: Cloud, known, max_pages: int = MAX_PAGES,
                     versions: bool = False) -> VaultLoad:
    """Hash every enabled secret of a vault into `known` (latest versions; older enabled ones too with
    `versions`, since a rotated-out value can still sit in 30 days of run history)."""
    base = url.rstrip("/")
    audience = cloud.vault_audience
    http.allow_origin(audience, base)
    result = VaultLoad(vault=vault_name(base))

    async def load(name: str, version: str | None) -> str | None:
        path = f"{base}/secrets/{quote(name, safe='')}" + (f"/{quote(version, safe='')}" if version else "")
        try:
            secret = await http.get_json(f"{path}?api-version={API_VERSION}", audience, "vault")
        except FlowleaksHttpError as exc:
            result.errors.append(f"{name}: {exc}")
            return None
        if not isinstance(secret, dict):
            result.errors.append(f"{name}: not a secret object")
            return None
        value = secret.pop("value", None)
        if isinstance(value, str) and value:
            known.add_value(value, source=f"{result.vault}/{name}" + (f"/{version}" if version else ""))
            result.loaded += 1
        value = None  # noqa: F841 - drop our reference at once
        return str(secret.get("id", "")).rstrip("/").rsplit("/", 1)[-1] or None

    # a paging problem is recorded in `result.errors` and ends that list
    async for item in paging.items_or_error(http, f"{base}/secrets?api-version={API_VERSION}&maxresults=25",
                                            audience, "vault", max_pages, result.errors):
        if not _enabled(item):
            result.disabled += 1
            continue
        name = str(item.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
        if not name:
            continue
        latest = await load(name, None)
        if not versions:
            continue
        versions_url = f"{base}/secrets/{quote(name, safe='')}/versions?api-version={API_VERSION}&maxresults=25"
        async for v in paging.items_or_error(http, versions_url, audience, "vault", max_pages, result.errors):
            version = str(v.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
            if version and version != latest and _enabled(v):
                await load(name, version)
    return result
