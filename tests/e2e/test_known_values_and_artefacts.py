"""Known values (Key Vault, stdin, hashes) end to end, and the non-negotiable: no artefact holds a secret."""
from __future__ import annotations

import hashlib
import json
import os
import stat


from tests.e2e.conftest import assert_nothing_leaks, cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi


def test_known_values_are_found_and_no_artefact_holds_a_secret(tenant, tmp_path):
    db = tmp_path / "f.duckdb"
    visible = [p for p in tenant.iter_plants() if not p.secured]
    stdin_secret = next(p.secret for p in visible if p.kind == "github_token")
    hashed_secret = next(p.secret for p in visible if p.kind == "api_key_header")
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(hashlib.sha256(hashed_secret.encode()).hexdigest() + "\n")
    summary = tmp_path / "summary.json"
    with FakeFlowApi(tenant) as api:
        env = cli_env(api, db)
        sweep = flowleaks("sweep", "--as-admin", "--known-vault", api.vault_url, "--known-values-stdin",
                          "--known-hashes", str(hashes), "--summary-json", str(summary), env=env,
                          stdin=f"{stdin_secret}\nshort\n")
        assert sweep.code == 1, sweep.stderr
        token = api.token
    known = rows(db, "SELECT DISTINCT known_secret FROM findings WHERE detector = 'known_value'")
    sources = {k[0] for k in known}
    assert "stdin:1" in sources
    assert str(hashes) + ":1" in sources
    vault_hits = {s.rsplit("/", 1)[-1] for s in sources if "/" in s and not s.startswith("/")}
    exposed_vault = {name for name, value in tenant.vault_secrets.items()
                     if any(p.secret == value for p in visible)}
    assert exposed_vault and exposed_vault <= vault_hits
    assert "known values: " in sweep.stdout

    outputs = [sweep.stdout, sweep.stderr]
    files = [db, summary]
    for fmt in ("jsonl", "csv", "sarif", "parquet"):
        out = tmp_path / f"findings.{fmt}"
        r = flowleaks("export", "--format", fmt, "--out", str(out), env=env)
        assert r.code == 0, r.stderr
        files.append(out)
        outputs += [r.stdout, r.stderr]
    q = flowleaks("query", "SELECT * FROM findings", "--format", "json", env=env)
    outputs += [q.stdout, q.stderr]
    assert json.loads(summary.read_text())["complete"] is True

    secrets = tenant.secrets() | set(tenant.vault_secrets.values()) | {stdin_secret, token}
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # and their encodings (URL-encoded, JSON-escaped, base64): a reversible form is a leak too
    assert_nothing_leaks(secrets, db, files, outputs)


def test_older_vault_versions_are_loaded_on_request(tmp_path):
    from tests.fakeapi import Tenant

    tenant = Tenant.generate(seed=6, environments=1, flows_per_env=1, runs_per_flow=1)
    enabled_versions = sum(len(e.versions) for e in tenant.vault.values() if e.enabled)
    counts = {}
    with FakeFlowApi(tenant) as api:
        for flag in ((), ("--known-vault-versions",)):
            db = tmp_path / f"v{len(flag)}.duckdb"
            r = flowleaks("sweep", "--as-admin", "--quiet", "--known-vault", api.vault_url, *flag, env=cli_env(api, db))
            assert r.code == 1, r.stderr  # the flow's definition holds a hard-coded secret
            counts[bool(flag)] = int(r.stdout.split("known values: ")[1].split()[0])
    assert counts[False] == len(tenant.vault_secrets)
    assert counts[True] > counts[False] and counts[True] <= enabled_versions
