"""Logging setup for the CLI: one stderr handler, and a filter on it that redacts every record.

The filter sits on the handler, not on a logger: a logger's filters do not see records that
propagate up from child loggers, while a handler sees every record it is about to write, whoever
logged it (flowleaks.*, httpx, httpcore, msal, urllib3, py.warnings…).

Verbosity: 0 warnings only; -v flowleaks' own INFO lines (retries, pacing, refusals, crawl progress);
-vv flowleaks' DEBUG lines (one per request) plus the libraries' INFO lines; -vvv everything.
The libraries' per-request lines repeat what flowleaks already says, so -v keeps them out; when
they are shown they go through the same redaction.
"""
from __future__ import annotations

import logging
import sys
import warnings
from typing import TextIO

from scanner.redact import redact_text

FORMAT = "%(levelname)s %(name)s: %(message)s"
LIBRARY_LOGGERS = ("httpx", "httpcore", "msal", "urllib3", "requests", "asyncio")
_OWN = "flowleaks"


class RedactingFilter(logging.Filter):
    """Formats the record's message first (so `args` cannot smuggle a URL or token past it), then
    redacts the result, the exception text and the stack text. Never drops a record."""

    _exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_text(_message(record)), ()
        if record.exc_info:
            # an httpx exception's text holds the full URL; format it here, then redact it
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not drop the record, nor print args
        try:
            return f"{record.msg} (log arguments could not be formatted)"
        except Exception:  # noqa: BLE001
            return "(unprintable log message)"


def levels(verbosity: int) -> tuple[int, int]:
    """(flowleaks' level, the libraries' level) for a count of -v."""
    own = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    libs = {0: logging.WARNING, 1: logging.WARNING, 2: logging.INFO}.get(verbosity, logging.DEBUG)
    return own, libs


def setup_logging(verbosity: int, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record to `stream` (stderr) through the redacting filter."""
    own, libs = levels(verbosity)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=libs, handlers=[handler], force=True)
    logging.getLogger(_OWN).setLevel(own)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(libs)
    logging.captureWarnings(True)  # a warning's text (it may name a URL) goes through the filter too
    if verbosity == 0:
        # A scan stopped by an error closes its event loop with connection attempts still pending, and
        # Python warns at exit that their coroutines were never awaited: nothing was lost, and the one
        # line naming the error is the report (-v still shows it).
        warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
    return handler
