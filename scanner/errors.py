"""The scanner's own errors, and how an error is described to a person or stored: without ever
quoting a payload.

Bad input found before the work (UsageError, BadValue, InputError) exits 2 with click's wording,
though only scanner/cli/ knows click. Two kinds of failure, two kinds of line (scanner/cli/main.py
`_unexpected`):
- expected ones (credentials, configuration, a file we cannot read or write, the network, an HTTP
  answer) print their own message, which names the cause and, where we know it, the fix;
- anything else is a bug: its type and where it was raised, and where to report it.
"""
from __future__ import annotations

from scanner.redact import redact_text

ISSUES_URL = "https://github.com/flowleaks/flowleaks/issues"


# -- bad input, found before the work ---------------------------------------------------------------
# Raised by code outside the CLI (settings, output paths, rule packs), which knows no click; the CLI
# shows each as click shows its own (scanner/cli/errors.py `click_error`), and every one exits 2.

class UsageError(Exception):
    """The command line cannot work as given (exclusive options, a bad variable): the command's usage
    line, then the message."""


class BadValue(UsageError):
    """One option's value is wrong: "Invalid value for OPTION: message" ("Invalid value: message"
    without an option), after the usage line."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class InputError(Exception):
    """A file or value the command was given cannot be used (a rule pack, a CA bundle, an output
    path): one line naming why, no usage block, since the command line itself was fine."""


# -- failures of a scan -----------------------------------------------------------------------------

class ScanFailed(Exception):
    """A scan stopped by an error; the message says what was scanned before it stopped.
    Built only from counts, ids and `describe()` of the cause, so it is safe to print."""


class ExpectedError(Exception):
    """A failure of the environment or the input, not of flowleaks: credentials, the network, an HTTP
    answer, a database that cannot be opened. Its own message is the report: built from redacted parts
    (hosts, paths, API error codes), except where it quotes a third party (`quotes_others = True`:
    MSAL's error_description), which is redacted before it is shown. The net and the store subclass it,
    so this module needs neither."""

    quotes_others = False


def is_expected(exc: BaseException | None) -> bool:
    """A failure of the environment or the input, not of flowleaks: its own message is the report."""
    if isinstance(exc, ScanFailed):
        return is_expected(exc.__cause__)
    return isinstance(exc, (ExpectedError, OSError))


def describe(exc: BaseException) -> str:
    """One line. Our own errors are built from redacted parts (hosts, paths, API error codes) and
    are shown in full; an OSError by its OS reason and the path (a path we were given, never data);
    any other exception's text could quote a payload holding a secret, so only its type and where
    it was raised are shown."""
    if isinstance(exc, ExpectedError) and exc.quotes_others:  # e.g. MSAL's error_description: redacted
        return " ".join(redact_text(str(exc)).split())[:500]
    if isinstance(exc, (ExpectedError, ScanFailed)):
        return " ".join(str(exc).split())[:500]
    if isinstance(exc, OSError) and exc.strerror:
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        return f"{exc.strerror}: {paths}" if paths else exc.strerror
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{where}"
