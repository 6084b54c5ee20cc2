"""The command lines the deployment files run: the `flowleaks …` line of a shell script, with the
shard index substituted, and flowleaks' own click parser over it."""
from __future__ import annotations

import shlex

INDEX_REFS = ("$(JOB_COMPLETION_INDEX)", "${JOB_COMPLETION_INDEX}", "$JOB_COMPLETION_INDEX", "${K}", "$K")


def flowleaks_argv(script: str, index: int | None = None) -> list[str]:
    """The one `flowleaks …` (or `exec flowleaks …`) line of a shell script, as argv after the
    program name, with the shard index substituted."""
    lines = [ln.strip() for ln in script.splitlines()]
    lines = [ln[len("exec "):] if ln.startswith("exec ") else ln for ln in lines]
    calls = [ln for ln in lines if ln.startswith("flowleaks ")]
    assert len(calls) == 1, f"expected one flowleaks command line in the script, found {len(calls)}"
    line = calls[0].split(";")[0]
    for ref in INDEX_REFS:
        if index is not None:
            line = line.replace(ref, str(index))
    return shlex.split(line)[1:]


def parse_cli(argv: list[str]):
    """flowleaks' own click parser on argv (after the program name): the group, then the command.
    Returns (command name, its parameters). A missing command or option fails here, as it would in
    the container."""
    from scanner.cli.main import cli

    with cli.make_context("flowleaks", list(argv), resilient_parsing=False) as ctx:
        rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        name, cmd, args = cli.resolve_command(ctx, rest)
        assert cmd is not None, f"flowleaks has no command {rest[:1]}"
        with cmd.make_context(name, args, parent=ctx, resilient_parsing=False) as sub:
            return name, dict(sub.params)
