"""How an error is described to a person or stored: without ever quoting a payload."""
from __future__ import annotations

from .auth import AuthError
from .http import FlowleaksHttpError
from .redact import redact_text


class ScanFailed(Exception):
    """A scan stopped by an unexpected error; the message says what was scanned before it stopped.
    Built only from counts, ids and `describe()` of the cause, so it is safe to print."""


def describe(exc: BaseException) -> str:
    """One line. Our own errors are built from redacted parts (hosts, paths, API error codes) and
    are shown in full; any other exception's text could quote a payload holding a secret, so only
    its type and where it was raised are shown."""
    if isinstance(exc, (FlowleaksHttpError, ScanFailed)):
        return " ".join(str(exc).split())[:500]
    if isinstance(exc, AuthError):  # our own text plus MSAL's error_description: redacted, in full
        return " ".join(redact_text(str(exc)).split())[:500]
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{where}"
