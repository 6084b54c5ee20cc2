"""`flowleaks` command line: the group, its global options, and the exit status of every command.
Exit codes: 0 complete and clean, 1 open findings, 2 usage error, 3 incomplete (something planned was
not scanned), 4 error (a rejected token, an unreachable sign-in host, or a bug).

Each command (or group of commands) is its own module in scanner/cli/, added by `_register()`."""
from __future__ import annotations

import sys

import click

from scanner import __version__
from scanner.cli.errors import plain_errors
from scanner.logs import setup_logging
from scanner.private import restrict_umask
from scanner.pipeline.sweep import EXIT_CLEAN, EXIT_ERROR, EXIT_FINDINGS, EXIT_USAGE


class _Commands(click.Group):
    """The flowleaks group. Code outside the CLI knows no click and raises plain errors
    (scanner/errors.py); every command added here shows them as click shows its own (`plain_errors`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if cmd.callback is not None:
            cmd.callback = plain_errors(cmd.callback)
        super().add_command(cmd, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flowleaks")
@click.option("-v", "--verbose", count=True,
              help="More log detail on stderr: -v progress, -vv each request (never secrets or tokens).")
def cli(verbose: int) -> None:
    """Find secrets leaked into Microsoft Power Automate run history.

    Start with `flowleaks sweep` (incident response over a time window) or `flowleaks scan` (the
    incremental nightly job); findings land in DuckDB for `flowleaks query`.
    """
    # Every line goes through the redacting filter: -v must never print a sig, token or secret.
    setup_logging(verbose)


def _register() -> None:
    """Commands that live in their own modules (one module per concept)."""
    from scanner.cli.export import export_command
    from scanner.cli.lint import lint_command
    from scanner.cli.merge import merge_command
    from scanner.cli.query import query_command
    from scanner.cli.rules import rules_command
    from scanner.cli.scan_files import scan_files_command
    from scanner.cli.sweep import scan, sweep
    from scanner.cli.record import record
    from scanner.cli.suppress import suppress_command, suppressions_command

    for command in (sweep, scan, record, lint_command, query_command, export_command, suppress_command,
                    suppressions_command, scan_files_command, rules_command, merge_command):
        cli.add_command(command)


_register()


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader closed the pipe


def main() -> None:
    """Console entry point: every command's code becomes the process exit status; an error never
    exits 1 ('findings'); an unexpected error exits 4 with one line."""
    restrict_umask()  # everything this process creates (DB, WAL, spill, exports) is owner-only
    sys.exit(_invoke())


def _invoke() -> int:
    try:
        # standalone_mode=False hands errors to us instead of exiting, and in exchange click *returns*
        # what the command returned (or the code of its ctx.exit): that value is the exit status.
        return _status(cli.main(standalone_mode=False))
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit:
        # click turns a closed stdout (`flowleaks query … | head -1`) into exit 1, which here means
        # "open findings"; the shell's convention for a reader that went away is 128 + SIGPIPE
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):  # click's wrapper after EPIPE
            return EXIT_BROKEN_PIPE
        raise
    except click.ClickException as exc:
        exc.show()
        # click's default ClickException code is 1, which here means "open findings": an error must
        # never read as findings, so it becomes a usage error (UsageError/BadParameter are 2 already).
        return EXIT_USAGE if exc.exit_code == EXIT_FINDINGS else exc.exit_code
    except click.exceptions.Abort as exc:
        # with standalone_mode=False click turns Ctrl-C (and EOF at a prompt) into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("flowleaks: interrupted; rerun to resume (findings so far are stored)", err=True)
        else:
            click.echo("aborted", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:  # outside a command's invocation (e.g. while the group parses)
        click.echo("flowleaks: interrupted; rerun to resume (findings so far are stored)", err=True)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001
        return _unexpected(exc)


def _status(rv: object) -> int:
    """A command that returns an int exits with it; one that returns nothing (or anything else) exits
    0, as in click's standalone mode. bool is not a code."""
    return rv if type(rv) is int else EXIT_CLEAN


def _unexpected(exc: Exception) -> int:
    """An expected failure (credentials, config, a file, the network, an HTTP answer) prints its own
    one-line message; only a bug says "unexpected", by type and place, with where to report it."""
    from scanner.net.auth import AuthConfigError
    from scanner.errors import ISSUES_URL, describe, is_expected
    from scanner.store.errors import StoreOpenError

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if is_expected(exc):
        click.echo(f"flowleaks: {describe(exc)}", err=True)
        # a wrong --db or missing credentials is bad input (2); a refused token or a dead host is an error (4)
        if isinstance(cause, StoreOpenError):
            return cause.exit_code
        return EXIT_USAGE if isinstance(cause, AuthConfigError) else EXIT_ERROR
    click.echo(f"flowleaks: stopped by an unexpected error: {describe(exc)} "
               f"(a bug in flowleaks: please report it at {ISSUES_URL})", err=True)
    return EXIT_ERROR
