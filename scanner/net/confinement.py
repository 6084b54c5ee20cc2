"""Where a request may go: the origins a bearer token may be sent to, and the content hosts.

- A bearer token goes only to an origin registered for its audience (`HttpClient.allow_origin`), and
  never over plain http unless the host is loopback.
- Content links (SAS URLs) go only to allow-listed host suffixes, over https (or http on loopback),
  and never with a token (scanner/net/content.py).
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from scanner.net.errors import HostNotAllowed


def origin(url: str) -> str:
    p = urlsplit(str(url))
    port = p.port or (443 if p.scheme == "https" else 80)
    return f"{p.scheme}://{(p.hostname or '').lower()}:{port}"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secure_transport(scheme: str, host: str | None) -> bool:
    """https, or plain http to loopback only (the fakes and the replay server)."""
    return scheme == "https" or (scheme == "http" and is_loopback(host))


def check_transport_security(url: str) -> None:
    """Tokens go over https only; plain http is for loopback fakes (DESIGN: Configuration)."""
    p = urlsplit(url)
    if secure_transport(p.scheme, p.hostname):
        return
    raise HostNotAllowed(url, "refusing a non-https URL outside loopback")


def on_domain(host: str, domain: str) -> bool:
    """`host` is `domain` or a subdomain of it (both lowercase, `domain` without a leading dot)."""
    return host == domain or host.endswith("." + domain)


def content_host_allowed(url: str, suffixes: tuple[str, ...]) -> bool:
    """A content link may be fetched: https (or loopback http) to a host under one of `suffixes`."""
    p = urlsplit(url)
    host = (p.hostname or "").lower()
    if not secure_transport(p.scheme, host):
        return False
    for suffix in suffixes:
        s = suffix.strip().lower()
        if s and on_domain(host, s.lstrip(".")):
            return True
    return False
