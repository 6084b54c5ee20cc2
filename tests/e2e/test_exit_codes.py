"""The exit status of the installed `flowleaks`, for every command whose outcome is known.

0 complete and clean, 1 open findings, 2 usage error, 3 incomplete, 4 unexpected error. Each case
asserts one exact code: a CI gate must fail on findings and on bad input, and never read an error as
"findings" (1) or as clean (0). `sweep`/`scan` codes are covered in tests/hardening/test_exit_status.py.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scanner.store.database import Store
from tests.cli import ROOT, flowleaks
from tests.posture.posture_fixtures import MEDIUM_ONLY, RISKY, SAFE

ENV = {"FLOWLEAKS_FINGERPRINT_KEY": "exit-codes-key"}


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("defs")
    files = {"risky": json.dumps(RISKY), "safe": json.dumps(SAFE), "medium": json.dumps(MEDIUM_ONLY),
             "invalid": '{"triggers": {,}}'}
    for name, text in files.items():
        (d / f"{name}.json").write_text(text)
    return {name: d / f"{name}.json" for name in files} | {"missing": d / "missing.json"}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """An empty findings database with the current schema (no scan yet)."""
    path = tmp_path_factory.mktemp("db") / "empty.duckdb"
    Store(path).close()
    return path


def code(*args: object) -> int:
    r = flowleaks(*args, env=ENV)
    assert "Traceback" not in r.stderr, r.stderr
    return r.code


# --- lint: a CI gate ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, expected", [
    ("risky", [], 1),
    ("risky", ["--format", "json"], 1),
    ("risky", ["--format", "sarif"], 1),
    ("risky", ["--fail-on", "never"], 0),
    ("safe", [], 0),
    ("safe", ["--fail-on", "low"], 0),
    ("medium", [], 0),  # default --fail-on high
    ("medium", ["--fail-on", "high"], 0),
    ("medium", ["--fail-on", "medium"], 1),
    ("medium", ["--fail-on", "low"], 1),
    ("missing", [], 2),
    ("missing", ["--fail-on", "never"], 2),  # an input error is not a finding: --fail-on cannot hide it
    ("invalid", [], 2),
    ("invalid", ["--format", "json"], 2),
])
def test_lint(defs, name, options, expected):
    assert code("lint", defs[name], *options) == expected


def test_lint_invalid_json_is_one_line_with_the_position_and_no_summary(defs):
    r = flowleaks("lint", defs["invalid"], env=ENV)
    assert (r.code, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [
        f"flowleaks lint: {defs['invalid']}: not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1, column 15"]


def test_lint_missing_file_is_one_line_and_no_summary(defs):
    r = flowleaks("lint", defs["missing"], env=ENV)
    assert (r.code, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [f"flowleaks lint: {defs['missing']}: no such file or directory"]


def test_lint_names_unreadable_parts_of_a_definition_and_does_not_call_it_clean(tmp_path):
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"triggers": [], "actions": {"Compose": {"type": "Compose", "inputs": "x",
                                                                       "runtimeConfiguration": "secure"}}}))
    p = flowleaks("lint", str(odd))
    assert p.code == 2, p.stderr
    assert "definition unreadable at $.triggers (list, expected object)" in p.stderr
    assert "$.actions.Compose.runtimeConfiguration (str, expected object)" in p.stderr


@pytest.mark.parametrize("args", [
    ["lint"],  # no PATH
    ["lint", "--fail-on", "critical", "x.json"],
    ["lint", "--format", "yaml", "x.json"],
])
def test_lint_usage_errors(args):
    assert code(*args) == 2


# --- query / export / suppress / suppressions ---------------------------------------------------------

def test_query_ok_on_an_empty_database(db):
    assert code("query", "SELECT count(*) AS n FROM findings", "--db", db) == 0


@pytest.mark.parametrize("sql", [
    "SELEC 1",  # syntax error
    "SELECT * FROM no_such_table",
    "DELETE FROM findings",  # the connection is read-only
])
def test_query_sql_errors_exit_2(db, sql):
    r = flowleaks("query", sql, "--db", db, env=ENV)
    assert r.code == 2, r.stderr
    assert r.stderr.startswith("Error: ") and r.stdout == ""


def test_query_without_a_database_is_a_clear_error(tmp_path):
    r = flowleaks("query", "SELECT 1", "--db", tmp_path / "none.duckdb", env=ENV)
    assert r.code == 2
    assert f"no database at {tmp_path / 'none.duckdb'}" in r.stderr
    assert not (tmp_path / "none.duckdb").exists()  # read-only: it must not create one


def test_query_bad_format_exits_2(db):
    assert code("query", "SELECT 1", "--db", db, "--format", "xml") == 2


def test_export_ok_on_an_empty_database(db, tmp_path):
    assert code("export", "--format", "jsonl", "--out", tmp_path / "f.jsonl", "--db", db) == 0


@pytest.mark.parametrize("args", [
    ["--format", "xml"],  # unknown format
    ["--format", "csv", "--db", "{tmp}/none.duckdb"],  # missing database
    ["--format", "csv", "--out", "{tmp}/f.csv/inside.csv"],  # output cannot be written (a file as folder)
    ["--out", "{tmp}/f.csv"],  # --format is required
])
def test_export_errors_exit_2(db, tmp_path, args):
    args = [a.format(tmp=tmp_path) for a in args]
    (tmp_path / "f.csv").write_text("x")
    if "--out" not in args:
        args += ["--out", str(tmp_path / "f.out")]
    if "--db" not in args:
        args += ["--db", str(db)]
    assert code("export", *args) == 2


@pytest.mark.parametrize("args", [
    [],  # no target
    ["ab" * 32],  # --reason is required
    ["ab" * 32, "--reason", "  "],  # an empty reason
    ["ab" * 32, "--reason", "ok", "--expires", "31/12/2099"],
    ["ab" * 32, "--reason", "ok", "--expires", "2001-01-01"],  # in the past
    ["not-a-finding", "--reason", "ok"],  # no such finding id or fingerprint
])
def test_suppress_errors_exit_2(db, args):
    assert code("suppress", *args, "--db", db) == 2


def test_suppress_without_a_database_exits_2(tmp_path):
    assert code("suppress", "ab" * 32, "--reason", "ok", "--db", tmp_path / "none.duckdb") == 2


def test_suppress_an_unseen_fingerprint_exits_0(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path).close()
    assert code("suppress", "ab" * 32, "--reason", "public sample key", "--db", path) == 0


@pytest.mark.parametrize("args, expected", [
    ([], 0),
    (["--format", "json"], 0),
    (["--stale"], 2),  # no complete scan to judge staleness against
    (["--format", "xml"], 2),
    (["--no-such-flag"], 2),
])
def test_suppressions(db, args, expected):
    assert code("suppressions", *args, "--db", db) == expected


def test_suppressions_without_a_database_exits_2(tmp_path):
    assert code("suppressions", "--db", tmp_path / "none.duckdb") == 2


# --- the group ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"], ["lint", "--help"], ["query", "-h"],
                                  ["sweep", "--help"]])
def test_version_and_help_exit_0(args):
    assert code(*args) == 0


@pytest.mark.parametrize("args", [["no-such-command"], [], ["--no-such-flag"]])
def test_unknown_command_or_none_exits_2(args):
    assert code(*args) == 2


# --- main() itself: what any command's outcome becomes --------------------------------------------------

PROBE = textwrap.dedent("""
    import sys, click
    from scanner.cli.main import cli, main

    @cli.command("returns")
    @click.argument("n", type=int)
    def returns(n):
        return n

    @cli.command("ctx-exit")
    @click.argument("n", type=int)
    def ctx_exit(n):
        click.get_current_context().exit(n)

    @cli.command("click-error")
    def click_error():
        raise click.ClickException("something went wrong")  # click's default code is 1

    @cli.command("crash")
    def crash():
        raise RuntimeError("boom")

    sys.argv = ["flowleaks", *sys.argv[1:]]
    main()
""")


def probe(*args: str) -> subprocess.CompletedProcess:
    """main() with test-only commands added to the group (the installed script has no such commands)."""
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("how", ["returns", "ctx-exit"])
@pytest.mark.parametrize("n", [0, 1, 3])
def test_a_commands_code_reaches_the_process(how, n):
    assert probe(how, str(n)).returncode == n


def test_a_click_error_is_never_read_as_findings():
    p = probe("click-error")
    assert p.returncode == 2
    assert p.stderr == "Error: something went wrong\n"


def test_an_unexpected_error_exits_4_with_one_line():
    p = probe("crash")
    assert p.returncode == 4
    # the type and where it was raised, never the message (it may quote a payload) nor a traceback
    # ... and, being a bug, where to report it
    assert re.fullmatch(r"flowleaks: stopped by an unexpected error: RuntimeError at <string>:\d+ \(a bug in "
                        r"flowleaks: please report it at https://github\.com/flowleaks/flowleaks/issues\)\n",
                        p.stderr), p.stderr


def test_export_creates_missing_folders_like_every_output_path_and_refuses_a_file_as_folder(db, tmp_path):
    out = tmp_path / "new" / "sub" / "findings.csv"
    assert code("export", "--db", db, "--format", "csv", "--out", out) == 0
    assert out.is_file() and (out.stat().st_mode & 0o077) == 0
    (tmp_path / "plain").write_text("x")
    p = flowleaks("export", "--db", db, "--format", "csv", "--out", tmp_path / "plain" / "x.csv")
    assert p.code == 2 and "is a file, not a folder" in p.stderr


def test_a_reader_that_closes_the_pipe_is_not_reported_as_findings(db):
    """`flowleaks query … | head -1`: click would exit 1 ("open findings"); 141 is the shell's
    128 + SIGPIPE, and nothing is printed about it."""
    from tests.cli import installed_cli

    p = subprocess.Popen([installed_cli(), "query", "SELECT * FROM range(2000000)", "--format", "csv",
                          "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"range"
    p.stdout.close()  # the reader goes away, as `head -1` does
    err = p.stderr.read()
    assert p.wait(timeout=60) == 141
    assert b"Traceback" not in err and b"unexpected" not in err
