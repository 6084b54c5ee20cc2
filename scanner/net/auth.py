"""Tokens for the Flow API and Key Vault: a pre-acquired token, or MSAL (four credential kinds).

A token is a credential for a whole tenant's run history. It is never logged, never put in an
exception message, and never sent to a host other than the one it was issued for (see confinement.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from scanner.errors import ExpectedError
from scanner.net.clouds import Cloud
from scanner.net.errors import unreachable_reason
from scanner.net.proxy import proxy_bypassed
from scanner.private import write_private_text

# Lines name the method and the audience, never a token, secret or MSAL's raw result.
log = logging.getLogger("flowleaks.auth")

AUTH_METHODS = ("auto", "token", "client-secret", "certificate", "device-code", "managed-identity")


class AuthError(ExpectedError, RuntimeError):
    """Could not obtain a token. The message names the method and MSAL's error code, never a token."""

    quotes_others = True  # MSAL's error_description


class AuthConfigError(AuthError):
    """The credential configuration is incomplete or unreadable: a usage error, found before any request."""


class TokenProvider(Protocol):
    async def token(self, audience: str) -> str: ...


@dataclass
class StaticToken:
    """FLOWLEAKS_ACCESS_TOKEN: used for every API as given; MSAL is skipped."""

    value: str

    async def token(self, audience: str) -> str:
        return self.value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


@dataclass
class AuthConfig:
    method: str = "auto"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    token_cache: str | None = None
    access_token: str | None = None
    # corporate networks (HttpConfig.proxy / ca_bundle): MSAL's own requests go the same way
    proxy: str | None = None
    no_proxy: str = ""
    ca_bundle: str | None = None

    def __repr__(self) -> str:  # never show the secret fields in a traceback
        return f"AuthConfig(method={self.method!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"


def default_token_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "flowleaks" / "msal-token-cache.json"


class MsalTokens:
    """MSAL credentials, one token per audience, cached until five minutes before expiry.

    MSAL is synchronous, so calls run in a worker thread; a lock per audience keeps sixteen workers
    from asking for sixteen tokens at once.
    """

    def __init__(self, cfg: AuthConfig, cloud: Cloud):
        self.cfg = cfg
        self.cloud = cloud
        self.method = resolve_method(cfg)
        self._cache: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._app = None
        self._certificate: dict | None = None

    def check(self) -> None:
        """Pre-flight: everything the credential needs is given (and a certificate readable) before
        the scan starts, so a missing tenant id is one line at once, not a failed scan."""
        if self.method == "managed-identity":
            return
        if self.method == "device-code" and self.cfg.method == "auto" and not self.cfg.client_id:
            raise AuthConfigError(
                "no credentials: set FLOWLEAKS_ACCESS_TOKEN, or FLOWLEAKS_CLIENT_ID with FLOWLEAKS_CLIENT_SECRET "
                "or FLOWLEAKS_CLIENT_CERTIFICATE (an app), or FLOWLEAKS_CLIENT_ID alone to sign in with a "
                "device code; and FLOWLEAKS_TENANT_ID")
        self._require_client_id()
        self._authority()
        if self.method == "client-secret" and not self.cfg.client_secret:
            raise AuthConfigError("client-secret: a client secret is required (FLOWLEAKS_CLIENT_SECRET)")
        if self.method == "certificate":
            self._certificate = load_certificate_credential(self.cfg.certificate_path or "",
                                                            self.cfg.certificate_password)

    def _session(self, proxied: bool = True):
        """MSAL's HTTP client: our proxy and CA bundle, not requests' own reading of the environment
        (which would also proxy plain http, e.g. a managed-identity endpoint that returns tokens).
        A failed connection is reported at once, in one line (a rerun retries)."""
        import requests
        from urllib3.util.retry import Retry

        session = requests.Session()
        session.trust_env = False
        if self.cfg.ca_bundle:
            session.verify = self.cfg.ca_bundle
        if proxied and self.cfg.proxy:
            host = urlsplit(self.cloud.authority_host).hostname or ""
            if not proxy_bypassed(host, self.cfg.no_proxy):
                session.proxies = {"https": self.cfg.proxy}  # https only: the proxy sees a CONNECT, not the token
        # no urllib3 retries (MSAL's default is one): its retry warning would bury our one-line message
        adapter = requests.adapters.HTTPAdapter(max_retries=Retry(total=0, redirect=0))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def __repr__(self) -> str:
        return f"MsalTokens(method={self.method!r})"

    async def token(self, audience: str) -> str:
        cached = self._cache.get(audience)
        if cached and cached[1] > time.time() + 300:
            return cached[0]
        lock = self._locks.setdefault(audience, asyncio.Lock())
        async with lock:
            cached = self._cache.get(audience)
            if cached and cached[1] > time.time() + 300:
                return cached[0]
            try:
                result = await asyncio.to_thread(self._acquire, audience)
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - requests' errors: named by host and cause
                import requests

                if not isinstance(exc, requests.RequestException):
                    raise
                url = getattr(getattr(exc, "request", None), "url", None) or self.cloud.authority_host
                host = urlsplit(str(url)).hostname or "the sign-in host"
                raise AuthError(f"{self.method}: cannot reach {host} to get a token: "
                                f"{unreachable_reason(exc)}") from None
            if "access_token" not in result:
                raise AuthError(
                    f"{self.method}: could not get a token for {audience}: "
                    f"{result.get('error', 'unknown error')}: "
                    f"{_first_line(result.get('error_description', ''))}")
            expires = time.time() + float(result.get("expires_in", 3600))
            log.info("%s: token acquired for %s (valid %.0f min)", self.method, audience,
                     (expires - time.time()) / 60)
            self._cache[audience] = (result["access_token"], expires)
            return result["access_token"]

    # -- one function per credential kind ----------------------------------------------------

    def _authority(self) -> str:
        if not self.cfg.tenant_id:
            raise AuthConfigError(f"{self.method}: a tenant id is required (--tenant-id or FLOWLEAKS_TENANT_ID)")
        return f"{self.cloud.authority_host}/{self.cfg.tenant_id}"

    def _require_client_id(self) -> str:
        if not self.cfg.client_id:
            raise AuthConfigError(f"{self.method}: a client id is required (--client-id or FLOWLEAKS_CLIENT_ID)")
        return self.cfg.client_id

    def _acquire(self, audience: str) -> dict:
        import msal

        scope = self.cloud.scope(audience)
        if self.method == "client-secret":
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._require_client_id(), authority=self._authority(),
                    client_credential=self.cfg.client_secret, http_client=self._session())
            return self._app.acquire_token_for_client(scopes=[scope])
        if self.method == "certificate":
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._require_client_id(), authority=self._authority(),
                    client_credential=self._certificate or load_certificate_credential(
                        self.cfg.certificate_path or "", self.cfg.certificate_password),
                    http_client=self._session())
            return self._app.acquire_token_for_client(scopes=[scope])
        if self.method == "managed-identity":
            identity = (msal.UserAssignedManagedIdentity(client_id=self.cfg.client_id)
                        if self.cfg.client_id else msal.SystemAssignedManagedIdentity())
            if self._app is None:
                # never proxied: the identity endpoint is plain http on the host, and answers with a token
                self._app = msal.ManagedIdentityClient(identity, http_client=self._session(proxied=False))
            return self._app.acquire_token_for_client(resource=audience.rstrip("/"))
        if self.method == "device-code":
            return self._device_code(msal, scope)
        raise AuthConfigError(f"unknown auth method {self.method!r}")

    def _device_code(self, msal, scope: str) -> dict:
        cache_path = Path(self.cfg.token_cache or default_token_cache())
        cache = msal.SerializableTokenCache()
        if cache_path.exists():
            cache.deserialize(cache_path.read_text())
        if self._app is None:
            self._app = msal.PublicClientApplication(
                self._require_client_id(), authority=self._authority(), token_cache=cache,
                http_client=self._session())
        app = self._app
        result = None
        accounts = app.get_accounts()
        if accounts:
            result = app.acquire_token_silent([scope], account=accounts[0])
        if not result:
            flow = app.initiate_device_flow(scopes=[scope])
            if "user_code" not in flow:
                return flow
            # The device-code prompt is for the human at the terminal: stderr, never a log file.
            print(flow["message"], file=sys.stderr, flush=True)
            result = app.acquire_token_by_device_flow(flow)
        if app.token_cache.has_state_changed:
            write_token_cache(cache_path, app.token_cache.serialize())
        return result


def resolve_method(cfg: AuthConfig) -> str:
    """'auto' picks the credential the configuration implies."""
    if cfg.method != "auto":
        return cfg.method
    if cfg.access_token:
        return "token"
    if cfg.client_secret:
        return "client-secret"
    if cfg.certificate_path:
        return "certificate"
    if os.environ.get("IDENTITY_ENDPOINT") or os.environ.get("MSI_ENDPOINT"):
        return "managed-identity"
    return "device-code"


def make_token_provider(cfg: AuthConfig, cloud: Cloud) -> TokenProvider:
    method = resolve_method(cfg)
    log.debug("auth method: %s", method)
    if method == "token":
        if not cfg.access_token:
            raise AuthConfigError("token: FLOWLEAKS_ACCESS_TOKEN is empty")
        return StaticToken(cfg.access_token.strip())
    tokens = MsalTokens(cfg, cloud)
    tokens.check()
    return tokens


def load_certificate_credential(path: str, password: str | None) -> dict:
    """A PEM (key + certificate) or PFX file → MSAL's {private_key, thumbprint, public_certificate}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    p = Path(path)
    if not p.is_file():
        raise AuthConfigError(f"certificate: file not found: {path}")
    data = p.read_bytes()
    pw = password.encode() if password else None
    try:
        if p.suffix.lower() in (".pfx", ".p12"):
            key, cert, _ = pkcs12.load_key_and_certificates(data, pw)
        else:
            key = serialization.load_pem_private_key(data, pw)
            cert = x509.load_pem_x509_certificate(data)
    except Exception as exc:  # noqa: BLE001 - message only names the file and the error type
        raise AuthConfigError(f"certificate: cannot read {path}: {type(exc).__name__}") from None
    if key is None or cert is None:
        raise AuthConfigError(f"certificate: {path} must hold both the private key and the certificate")
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return {"private_key": pem_key, "thumbprint": thumbprint, "public_certificate": pem_cert}


def write_token_cache(path: Path, text: str) -> None:
    """The MSAL token cache (it holds a refresh token): owner-only from creation, an existing file
    tightened before it is rewritten (scanner/private.py); its folder is created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_text(path, text)


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:300] if text and text.strip() else ""
