"""Settings shared by every command, built from the values of their options, and checked before the
work: the time window, endpoints, credentials, proxy and CA bundle, custom rule packs, and the
FLOWLEAKS_* variables no option reads (FLOWLEAKS_MATCHER, FLOWLEAKS_FINGERPRINT_KEY).

A bad value raises a plain error (scanner/errors.py: UsageError, BadValue, InputError) that the CLI
shows as click would, exit 2. The options themselves are scanner/cli/options.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from scanner.errors import BadValue, InputError, UsageError
from scanner.net.auth import AuthConfig
from scanner.net.clouds import Cloud, get_cloud
from scanner.net.confinement import check_transport_security
from scanner.net.config import HttpConfig

DEFAULT_DB = "flowleaks.duckdb"


@dataclass
class Settings:
    cloud: Cloud
    auth: AuthConfig
    flow_api_url: str
    pinned_flow_api: bool
    content_hosts: tuple[str, ...]
    db: str = DEFAULT_DB
    http: HttpConfig = field(default_factory=HttpConfig)
    as_admin: bool = False
    min_confidence: str = "medium"  # detector hits below this are filtered ('low confidence')
    custom_rules: Any = None  # detectors.custom.CustomRules from --rules/--rules-only, or None


def parse_when(value: str | None) -> datetime | None:
    """ISO date or datetime (UTC assumed when no offset)."""
    if not value:
        return None
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise BadValue(f"not an ISO date or datetime: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def window(since: str | None, until: str | None, days: int | None) -> tuple[datetime | None, datetime | None]:
    start = parse_when(since)
    end = parse_when(until)
    if days is not None:
        if start is not None:
            raise UsageError("--days and --since are exclusive")
        start = (end or datetime.now(timezone.utc)) - timedelta(days=days)
    if start and end and start >= end:
        raise UsageError("--since must be before --until")
    return start, end


def settings_from(kw: dict) -> Settings:
    """Pop the connection options out of a command's kwargs and build Settings."""
    cloud = get_cloud(kw.pop("cloud"))
    flow_api_url = kw.pop("flow_api_url")
    pinned = bool(flow_api_url)
    root = (flow_api_url or cloud.flow_api).rstrip("/")
    try:
        check_transport_security(root)
    except Exception as exc:  # noqa: BLE001
        raise BadValue(str(exc), option="--flow-api-url") from None
    hosts_raw = kw.pop("content_hosts")
    hosts = tuple(h.strip() for h in hosts_raw.split(",") if h.strip()) if hosts_raw else cloud.content_host_suffixes
    auth = AuthConfig(method=kw.pop("auth_method"), tenant_id=kw.pop("tenant_id"), client_id=kw.pop("client_id"),
                      client_secret=kw.pop("client_secret"), certificate_path=kw.pop("certificate"),
                      certificate_password=kw.pop("certificate_password"), token_cache=kw.pop("token_cache"),
                      access_token=kw.pop("access_token"))
    check_matcher_env()
    proxy, no_proxy, ca_bundle = network_from_env(kw.pop("ca_bundle", None))
    auth.proxy, auth.no_proxy, auth.ca_bundle = proxy, no_proxy, ca_bundle  # MSAL goes the same way
    http = HttpConfig(concurrency=kw.pop("concurrency"), content_concurrency=kw.pop("content_concurrency", None),
                      max_content_bytes=kw.pop("max_content_mb") * 1024 * 1024,
                      content_host_suffixes=hosts, proxy=proxy, no_proxy=no_proxy, ca_bundle=ca_bundle)
    return Settings(cloud=cloud, auth=auth, flow_api_url=root, pinned_flow_api=pinned, content_hosts=hosts,
                    db=kw.pop("db"), http=http, as_admin=kw.pop("as_admin"),
                    min_confidence=kw.pop("min_confidence", None) or "medium")


def check_matcher_env() -> str:
    """FLOWLEAKS_MATCHER (the native pass's backend: hyperscan, portable, auto), checked before the
    work: a typo or a backend this machine lacks is a usage error, not a silent fallback."""
    from detectors.prefilter import choose_backend

    try:
        return choose_backend()
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def network_from_env(ca_bundle: str | None) -> tuple[str | None, str, str | None]:
    """(HTTPS_PROXY, NO_PROXY, CA bundle), checked now: a bad one is a usage error before any request.
    HTTP_PROXY is ignored on purpose: only loopback is reached over http, and never via a proxy."""
    import os
    import ssl
    from urllib.parse import urlsplit

    env = os.environ
    proxy = (env.get("HTTPS_PROXY") or env.get("https_proxy") or "").strip() or None
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    if proxy:
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.scheme not in ("http", "https") or not p.hostname:
            # the host only: a proxy URL may carry user:password
            raise UsageError(f"HTTPS_PROXY must be an http:// or https:// proxy URL (got scheme "
                             f"{p.scheme!r}, host {p.hostname or 'none'})")
        proxy = p.geturl()
    where = "--ca-bundle"
    if not ca_bundle and (env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR")):
        ca_bundle = env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR")
        where = "SSL_CERT_FILE" if env.get("SSL_CERT_FILE") else "SSL_CERT_DIR"
    if ca_bundle:
        try:
            from scanner.net.proxy import ssl_context

            ssl_context(ca_bundle)
        except (OSError, ssl.SSLError, ValueError) as exc:
            why = "no PEM certificate in it" if isinstance(exc, (ssl.SSLError, ValueError)) else exc.strerror
            # one line, exit 2: not click's usage block, the command line was fine
            raise InputError(f"{where}: cannot use {ca_bundle} as a CA bundle: {why}") from None
    return proxy, no_proxy, ca_bundle


def custom_rules_from(kw: dict) -> Any:
    """Pop --rules/--rules-only from a command's kwargs → CustomRules or None. A pack that cannot be
    used is a usage error (one line, exit 2); its notes (ignored path-only rules) are for the caller
    to show (scanner/cli/rules.py `load_rules`)."""
    from detectors.custom import CustomRulesError, load_packs
    from detectors.engine import Engine

    files, only = tuple(kw.pop("rules_files", ()) or ()), bool(kw.pop("rules_only", False))
    if only and not files:
        raise UsageError("--rules-only needs at least one --rules pack")
    if not files:
        return None
    try:
        custom = load_packs(files, only)
        Engine(custom=custom)  # the id check against the built-in rules, before any scan starts
    except CustomRulesError as exc:
        # one line, exit 2: the command line was fine, the pack is not
        raise InputError(str(exc)) from None
    return custom
