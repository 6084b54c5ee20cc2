"""Tokens for the Flow API and Key Vault: a pre-acquired token, or MSAL (four credential kinds).

A token is a credential for a whole tenant's run history. It is never logged, never put in an
exception message, and never sent to a host other than the one it was issued for (see http.py).
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

from .clouds import Cloud

# Lines name the method and the audience, never a token, secret or MSAL's raw result.
log = logging.getLogger("flowleaks.auth")

AUTH_METHODS = ("auto", "token", "client-secret", "certificate", "device-code", "managed-identity")


class AuthError(RuntimeError):
    """Could not obtain a token. The message names the method and MSAL's error code, never a token."""


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
            result = await asyncio.to_thread(self._acquire, audience)
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
            raise AuthError(f"{self.method}: a tenant id is required (--tenant-id or FLOWLEAKS_TENANT_ID)")
        return f"{self.cloud.authority_host}/{self.cfg.tenant_id}"

    def _require_client_id(self) -> str:
        if not self.cfg.client_id:
            raise AuthError(f"{self.method}: a client id is required (--client-id or FLOWLEAKS_CLIENT_ID)")
        return self.cfg.client_id

    def _acquire(self, audience: str) -> dict:
        import msal

        scope = self.cloud.scope(audience)
        if self.method == "client-secret":
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._require_client_id(), authority=self._authority(),
                    client_credential=self.cfg.client_secret)
            return self._app.acquire_token_for_client(scopes=[scope])
        if self.method == "certificate":
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._require_client_id(), authority=self._authority(),
                    client_credential=load_certificate_credential(
                        self.cfg.certificate_path or "", self.cfg.certificate_password))
            return self._app.acquire_token_for_client(scopes=[scope])
        if self.method == "managed-identity":
            import requests  # msal's own dependency

            identity = (msal.UserAssignedManagedIdentity(client_id=self.cfg.client_id)
                        if self.cfg.client_id else msal.SystemAssignedManagedIdentity())
            if self._app is None:
                self._app = msal.ManagedIdentityClient(identity, http_client=requests.Session())
            return self._app.acquire_token_for_client(resource=audience.rstrip("/"))
        if self.method == "device-code":
            return self._device_code(msal, scope)
        raise AuthError(f"unknown auth method {self.method!r}")

    def _device_code(self, msal, scope: str) -> dict:
        cache_path = Path(self.cfg.token_cache or default_token_cache())
        cache = msal.SerializableTokenCache()
        if cache_path.exists():
            cache.deserialize(cache_path.read_text())
        if self._app is None:
            self._app = msal.PublicClientApplication(
                self._require_client_id(), authority=self._authority(), token_cache=cache)
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
            write_private(cache_path, app.token_cache.serialize())
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
            raise AuthError("token: FLOWLEAKS_ACCESS_TOKEN is empty")
        return StaticToken(cfg.access_token.strip())
    return MsalTokens(cfg, cloud)


def load_certificate_credential(path: str, password: str | None) -> dict:
    """A PEM (key + certificate) or PFX file → MSAL's {private_key, thumbprint, public_certificate}."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    p = Path(path)
    if not p.is_file():
        raise AuthError(f"certificate: file not found: {path}")
    data = p.read_bytes()
    pw = password.encode() if password else None
    try:
        if p.suffix.lower() in (".pfx", ".p12"):
            key, cert, _ = pkcs12.load_key_and_certificates(data, pw)
        else:
            key = serialization.load_pem_private_key(data, pw)
            cert = x509.load_pem_x509_certificate(data)
    except Exception as exc:  # noqa: BLE001 - message only names the file and the error type
        raise AuthError(f"certificate: cannot read {path}: {type(exc).__name__}") from None
    if key is None or cert is None:
        raise AuthError(f"certificate: {path} must hold both the private key and the certificate")
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return {"private_key": pem_key, "thumbprint": thumbprint, "public_certificate": pem_cert}


def write_private(path: Path, text: str) -> None:
    """Write a file that only the owner can read (mode 0600 from creation, not chmod after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0][:300] if text and text.strip() else ""
