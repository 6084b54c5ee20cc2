"""Issue 10, items 5-8, through the installed CLI: feedback on known-value inputs, suppressions that
keep what they had, readable queries (line format, a scan holding the database), and a nightly
summary that says what is new."""
from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from tests.e2e.conftest import KEY, cli_env, flowleaks, installed_cli, rows
from tests.fakeapi import FakeFlowApi

VALUE = "harbour-qz7k-4411-falcon"  # not a shape any rule knows: only the known value finds it


def files_scan(tmp_path: Path, *args: object, stdin: str | None = None, db: str = "k.duckdb"):
    (tmp_path / "ticket.txt").write_text(f"step3 ok conn={VALUE};retry=0\n")
    return flowleaks("scan-files", "ticket.txt", "--quiet", "--db", db, *args, cwd=tmp_path, stdin=stdin,
                     env={"FLOWLEAKS_FINGERPRINT_KEY": KEY})


# -- 5. feedback on what the user gave ----------------------------------------------------------------

def test_sweep_says_what_it_loaded_from_stdin_and_hashes_and_what_it_dropped(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(f"# ours\n{hashlib.sha256(b'another-known-secret').hexdigest()}\nnot-a-digest\n\n"
                      f"{'ab' * 20}\n")
    summary = tmp_path / "summary.json"
    with FakeFlowApi(tenant) as api:
        r = flowleaks("sweep", "--as-admin", "--quiet", "--known-values-stdin", "--known-hashes", hashes,
                      "--summary-json", summary, env=cli_env(api, db), stdin=f"{VALUE}\nshort\n\n   \n")
    assert r.code == 1, r.stderr
    stdin_note = "known values: 1 from stdin; dropped 3 lines: 1 too short (under 6 characters), 2 empty"
    hash_note = (f"known hashes: 1 from {hashes}; dropped 3 lines: 2 not a SHA-256 hex digest "
                 "(64 hex characters, first at line 3), 1 empty")
    assert stdin_note in r.stdout and hash_note in r.stdout
    assert {stdin_note, hash_note} <= set(json.loads(summary.read_text())["notes"])
    for text in (r.stdout, r.stderr, summary.read_text()):
        assert VALUE not in text and "short" not in text.replace("too short", "")  # counts only


def test_an_input_with_nothing_usable_is_said_loudly(tmp_path):
    r = files_scan(tmp_path, "--known-values-stdin", stdin="short\n\nabc\n")
    assert r.code == 0, r.stderr  # nothing to find, and it says why
    assert ("known values: 0 from stdin (NOTHING TO MATCH from this input); dropped 3 lines: "
            "2 too short (under 6 characters), 1 empty") in r.stdout


def test_scan_files_gives_the_same_feedback(tmp_path):
    r = files_scan(tmp_path, "--known-values-stdin", stdin=f"{VALUE}\nshort\n")
    assert r.code == 1, r.stderr
    assert "known values: 1 from stdin; dropped 1 line: 1 too short (under 6 characters)" in r.stdout
    assert VALUE not in r.stdout + r.stderr


def test_stdin_from_a_terminal_says_it_waits_and_does_not_echo(tmp_path):
    (tmp_path / "ticket.txt").write_text(f"step3 ok conn={VALUE};retry=0\n")
    master, slave = pty.openpty()
    p = subprocess.Popen([installed_cli(), "scan-files", "ticket.txt", "--quiet", "--db", "t.duckdb",
                          "--known-values-stdin"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path, env={**os.environ, "FLOWLEAKS_FINGERPRINT_KEY": KEY})
    os.close(slave)
    try:
        waited, deadline = b"", time.monotonic() + 60
        while b"Ctrl-D" not in waited and time.monotonic() < deadline:
            if select.select([p.stderr], [], [], 1)[0]:
                waited += os.read(p.stderr.fileno(), 4096)
        # said before anything was typed: the process is blocked on the terminal, not hung
        assert b"reading known values from the terminal" in waited and p.poll() is None
        time.sleep(0.3)  # let it reach the read with echo switched off
        os.write(master, VALUE.encode() + b"\n")
        time.sleep(0.3)
        os.write(master, b"\x04")  # Ctrl-D: end of input
        out, err = p.communicate(timeout=60)
        echoed = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            echoed += chunk
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    assert p.returncode == 1, err
    assert b"known values: 1 from stdin" in out
    assert VALUE.encode() not in echoed + out + err  # typed secrets are not shown back


# -- 6. suppressions keep what they had ---------------------------------------------------------------

def _suppressions(db: Path) -> list[dict]:
    r = flowleaks("suppressions", "--db", db, "--format", "json")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def test_updating_a_suppression_keeps_what_is_not_given(tmp_path):
    files_scan(tmp_path, db="s.duckdb")  # a database with no findings
    db, fp = tmp_path / "s.duckdb", "ab" * 32
    until = (date.today() + timedelta(days=40)).isoformat()
    r = flowleaks("suppress", fp, "--reason", "sample key", "--expires", until, "--db", db)
    assert r.code == 0, r.stderr
    r = flowleaks("suppress", fp, "--reason", "duplicate of INC-12", "--db", db)
    assert r.code == 0, r.stderr
    assert "updated for unseen fingerprint" in r.stdout and f"until {until}" in r.stdout
    (s,) = _suppressions(db)
    assert s["reason"] == "duplicate of INC-12" and str(s["expires_at"]).startswith(until)
    r = flowleaks("suppress", fp, "--expires", "never", "--db", db)  # extend for good; the reason stays
    assert r.code == 0 and "with no expiry" in r.stdout, r.stderr
    (s,) = _suppressions(db)
    assert s["reason"] == "duplicate of INC-12" and s["expires_at"] is None
    r = flowleaks("suppress", "cd" * 32, "--expires", until, "--db", db)  # a new one needs a reason
    assert r.code == 2 and "--reason is required" in r.stderr


def test_an_unknown_rule_is_refused_and_nothing_is_stored(tmp_path):
    files_scan(tmp_path, db="s.duckdb")
    db = tmp_path / "s.duckdb"
    r = flowleaks("suppress", "ab" * 32, "--reason", "x", "--rule", "github-tokn", "--db", db)
    assert r.code == 2
    assert "'github-tokn' is not a flowleaks rule id; did you mean github-token?" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "PA008" in r.stderr
    assert _suppressions(db) == []
    r = flowleaks("suppress", "ab" * 32, "--reason", "x", "--rule", "pa003", "--db", db)
    assert r.code == 0, r.stderr  # posture rules count, spelled as findings spell them
    assert [s["rule_id"] for s in _suppressions(db)] == ["PA003"]


# -- 7. queries a person can read ---------------------------------------------------------------------

def test_a_wide_result_is_shown_one_value_per_line(tmp_path):
    assert files_scan(tmp_path, "--known-values-stdin", stdin=VALUE + "\n").code == 1
    db = tmp_path / "k.duckdb"
    wide = flowleaks("query", "SELECT * FROM open_findings", "--db", db, env={"COLUMNS": "100"})
    assert wide.code == 0, wide.stderr
    assert "┃" not in wide.stdout
    lines = wide.stdout.splitlines()
    assert any(line.strip() == "rule_id = known-value" for line in lines)
    assert len({line.index(" = ") for line in lines if " = " in line}) == 1  # names right-aligned
    forced = flowleaks("query", "SELECT * FROM open_findings", "--format", "table", "--db", db,
                       env={"COLUMNS": "100"})
    assert forced.code == 0 and "┃" in forced.stdout
    narrow = flowleaks("query", "SELECT rule_id, preview FROM open_findings", "--db", db, env={"COLUMNS": "100"})
    assert narrow.code == 0 and "┃" in narrow.stdout and " = " not in narrow.stdout
    asked = flowleaks("query", "SELECT rule_id, preview FROM open_findings", "--format", "line", "--db", db)
    assert asked.code == 0 and asked.stdout.splitlines()[0].strip() == "rule_id = known-value"


def test_query_while_a_scan_holds_the_database_says_so_in_one_line(tmp_path):
    files_scan(tmp_path, db="busy.duckdb")
    db = tmp_path / "busy.duckdb"
    writer = duckdb.connect(str(db))  # what a running scan holds
    try:
        r = flowleaks("query", "SELECT count(*) FROM findings", "--db", db)
    finally:
        writer.close()
    assert r.code == 4
    assert len(r.stderr.strip().splitlines()) == 1
    assert f"database {db} is being written by another process (PID {os.getpid()})" in r.stderr
    assert "rerun the query when the scan has finished" in r.stderr
    assert flowleaks("query", "SELECT count(*) FROM findings", "--db", db).code == 0  # and once it ends


# -- 8. the nightly summary says what is new ----------------------------------------------------------

def test_nightly_summary_lists_new_findings_and_counts_old_ones(tenant, tmp_path):
    db = tmp_path / "n.duckdb"

    def nightly(name: str):
        out = tmp_path / f"{name}.json"
        r = flowleaks("scan", "--as-admin", "--quiet", "--summary-json", out, env=cli_env(api, db))
        assert r.code == 1, r.stderr
        return r, json.loads(out.read_text())

    with FakeFlowApi(tenant) as api:
        api.show_runs_until(tenant.now - timedelta(days=3))
        first, s1 = nightly("first")
        api.show_runs_until(None)
        second, s2 = nightly("second")
        third, s3 = nightly("third")
    new2 = rows(db, "SELECT count(*) FROM findings WHERE first_scan_id = ? AND status = 'open'",
                [s2["scan_id"]])[0][0]
    assert s1["new_findings"] == s1["open_findings"] > 0 and s1["old_open_findings"] == 0
    assert 0 < new2 < s2["open_findings"]
    assert (s2["new_findings"], s2["old_open_findings"]) == (new2, s2["open_findings"] - new2)
    out = second.stdout
    assert f"{new2} new open findings (first seen in this scan)" in out
    assert f"{s2['old_open_findings']} older findings still open (first seen in an earlier" in out
    assert out.index("new open findings") < out.index("older findings still open")  # new first
    # the table holds only the new ones: its counts add up to new2, not to everything open
    table = [line for line in out.splitlines() if line.startswith("│")]
    assert sum(int(line.split("│")[3]) for line in table if line.split("│")[3].strip().isdigit()) == new2
    assert (s3["new_findings"], s3["old_open_findings"]) == (0, s3["open_findings"])
    assert "No new findings." in third.stdout and "new open finding" not in third.stdout
