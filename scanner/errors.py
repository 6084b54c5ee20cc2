"""How an error is described to a person or stored: without ever quoting a payload.

Two kinds of failure, two kinds of line (scanner/cli/main.py `_unexpected`):
- expected ones (credentials, configuration, a file we cannot read or write, the network, an HTTP
  answer) print their own message, which names the cause and, where we know it, the fix;
- anything else is a bug: its type and where it was raised, and where to report it.
"""
from __future__ import annotations

from scanner.net.auth import AuthError
from scanner.net.http import FlowleaksHttpError
from scanner.redact import redact_text

ISSUES_URL = "https://github.com/flowleaks/flowleaks/issues"


class ScanFailed(Exception):
    """A scan stopped by an error; the message says what was scanned before it stopped.
    Built only from counts, ids and `describe()` of the cause, so it is safe to print."""


def _store_errors() -> tuple[type, ...]:
    from scanner.store.database import StoreOpenError  # lazily: store.py must not import HTTP code

    return (StoreOpenError,)


def is_expected(exc: BaseException | None) -> bool:
    """A failure of the environment or the input, not of flowleaks: its own message is the report."""
    if isinstance(exc, ScanFailed):
        return is_expected(exc.__cause__)
    return isinstance(exc, (AuthError, FlowleaksHttpError, OSError, *_store_errors()))


def describe(exc: BaseException) -> str:
    """One line. Our own errors are built from redacted parts (hosts, paths, API error codes) and
    are shown in full; an OSError by its OS reason and the path (a path we were given, never data);
    any other exception's text could quote a payload holding a secret, so only its type and where
    it was raised are shown."""
    if isinstance(exc, (FlowleaksHttpError, ScanFailed, *_store_errors())):
        return " ".join(str(exc).split())[:500]
    if isinstance(exc, AuthError):  # our own text plus MSAL's error_description: redacted, in full
        return " ".join(redact_text(str(exc)).split())[:500]
    if isinstance(exc, OSError) and exc.strerror:
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return f"{exc.strerror}: {paths}" if paths else exc.strerror
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{where}"
