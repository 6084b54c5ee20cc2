"""How the CLI shows an error: click's own wording and exit 2 for the plain errors the rest of the
scanner raises (scanner/errors.py knows no click), and a command's own failure (`CommandError`)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click

from scanner.errors import BadValue, InputError, UsageError


class CommandError(click.ClickException):
    """A failure the command reports itself: the message on stderr, exit 2 (or the code given)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def click_error(exc: UsageError | InputError) -> click.ClickException:
    """The click exception that shows a plain error (scanner/errors.py) as click shows its own: a
    UsageError or BadValue after the command's usage line, an InputError on one line; all exit 2."""
    if isinstance(exc, BadValue):
        return click.BadParameter(str(exc), param_hint=exc.option)
    if isinstance(exc, UsageError):
        return click.UsageError(str(exc))
    return CommandError(str(exc))


def plain_errors(callback: Callable) -> Callable:
    """A command callback whose plain errors become click's. Raised inside the callback, click
    attaches the command's context to them, so the usage line names that command."""
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except (UsageError, InputError) as exc:
            raise click_error(exc) from None

    return run
