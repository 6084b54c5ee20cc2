"""describe(): what an error shows a person. Our own messages in full (redacted), others by type."""
from scanner.net.auth import AuthError
from scanner.errors import describe


def test_an_auth_error_says_its_cause_redacted():
    exc = AuthError("client-secret: AADSTS7000215 invalid secret; see https://login.example/t?code=s3cr3tcode")
    text = describe(exc)
    assert text.startswith("client-secret: AADSTS7000215 invalid secret")
    assert "s3cr3tcode" not in text


def test_a_foreign_exception_shows_only_its_type_and_place():
    try:
        raise ValueError("payload with ghp_notshown")
    except ValueError as exc:
        text = describe(exc)
    assert text.startswith("ValueError at test_errors.py:") and "ghp_" not in text
