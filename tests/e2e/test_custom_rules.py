"""Custom rule packs in gitleaks' format (`--rules`, `--rules-only`, FLOWLEAKS_RULES) and `flowleaks rules`,
through the installed CLI. Every token here is fake (random characters made for the test)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import KEY, flowleaks, fp, rows

ACME = "acme_q8w2e7r4t6y1u3i9o5p0a2s4d6f8g0h2"
ALLOWED = "acme_00000000000000000000000000000000"      # the pack's top-level allowlist regex
STOPPED = "acme_sample0r4t6y1u3i9o5p0a2s4d6f8g0h"      # contains the rule's stopword
GITHUB = "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu"    # a built-in rule's shape

PACK = """
title = "ACME pack (gitleaks format)"

[allowlist]
regexes = ['''acme_0{32}''']

[[rules]]
id = "acme-token"
description = "ACME internal API token"
regex = '''\\b(acme_[a-z0-9]{32})\\b'''
keywords = ["acme_"]
[rules.allowlist]
stopwords = ["sample"]

[[rules]]
id = "acme-keyfile"
description = "a path-only rule: nothing to do with payloads"
path = '''\\.acme$'''
"""


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, Path]:
    pack = tmp_path / "pack.toml"
    pack.write_text(PACK)
    d = tmp_path / "dir"
    d.mkdir()
    (d / "run.json").write_text(json.dumps({"a": f"token {ACME} ok", "b": ALLOWED, "c": STOPPED, "d": GITHUB}))
    # more than one batch of small files, so `-j 2` scans in worker processes, which must honour the pack
    for i in range(70):
        (d / f"filler{i:02}.json").write_text(json.dumps({"i": i, "note": "nothing here"}))
    return pack, d


def _scan(tmp_path: Path, *args: object, env: dict | None = None):
    db = tmp_path / "x.duckdb"
    if db.exists():
        db.unlink()
    r = flowleaks("scan-files", "--quiet", "--db", db, "-j", "2", *args,
                  env={"FLOWLEAKS_FINGERPRINT_KEY": KEY, **(env or {})})
    found = {(rule, path, f) for rule, path, f in
             rows(db, "SELECT rule_id, json_path, fingerprint FROM findings")} if db.exists() else set()
    return r, found


def test_a_custom_pack_finds_its_token_and_honours_allowlist_and_stopword(tmp_path, tree):
    pack, d = tree
    r, found = _scan(tmp_path, "--rules", pack, d)
    assert r.code == 1, r.stderr
    assert ("acme-token", "$.a", fp(ACME)) in found
    assert not {f for f in found if f[2] in (fp(ALLOWED), fp(STOPPED))}, found
    assert ("github-token", "$.d", fp(GITHUB)) in found  # the built-in rules still run
    assert "rule 'acme-keyfile' matches file paths only; ignored" in r.stderr
    assert ACME not in r.stdout + r.stderr


def test_rules_only_drops_the_builtin_rules(tmp_path, tree):
    pack, d = tree
    r, found = _scan(tmp_path, "--rules", pack, "--rules-only", d)
    assert r.code == 1, r.stderr
    assert {(rule, path) for rule, path, _ in found} == {("acme-token", "$.a")}


def test_the_rules_variable_takes_a_path_list(tmp_path, tree):
    pack, d = tree
    other = tmp_path / "other.toml"
    other.write_text('[[rules]]\nid = "zeta-token"\nregex = \'\'\'zeta_[0-9a-f]{20}\'\'\'\n')
    (d / "zeta.json").write_text(json.dumps({"z": "zeta_0a1b2c3d4e5f6a7b8c9d"}))
    r, found = _scan(tmp_path, "--rules-only", d, env={"FLOWLEAKS_RULES": os.pathsep.join([str(pack), str(other)])})
    assert r.code == 1, r.stderr
    assert {(rule, path) for rule, path, _ in found} == {("acme-token", "$.a"), ("zeta-token", "$.z")}


def test_the_engine_version_follows_the_pack(tmp_path, tree):
    # the cache digest: a changed pack must not reuse results scanned with the old one
    from detectors.custom import load_packs
    from detectors.engine import Engine

    pack, _ = tree
    one = Engine(custom=load_packs([str(pack)])).version
    assert one != Engine().version
    assert one != Engine(custom=load_packs([str(pack)], rules_only=True)).version
    pack.write_text(PACK.replace("{32}", "{33}"))
    assert Engine(custom=load_packs([str(pack)])).version != one


@pytest.mark.parametrize("body,why", [
    ('[[rules]]\nid = "broken"\nregex = \'\'\'acme_([a-z\'\'\'\n', "rule 'broken': regex does not compile"),
    ('[[rules]]\nid = "github-token"\nregex = \'\'\'x{9}\'\'\'\n', "rule 'github-token': a built-in rule has this id"),
    ('[[rules]\n', "not valid TOML"),
])
def test_an_unusable_pack_is_a_one_line_usage_error(tmp_path, body, why):
    bad = tmp_path / "bad.toml"
    bad.write_text(body)
    (tmp_path / "d.json").write_text("{}")
    for args in (("scan-files", "--db", tmp_path / "x.duckdb", "--rules", bad, tmp_path / "d.json"),
                 ("rules", "--rules", bad)):
        r = flowleaks(*args)
        assert r.code == 2, (args, r.stderr)
        assert why in r.stderr and str(bad) in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_rules_lists_every_rule_as_json_and_table(tmp_path, tree):
    pack, _ = tree
    r = flowleaks("rules", "--format", "json")
    assert r.code == 0, r.stderr
    listed = json.loads(r.stdout)
    from detectors.registry import rules_by_id

    assert [x["id"] for x in listed] == list(rules_by_id())
    by = {x["id"]: x for x in listed}
    assert by["github-token"]["source"] == "detect-secrets plugin GitHubTokenDetector"
    assert by["logic-apps-trigger-url"]["source"] == "flowleaks built-in" and by["logic-apps-trigger-url"]["examples"] > 0
    assert set(listed[0]) == {"id", "description", "provider", "family", "kind", "confidence", "source", "examples"}
    with_pack = {x["id"]: x for x in json.loads(flowleaks("rules", "--rules", pack, "--format", "json").stdout)}
    assert with_pack["acme-token"]["source"] == f"custom pack {pack}"
    assert with_pack["acme-token"]["examples"] == 0 and with_pack["acme-token"]["confidence"] == "high"
    only = json.loads(flowleaks("rules", "--rules", pack, "--rules-only", "--format", "json").stdout)
    assert [x["id"] for x in only] == ["acme-token", "known-value"]
    table = flowleaks("rules", env={"COLUMNS": "200"})
    assert table.code == 0 and "github-token" in table.stdout and f"{len(listed)} rules" in table.stdout
