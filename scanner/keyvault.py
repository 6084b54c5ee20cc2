"""Known values from Azure Key Vault: list enabled secrets, read each value, hash it, forget it.

A value lives in this module only between the GET that returns it and `known.add_value`, which
keeps keyed hashes of its encodings and nothing else (DESIGN invariant 4).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

from .clouds import Cloud
from .http import FlowleaksHttpError, HttpClient, origin, redact_url

log = logging.getLogger("flowleaks.keyvault")
API_VERSION = "7.4"


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


async def load_vault(http: HttpClient, url: str, cloud: Cloud, known) -> VaultLoad:
    base = url.rstrip("/")
    audience = cloud.vault_audience
    http.allow_origin(audience, base)
    result = VaultLoad(vault=vault_name(base))
    page_url = f"{base}/secrets?api-version={API_VERSION}&maxresults=25"
    seen: set[str] = set()
    while page_url:
        page = await http.get_json(page_url, audience, "vault")
        for item in page.get("value") or []:
            if not (item.get("attributes") or {}).get("enabled", True):
                result.disabled += 1
                continue
            name = str(item.get("id", "")).rstrip("/").rsplit("/", 1)[-1]
            if not name:
                continue
            try:
                secret = await http.get_json(f"{base}/secrets/{quote(name, safe='')}?api-version={API_VERSION}",
                                             audience, "vault")
            except FlowleaksHttpError as exc:
                result.errors.append(f"{name}: {exc}")
                continue
            value = secret.pop("value", None)
            if isinstance(value, str) and value:
                known.add_value(value, source=f"{result.vault}/{name}")
                result.loaded += 1
            value = None  # noqa: F841 - drop our reference at once
        link = page.get("nextLink")
        if link:
            link = urljoin(page_url, link)
            if origin(link) != origin(base) or link in seen:
                result.errors.append(f"nextLink refused: {redact_url(link)}")
                break
            seen.add(link)
        page_url = link
    return result
