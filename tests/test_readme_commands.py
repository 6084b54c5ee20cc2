"""The README matches the program: every example command in its ```sh blocks runs as written.

Each line of a ```sh block is run by bash in a scratch directory that looks like the README's world:
`flowleaks` and `.venv/bin/flowleaks` are the installed console script, `flowleaks.duckdb` and
`demo-output/demo.duckdb` are copies of the demo database, the files the examples name exist (with a
planted fake secret), and FLOWLEAKS_* point at the replayed sample tenant. Placeholders (`<flow-id>`,
`Default-<tenant>`, `/var/lib/flowleaks/`…) are substituted; nothing else is changed. A command that
would reach a real service (Key Vault, Dataverse, an Entra ID sign-in) or is not flowleaks (make, m365,
az) is left out, by a rule below that says why. Each command must exit with its documented code.

Also here: every skip reason in the code is documented, and the option/variable claim holds.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import click
import duckdb
import pytest

from scanner.cli.main import cli
from tests.cli import ROOT, installed_cli
from tests.demo_db import copy_demo_database, demo_database, replay
from tests.posture.posture_fixtures import DEPLOYMENT_SETTINGS, RISKY, solution_zip

README = ROOT / "README.md"
# A fake GitHub token, valid nowhere: what the example files hold so that scan-files has a finding.
FAKE = "ghp_" + hashlib.sha256(b"flowleaks README example").hexdigest()[:36]


def sh_commands(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return lines


def program(line: str) -> tuple[str, list[str]]:
    """The command a line runs (after `VAR=value` words, the last stage of a pipeline) and its words."""
    words = shlex.split(line, comments=True)
    if "|" in words:
        words = words[len(words) - words[::-1].index("|"):]
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]
    if words and words[0] == "eval":  # eval "$(_FLOWLEAKS_COMPLETE=bash_source flowleaks)"
        return "completion", words
    return (words[0].rsplit("/", 1)[-1] if words else ""), words


def why_not_run(line: str) -> str | None:
    prog, words = program(line)
    if prog not in ("flowleaks", "completion"):
        return f"not flowleaks ({prog})"
    if any(w.startswith("--known-vault") and w != "--known-vault-versions" for w in words):
        return "reaches Azure Key Vault"
    if any(w.startswith("--dataverse-url") for w in words):
        return "reaches Dataverse"
    if "--auth" in words:
        return "signs in to Entra ID"
    return None


def expected_code(line: str) -> int:
    """The code the README documents for this command on the demo database."""
    prog, words = program(line)
    if prog == "completion" or "--help" in words:
        return 0
    sub = words[1]
    # sweep/scan/scan-files: 1 = open findings (the demo tenant and the example files hold secrets);
    # lint: 1 = a finding at or above --fail-on (the example definitions are risky ones)
    # merge: 1 = the merged shards hold open findings
    return 1 if sub in ("sweep", "scan", "scan-files", "lint", "merge") else 0


def make_world(tmp: Path, base: Path) -> dict[str, str]:
    """The scratch directory's files, and the placeholder substitutions taken from the demo."""
    copy_demo_database(base, tmp / "flowleaks.duckdb")
    copy_demo_database(base, tmp / "demo-output" / "demo.duckdb")
    bin_dir = tmp / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "flowleaks").symlink_to(installed_cli())
    con = duckdb.connect(str(demo_database(base)), read_only=True)
    try:
        env_name, flow_id, flow_name = con.execute(
            "SELECT f.environment, f.flow_id, fl.display_name FROM findings f JOIN flows fl USING (environment, flow_id) "
            "WHERE f.run_id IS NOT NULL ORDER BY f.environment, f.flow_id LIMIT 1").fetchone()
        run_id = con.execute("SELECT run_id FROM runs WHERE environment = ? AND flow_id = ? ORDER BY run_id LIMIT 1",
                             [env_name, flow_id]).fetchone()[0]
        fingerprint = con.execute("SELECT fingerprint FROM findings WHERE fingerprint IS NOT NULL "
                                  "ORDER BY finding_id LIMIT 1").fetchone()[0]
    finally:
        con.close()
    # the files the scan-files and lint examples name, each with the fake secret planted
    body = {"statusCode": 200, "body": {"token": FAKE}}
    (tmp / "run.json").write_text(json.dumps({
        "name": run_id, "id": f"/providers/Microsoft.ProcessSimple/environments/{env_name}/flows/{flow_id}/runs/{run_id}",
        "properties": {"status": "Succeeded"}, "actions": {"HTTP": {"input": {"uri": "https://example.com"},
                                                                     "output": body}}}))
    (tmp / "exports").mkdir()
    (tmp / "exports" / "HTTP-outputs.json").write_text(json.dumps(body))
    (tmp / "tickets").mkdir()
    (tmp / "tickets" / "4411-attachment.txt").write_text(f"the partner sent: Authorization: token {FAKE}\n")
    lines = "".join(json.dumps({"n": i, "headers": {"x-api-key": FAKE}}) + "\n" for i in range(2))
    (tmp / "history.jsonl").write_text(lines)
    (tmp / "history-2026-11.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    outputs = tmp / "runs" / run_id / "actions" / "HTTP" / "contents"
    outputs.mkdir(parents=True)
    (outputs / "ActionOutputs.json").write_text(json.dumps(body))
    (tmp / "sha256-of-values.txt").write_text(hashlib.sha256(FAKE.encode()).hexdigest() + "\n")
    (tmp / "MySolution_managed.zip").write_bytes(solution_zip({"Invoice": RISKY}))
    (tmp / "flow-definition.json").write_text(json.dumps({"properties": {"definition": RISKY}}, indent=2))
    (tmp / "deploymentSettings.json").write_text(json.dumps(DEPLOYMENT_SETTINGS, indent=2))
    for d in ("var/lib/flowleaks", "var/log/flowleaks", "home"):
        (tmp / d).mkdir(parents=True)
    return {"Default-<tenant>": env_name, "<flow-id>": flow_id, "<flow name>": flow_name, "<run>": run_id,
            "<fingerprint>": fingerprint, "3f2a9c…e1": fingerprint,
            "/var/lib/flowleaks/": f"{tmp}/var/lib/flowleaks/", "/var/log/flowleaks/": f"{tmp}/var/log/flowleaks/"}


def test_every_readme_example_command_runs_as_written(tmp_path, tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "demo-db"
    lines = sh_commands(README.read_text())
    world = tmp_path / "world"
    world.mkdir()
    subs = make_world(world, base)
    failures, ran, left_out = [], set(), []
    with replay() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEAKS_")}
        env.update(server.env(), HOME=str(world / "home"), LEAKED_KEY=FAKE, SHARED_KEY="readme-shared-key",
                   PATH=f"{world / '.venv' / 'bin'}{os.pathsep}{Path(installed_cli()).parent}{os.pathsep}"
                        f"{env.get('PATH', '')}")
        for line in lines:
            reason = why_not_run(line)
            if reason:
                left_out.append((line, reason))
                continue
            cmd = line
            for placeholder, value in subs.items():
                cmd = cmd.replace(placeholder, value)
            assert "<" not in cmd.split("#")[0], f"unsubstituted placeholder in {line!r}"
            if program(line)[0] == "completion":  # and the completion it evaluated is registered
                cmd += "\ncomplete -p flowleaks"
            p = subprocess.run(["bash", "-c", "set -o pipefail\n" + cmd], cwd=world, env=env, capture_output=True,
                               text=True, timeout=120)
            want = expected_code(line)
            prog, words = program(line)
            ran.add("completion" if prog == "completion" else words[1])
            if "--help" in words:
                ran.add("--help")
            if p.returncode != want:
                failures.append(f"{line}\n  exit {p.returncode}, documented {want}\n  "
                                f"{(p.stderr or p.stdout).strip()[-600:]}")
        assert server.content_auth_headers_seen == []
    assert not failures, "\n".join(failures)
    # every kind of example is among those run: a README whose sh blocks were lost would not pass
    assert {"sweep", "scan", "scan-files", "query", "export", "suppress", "suppressions", "lint", "record",
            "completion", "--help"} <= ran, ran
    assert len(left_out) < len(lines) / 3, left_out


# -- the README documents what the code says -----------------------------------------------------

def _reasons_in_code() -> set[str]:
    """Every `skipped.reason` the code can write: strings given to a parameter named `reason` (by
    keyword; by position in a `skip(…)` call whose def names it, or in building a record class with a
    `reason` field; or assigned to a `reason` name or attribute), names resolved through module
    constants."""
    sources = [p for d in ("scanner", "detectors") for p in (ROOT / d).rglob("*.py")]
    trees = {p: ast.parse(p.read_text()) for p in sources}
    consts: dict[str, list[str]] = {}
    reason_index: dict[Path, int] = {}
    record_index: dict[str, int] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    names = [t] if isinstance(t, ast.Name) else list(getattr(t, "elts", []))
                    values = [node.value] if isinstance(t, ast.Name) else list(getattr(node.value, "elts", []))
                    for n, v in zip(names, values):
                        if isinstance(n, ast.Name) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                            consts.setdefault(n.id, []).append(v.value)
            if isinstance(node, ast.ClassDef):  # Problem(path, reason, detail), Unlisted(name, reason, …)
                fields = [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)
                          and isinstance(n.target, ast.Name)]
                if "reason" in fields:
                    record_index[node.name] = fields.index("reason")
            if isinstance(node, ast.FunctionDef) and node.name == "skip":
                args = [a.arg for a in node.args.args if a.arg != "self"]
                if "reason" in args:
                    reason_index[path] = args.index("reason")
    # the sweep calls the crawl's skip: wherever in scanner/pipeline/ it is defined
    crawl_index = next(i for p, i in reason_index.items() if p.parent == ROOT / "scanner" / "pipeline")

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name) and node.id.isupper():
            return consts.get(node.id, [])
        if isinstance(node, (ast.IfExp, ast.Tuple)):
            return [s for child in ast.iter_child_nodes(node) for s in strings(child)]
        return []

    found: set[str] = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                found.update(s for kw in node.keywords if kw.arg == "reason" for s in strings(kw.value))
                i = record_index.get(getattr(node.func, "id", None), -1)
                if 0 <= i < len(node.args):
                    found.update(strings(node.args[i]))
                if isinstance(node.func, ast.Attribute) and node.func.attr == "skip":
                    i = reason_index.get(path, crawl_index)
                    if len(node.args) > i:
                        found.update(strings(node.args[i]))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    first = t.elts[0] if isinstance(t, ast.Tuple) else t
                    name = getattr(first, "id", None) or getattr(first, "attr", None)
                    if name == "reason" and node.value is not None:
                        v = node.value.elts[0] if isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                            else node.value
                        found.update(strings(v))
    from scanner.skip_reasons import NON_BLOCKING_SKIPS

    return found | set(NON_BLOCKING_SKIPS)


def test_every_skip_reason_in_the_code_is_documented():
    reasons = _reasons_in_code()
    # the extraction itself works: reasons from each kind of source are among those found
    assert {"secured", "throttled", "nextLink loop", "too deep", "dataverse unavailable", "not found",
            "archive", "known values unavailable"} <= reasons, reasons
    readme = README.read_text()
    missing = sorted(r for r in reasons if f"`{r}`" not in readme)
    assert not missing, f"skip reasons not documented in README.md: {missing}"


def test_every_posture_rule_is_in_the_readme_rule_table():
    from scanner.posture.rules import RULES

    readme = README.read_text()
    assert "PA008" in RULES
    missing = [rid for rid in RULES if not re.search(rf"^\| {rid} \|", readme, re.M)]
    assert not missing, missing


# Flags only, on purpose: a selection a stray variable would narrow silently (a scan that reads as
# clean), stdin that a variable would make every run wait on, or what one run writes.
FLAGS_ONLY = {"environments", "flows", "since", "until", "days", "status", "known_values_stdin", "paths", "out",
              "keep_secrets", "map_origin", "help"}


@pytest.mark.parametrize("name", ["sweep", "scan", "scan-files", "record"])
def test_every_option_is_an_environment_variable_or_documented_as_a_flag(name):
    command = cli.commands[name]
    readme = README.read_text()
    for p in command.params:
        if p.name in FLAGS_ONLY:
            continue
        assert isinstance(p, click.Option) and p.envvar, f"{name} {p.opts}: no FLOWLEAKS_* variable"
        for var in [p.envvar] if isinstance(p.envvar, str) else p.envvar:
            assert var.startswith("FLOWLEAKS_"), var
            assert f"`{var}`" in readme, f"{var} ({name} {p.opts[0]}) is not in the README's table"
    flags_only = [p.opts[0] for p in command.params if p.name in FLAGS_ONLY and isinstance(p, click.Option)
                  and not p.hidden]
    for opt in flags_only:  # the README says which options are flags only
        assert f"`{opt}`" in readme, opt


def test_summary_names_the_kind_and_prints_the_details_command_whole(tmp_path):
    """A sweep's header says `sweep`; the Details command is alone on its line, unwrapped even with a
    database path longer than the 140 columns of piped output, and runs when pasted."""
    from tests.fakeapi import FakeFlowApi, Tenant

    db = tmp_path / ("a-rather-long-directory-name-for-the-database-" * 3) / "incident response.duckdb"
    db.parent.mkdir()
    with FakeFlowApi(Tenant.generate(seed=3, environments=1, flows_per_env=2, runs_per_flow=1)) as api:
        p = subprocess.run([installed_cli(), "sweep", "--as-admin", "--quiet", "--db", str(db)],
                           env={**os.environ, **api.env_vars()}, capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1), p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("flowleaks sweep "), lines[0]
    details = lines[lines.index(next(ln for ln in lines if ln.endswith("Details:"))) + 1]
    words = shlex.split(details)
    assert words[:2] == ["flowleaks", "query"] and words[-2:] == ["--db", str(db)], details
    pasted = subprocess.run(["bash", "-c", details.strip()], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{Path(installed_cli()).parent}{os.pathsep}{os.environ['PATH']}"})
    assert pasted.returncode == 0, pasted.stderr
