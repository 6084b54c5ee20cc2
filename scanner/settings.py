"""Settings shared by every command, and the click options that fill them (flag or FLOWLEAKS_* variable).

The FLOWLEAKS_* names are a contract (DESIGN.md, Configuration): every option is a flag, and the
variables are read through click's `envvar`, so `--help` shows both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import click

from scanner.net.auth import AUTH_METHODS, AuthConfig
from scanner.net.clouds import CLOUDS, Cloud, get_cloud
from scanner.net.http import HttpConfig, check_transport_security

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
        raise click.BadParameter(f"not an ISO date or datetime: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def window(since: str | None, until: str | None, days: int | None) -> tuple[datetime | None, datetime | None]:
    start = parse_when(since)
    end = parse_when(until)
    if days is not None:
        if start is not None:
            raise click.UsageError("--days and --since are exclusive")
        start = (end or datetime.now(timezone.utc)) - timedelta(days=days)
    if start and end and start >= end:
        raise click.UsageError("--since must be before --until")
    return start, end


def connection_options(f: Callable) -> Callable:
    """Cloud, endpoints, auth and the database: what every online command needs."""
    opts = [
        click.option("--cloud", type=click.Choice(sorted(CLOUDS)), default="public", show_default=True,
                     envvar="FLOWLEAKS_CLOUD", show_envvar=True, help="Microsoft cloud (hosts, audiences, login)."),
        click.option("--flow-api-url", envvar="FLOWLEAKS_FLOW_API_URL", show_envvar=True,
                     help="Flow service root; when set, every Flow API call goes there (regional endpoints too)."),
        click.option("--content-hosts", envvar="FLOWLEAKS_CONTENT_HOSTS", show_envvar=True,
                     help="Comma-separated host suffixes allowed for content links (default per cloud)."),
        click.option("--auth", "auth_method", type=click.Choice(AUTH_METHODS), default="auto", show_default=True,
                     envvar="FLOWLEAKS_AUTH", show_envvar=True, help="Credential kind; auto picks from what is set."),
        click.option("--tenant-id", envvar="FLOWLEAKS_TENANT_ID", show_envvar=True, help="Entra ID tenant id."),
        click.option("--client-id", envvar="FLOWLEAKS_CLIENT_ID", show_envvar=True, help="App (client) id."),
        click.option("--client-secret", envvar="FLOWLEAKS_CLIENT_SECRET", show_envvar=True,
                     help="Client secret (prefer the variable: flags show in `ps`)."),
        click.option("--certificate", envvar="FLOWLEAKS_CLIENT_CERTIFICATE", show_envvar=True,
                     type=click.Path(dir_okay=False), help="PEM (key + cert) or PFX file for certificate auth."),
        click.option("--certificate-password", envvar="FLOWLEAKS_CLIENT_CERTIFICATE_PASSWORD", show_envvar=True,
                     help="Password of the certificate file, if any."),
        click.option("--token-cache", envvar="FLOWLEAKS_TOKEN_CACHE", show_envvar=True,
                     type=click.Path(dir_okay=False), help="Device-code token cache file (created mode 0600)."),
        click.option("--access-token", envvar="FLOWLEAKS_ACCESS_TOKEN", show_envvar=True,
                     help="Pre-acquired bearer token used for every API; MSAL is skipped. Prefer the variable."),
        click.option("--db", default=DEFAULT_DB, show_default=True, envvar="FLOWLEAKS_DB", show_envvar=True,
                     type=click.Path(dir_okay=False),
                     help="DuckDB database file (created mode 0600, missing folders too)."),
        click.option("--concurrency", default=16, show_default=True, type=click.IntRange(1, 256),
                     envvar="FLOWLEAKS_CONCURRENCY", show_envvar=True, help="Requests in flight at most."),
        click.option("--max-content-mb", default=64, show_default=True, type=click.IntRange(1, 4096),
                     envvar="FLOWLEAKS_MAX_CONTENT_MB", show_envvar=True,
                     help="Largest content body to download; bigger ones are recorded as 'too large'."),
        click.option("--ca-bundle", envvar="FLOWLEAKS_CA_BUNDLE", show_envvar=True,
                     type=click.Path(exists=True, readable=True),
                     help="PEM file (or folder) of the CAs to trust instead of the default set, e.g. a "
                          "TLS-inspecting proxy's (default: SSL_CERT_FILE when set). HTTPS_PROXY and "
                          "NO_PROXY are honoured for https only; plain http is never proxied."),
        click.option("--as-admin/--as-maker", default=False, envvar="FLOWLEAKS_AS_ADMIN", show_envvar=True,
                     help="Admin scope (every flow in the environment, needs a Power Platform admin) "
                          "or maker scope (flows the identity owns or shares)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def settings_from(kw: dict) -> Settings:
    """Pop the connection options out of a command's kwargs and build Settings."""
    cloud = get_cloud(kw.pop("cloud"))
    flow_api_url = kw.pop("flow_api_url")
    pinned = bool(flow_api_url)
    root = (flow_api_url or cloud.flow_api).rstrip("/")
    try:
        check_transport_security(root)
    except Exception as exc:  # noqa: BLE001
        raise click.BadParameter(str(exc), param_hint="--flow-api-url") from None
    hosts_raw = kw.pop("content_hosts")
    hosts = tuple(h.strip() for h in hosts_raw.split(",") if h.strip()) if hosts_raw else cloud.content_host_suffixes
    auth = AuthConfig(method=kw.pop("auth_method"), tenant_id=kw.pop("tenant_id"), client_id=kw.pop("client_id"),
                      client_secret=kw.pop("client_secret"), certificate_path=kw.pop("certificate"),
                      certificate_password=kw.pop("certificate_password"), token_cache=kw.pop("token_cache"),
                      access_token=kw.pop("access_token"))
    check_matcher_env()
    proxy, no_proxy, ca_bundle = network_from_env(kw.pop("ca_bundle", None))
    auth.proxy, auth.no_proxy, auth.ca_bundle = proxy, no_proxy, ca_bundle  # MSAL goes the same way
    http = HttpConfig(concurrency=kw.pop("concurrency"), max_content_bytes=kw.pop("max_content_mb") * 1024 * 1024,
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
        raise click.UsageError(str(exc)) from None


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
            raise click.UsageError(f"HTTPS_PROXY must be an http:// or https:// proxy URL (got scheme "
                                   f"{p.scheme!r}, host {p.hostname or 'none'})")
        proxy = p.geturl()
    where = "--ca-bundle"
    if not ca_bundle and (env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR")):
        ca_bundle = env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR")
        where = "SSL_CERT_FILE" if env.get("SSL_CERT_FILE") else "SSL_CERT_DIR"
    if ca_bundle:
        try:
            from scanner.net.http import ssl_context

            ssl_context(ca_bundle)
        except (OSError, ssl.SSLError, ValueError) as exc:
            why = "no PEM certificate in it" if isinstance(exc, (ssl.SSLError, ValueError)) else exc.strerror
            # one line, exit 2 (cli._invoke): not click's usage block, the command line was fine
            raise click.ClickException(f"{where}: cannot use {ca_bundle} as a CA bundle: {why}") from None
    return proxy, no_proxy, ca_bundle


def scope_options(f: Callable) -> Callable:
    """What to sweep: environments, flows, time window, run status."""
    opts = [
        click.option("--env", "environments", multiple=True, help="Environment name or display name (repeatable)."),
        click.option("--flow", "flows", multiple=True, help="Flow id or display name (repeatable)."),
        click.option("--since", help="Runs that started at or after this ISO date/time (UTC). Default: 30 days ago."),
        click.option("--until", help="Runs that started before this ISO date/time (UTC)."),
        click.option("--days", type=click.IntRange(1, 3650), help="Runs of the last N days (instead of --since)."),
        click.option("--status", type=click.Choice(["Succeeded", "Failed", "Cancelled", "Running"]),
                     help="Only runs with this status (server-side filter)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def default_jobs() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def jobs_option(what: str, default: Any = default_jobs, note: str = "") -> Callable:
    """`--jobs N` (FLOWLEAKS_JOBS): detection worker processes; `what` says what each one takes."""
    return click.option("--jobs", "-j", type=click.IntRange(1, 256), default=default,
                        show_default="the number of cores" if default is default_jobs else True,
                        envvar="FLOWLEAKS_JOBS", show_envvar=True,
                        help=f"Detection worker processes ({what}); 1 detects in the scanning process.{note}")


def shard_option(f: Callable) -> Callable:
    """`--shard K/N` (sweep, scan): this process scans shard K of N (see scanner/pipeline/shard.py)."""
    return click.option(
        "--shard", metavar="K/N", envvar="FLOWLEAKS_SHARD", show_envvar=True,
        help="Scan only the flows of shard K of N (K from 0; a flow's shard is a stable hash of its "
             "environment and id, so it stays on its shard). Each shard writes its own database; combine "
             "them with `flowleaks merge`. Default: JOB_COMPLETION_INDEX with FLOWLEAKS_SHARD_COUNT when "
             "both are set (a Kubernetes Indexed Job), else the whole tenant.")(f)


def shard_from(kw: dict, db: str):
    """Pop --shard and resolve it (with the Indexed Job variables); a bad value is a usage error."""
    from scanner.pipeline.shard import ShardError, resolve_shard

    import os

    try:
        shard = resolve_shard(kw.pop("shard", None))
    except ShardError as exc:
        raise click.UsageError(str(exc)) from None
    db = str(db)
    if shard is not None and not os.environ.get("FLOWLEAKS_FINGERPRINT_KEY") and not os.path.exists(f"{db}.key"):
        # a new key file per shard database: fingerprints no merge could compare
        raise click.UsageError("a shard needs the fingerprint key every shard shares: set "
                               "FLOWLEAKS_FINGERPRINT_KEY (or put the same key file beside each shard database)")
    return shard


def output_options(f: Callable) -> Callable:
    """What a scheduled or interactive scan reports besides the summary."""
    f = click.option("--summary-json", type=click.Path(dir_okay=False), envvar="FLOWLEAKS_SUMMARY_JSON", show_envvar=True,
                     help="Write counts, completeness, duration, requests and 429s as JSON (for schedulers); "
                          "checked before the scan starts, missing folders are created.")(f)
    f = click.option("--min-confidence", type=click.Choice(["low", "medium", "high"]), default="medium",
                     show_default=True, envvar="FLOWLEAKS_MIN_CONFIDENCE", show_envvar=True,
                     help="Report detector hits of at least this confidence; the others are kept as filtered "
                          "('low confidence'). `low` also reports short random-looking strings under neutral keys.")(f)
    return click.option("--quiet", is_flag=True, envvar="FLOWLEAKS_QUIET", show_envvar=True,
                        help="No progress line on stderr.")(f)


def known_value_options(f: Callable) -> Callable:
    opts = [
        click.option("--known-vault", "known_vaults", multiple=True, envvar="FLOWLEAKS_KNOWN_VAULT", show_envvar=True,
                     help="Key Vault URL or name whose enabled secrets are matched by keyed hash (repeatable; "
                          "the variable takes a space-separated list)."),
        click.option("--known-vault-versions", is_flag=True, envvar="FLOWLEAKS_KNOWN_VAULT_VERSIONS", show_envvar=True,
                     help="Also match older enabled versions of each vault secret (rotated-out values)."),
        click.option("--known-values-stdin", is_flag=True,
                     help="Read known secret values from stdin, one per line (hashed, never stored)."),
        click.option("--known-hashes", type=click.Path(exists=True, dir_okay=False), envvar="FLOWLEAKS_KNOWN_HASHES",
                     show_envvar=True, help="File of lowercase hex SHA-256 hashes of known values, one per line."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _dataverse_targets(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple:
    from scanner.api.dataverse import parse_target

    out = []
    for value in values or ():
        for item in value.split(","):
            if item.strip():
                try:
                    out.append(parse_target(item))
                except Exception as exc:  # noqa: BLE001 - ValueError or HostNotAllowed: a usage error
                    raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return tuple(out)


def dataverse_options(f: Callable) -> Callable:
    """Live posture from Dataverse (PA007: environment variables holding a secret as plain text)."""
    return click.option(
        "--dataverse-url", "dataverse_urls", multiple=True, envvar="FLOWLEAKS_DATAVERSE_URL", show_envvar=True,
        callback=_dataverse_targets, metavar="[ENV=]URL",
        help="Dataverse org URL (https://org.crm.dynamics.com) whose environment variables are checked for "
             "plain-text secrets (PA007). ENV=URL records the findings under that environment name (use the "
             "Power Platform environment name, e.g. Default-<tenant>); a bare URL records them under the "
             "URL's host. Repeatable; the variable takes a comma-separated list. Token audience: the org URL.")(f)
