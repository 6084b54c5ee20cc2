"""Corporate networks: HTTPS_PROXY / NO_PROXY, and a CA bundle as the only trusted roots.

Only https is ever proxied: a proxy then sees a CONNECT host:port and never a header; plain http
(loopback only) never goes through a proxy. NO_PROXY is read as curl and requests read it.
"""
from __future__ import annotations

from typing import Any

import httpx

from scanner.net.config import HttpConfig
from scanner.net.confinement import on_domain


def no_proxy_domains(no_proxy: str) -> list[str] | None:
    """NO_PROXY's entries as domains (lowercase, without a leading '*' or '.'), in order; None when
    an entry is '*' (nothing is proxied)."""
    domains = []
    for raw in (e.strip().lower() for e in (no_proxy or "").split(",")):
        if raw == "*":
            return None
        domains.append(raw.lstrip("*").lstrip("."))
    return [d for d in domains if d]


def proxy_bypassed(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl and requests read it: '*', or comma-separated host suffixes."""
    domains = no_proxy_domains(no_proxy)
    if domains is None:
        return True
    host = (host or "").lower().strip("[]")
    return any(on_domain(host, d) for d in domains)


def ssl_context(ca_bundle: str):
    """A CA bundle (PEM file, or a folder of hashed certificates) as the only trusted roots."""
    import os
    import ssl

    if os.path.isdir(ca_bundle):
        return ssl.create_default_context(capath=ca_bundle)
    return ssl.create_default_context(cafile=ca_bundle)


def proxy_mounts(config: HttpConfig, verify: Any, limits: httpx.Limits) -> dict | None:
    """https:// through HTTPS_PROXY, except NO_PROXY hosts; http:// never proxied (it carries a token
    in clear to loopback only, and a proxy must never see one)."""
    if not config.proxy:
        return None
    domains = no_proxy_domains(config.no_proxy)
    if domains is None:
        return None
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        "https://": httpx.AsyncHTTPTransport(proxy=config.proxy, verify=verify, limits=limits)}
    for entry in domains:
        for pattern in (f"https://{entry}", f"https://*.{entry}"):
            mounts[pattern] = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    return mounts
