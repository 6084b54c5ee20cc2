"""Credential selection and handling: tokens never shown, certificate files read, caches private."""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from scanner.net.auth import (AuthConfig, AuthError, MsalTokens, StaticToken, load_certificate_credential,
                          make_token_provider, resolve_method, write_token_cache)
from scanner.net.clouds import CLOUDS, get_cloud


def test_auto_picks_the_configured_credential(monkeypatch):
    monkeypatch.delenv("IDENTITY_ENDPOINT", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    assert resolve_method(AuthConfig(access_token="t", client_secret="s")) == "token"
    assert resolve_method(AuthConfig(client_secret="s", certificate_path="c.pem")) == "client-secret"
    assert resolve_method(AuthConfig(certificate_path="c.pem")) == "certificate"
    assert resolve_method(AuthConfig()) == "device-code"
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://169.254.169.254")
    assert resolve_method(AuthConfig()) == "managed-identity"
    assert resolve_method(AuthConfig(method="client-secret")) == "client-secret"


def test_static_token_is_used_for_every_audience_and_never_shown():
    provider = make_token_provider(AuthConfig(access_token=" tok-123 "), CLOUDS["public"])
    assert isinstance(provider, StaticToken)
    assert asyncio.run(provider.token("https://vault.azure.net")) == "tok-123"
    assert "tok-123" not in repr(provider)
    cfg = AuthConfig(client_secret="very-secret", access_token="tok-123")
    assert "very-secret" not in repr(cfg) and "tok-123" not in repr(cfg)


def test_missing_tenant_id_is_a_clear_error_without_secrets():
    tokens = MsalTokens(AuthConfig(method="client-secret", client_id="app", client_secret="s3cr3t-value"),
                        CLOUDS["public"])
    with pytest.raises(AuthError) as e:
        asyncio.run(tokens.token(CLOUDS["public"].flow_audience))
    assert "tenant id is required" in str(e.value) and "s3cr3t-value" not in str(e.value)


def _cert(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowleaks-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "app.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(
        b"app", key, cert, None, serialization.BestAvailableEncryption(b"pfx-pass")))
    return pem, pfx, cert


def test_certificate_credential_from_pem_and_pfx(tmp_path):
    pem, pfx, cert = _cert(tmp_path)
    thumb = cert.fingerprint(hashes.SHA1()).hex()
    assert load_certificate_credential(str(pem), None)["thumbprint"] == thumb
    assert load_certificate_credential(str(pfx), "pfx-pass")["thumbprint"] == thumb
    with pytest.raises(AuthError) as e:
        load_certificate_credential(str(pfx), "wrong-pass")
    assert "wrong-pass" not in str(e.value)
    with pytest.raises(AuthError, match="not found"):
        load_certificate_credential(str(tmp_path / "missing.pem"), None)


def test_token_cache_is_written_private(tmp_path):
    path = tmp_path / "cache" / "msal.json"
    write_token_cache(path, "{}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_every_cloud_has_hosts_and_audiences():
    for cloud in CLOUDS.values():
        assert cloud.flow_api.startswith("https://") and cloud.authority_host.startswith("https://login.")
        assert cloud.scope(cloud.flow_audience).endswith("/.default") and "//.default" not in cloud.scope(cloud.flow_audience)
        assert cloud.content_host_suffixes and cloud.vault_suffix
    with pytest.raises(ValueError):
        get_cloud("mars")
