"""The click options of the commands, each a flag or a FLOWLEAKS_* variable, each defined once.

The FLOWLEAKS_* names are a contract (DESIGN.md, Configuration): every option is a flag, and the
variables are read through click's `envvar`, so `--help` shows both. What the values mean, and their
checks, is scanner/settings.py; the --rules options are scanner/cli/rules.py.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import click

from scanner.errors import UsageError
from scanner.net.auth import AUTH_METHODS
from scanner.net.clouds import CLOUDS
from scanner.pipeline.shard import ShardError, resolve_shard
from scanner.pipeline.sweep import KnownSources, read_stdin_lines
from scanner.settings import DEFAULT_DB, Settings, settings_from


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
                     envvar="FLOWLEAKS_CONCURRENCY", show_envvar=True, help="API requests in flight at most."),
        click.option("--content-concurrency", type=click.IntRange(1, 256), envvar="FLOWLEAKS_CONTENT_CONCURRENCY",
                     show_envvar=True,
                     help="Content downloads in flight at most, in slots of their own so a throttled API "
                          "never holds them up [default: twice --concurrency]."),
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


def known_sources_from(kw: dict) -> KnownSources:
    """Pop the known-value options → KnownSources (stdin is read now, when asked for)."""
    return KnownSources(vaults=kw.pop("known_vaults"), vault_versions=kw.pop("known_vault_versions"),
                        stdin_lines=read_stdin_lines() if kw.pop("known_values_stdin") else None,
                        hashes_file=kw.pop("known_hashes"))


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


# --db, and what reading a Key Vault needs (cloud, credentials), exactly as `sweep` defines them, for
# scan-files: each option is defined once. The Flow-API-only options (endpoints, scope, concurrency)
# mean nothing offline.
_DB_AND_VAULT_OPTIONS = frozenset({"cloud", "auth_method", "tenant_id", "client_id", "client_secret",
                                   "certificate", "certificate_password", "token_cache", "access_token", "db"})


def _connection_params() -> list[click.Parameter]:
    return connection_options(lambda: None).__click_params__


def db_and_vault_options(f: Callable) -> Callable:
    """The connection options that reading a Key Vault needs (cloud, credentials), and --db."""
    f.__click_params__ = [*getattr(f, "__click_params__", []),  # type: ignore[attr-defined]
                          *(p for p in _connection_params() if p.name in _DB_AND_VAULT_OPTIONS)]
    return f


# click >= 8.3 marks "no default" with a sentinel (older versions with None)
_NO_DEFAULT = getattr(click.core, "UNSET", None)


def settings_with_defaults(kw: dict) -> Settings:
    """Settings from a command that offers only some connection options: the others at their defaults."""
    for p in _connection_params():
        kw.setdefault(p.name, None if p.default is _NO_DEFAULT else p.default)
    return settings_from(kw)


def shard_from(kw: dict, db: str):
    """Pop --shard and resolve it (with the Indexed Job variables); a bad value is a usage error."""
    try:
        shard = resolve_shard(kw.pop("shard", None))
    except ShardError as exc:
        raise UsageError(str(exc)) from None
    db = str(db)
    if shard is not None and not os.environ.get("FLOWLEAKS_FINGERPRINT_KEY") and not os.path.exists(f"{db}.key"):
        # a new key file per shard database: fingerprints no merge could compare
        raise UsageError("a shard needs the fingerprint key every shard shares: set "
                         "FLOWLEAKS_FINGERPRINT_KEY (or put the same key file beside each shard database)")
    return shard
