"""The Azure Container Apps jobs (deploy/azure/containerapps-jobs.bicep)."""
from __future__ import annotations

import fnmatch
import re

from tests.deploy import SECRETISH
from tests.deploy.bicep import azure_scan_script, bicep, bicep_args, bicep_param_default
from tests.deploy.commands import flowleaks_argv, parse_cli


def test_container_apps_jobs_pass_the_shard_on_the_command_line():
    text, n = bicep(), int(bicep_param_default("shardCount"))
    assert re.search(r"resource scanJobs 'Microsoft\.App/jobs@[\d-]+' = \[for k in range\(0, shardCount\)", text)
    # a job's replicas get no index: one replica per job, the shard on its command line
    assert re.search(r"scheduleTriggerConfig: \{\s*cronExpression: scanCron\s*parallelism: 1\b", text)
    dbs = set()
    for k in range(n):
        name, params = parse_cli(flowleaks_argv(azure_scan_script(k)))
        assert name == "scan" and params["as_admin"] is True and params["auth_method"] == "managed-identity"
        assert params["shard"] == f"{k}/{n}"
        dbs.add(params["db"])
    assert len(dbs) == n
    merge = bicep_args()[1]
    argv = flowleaks_argv(merge)
    assert argv[0] == "merge" and fnmatch.fnmatch(sorted(dbs)[0], argv[2]) and all(fnmatch.fnmatch(d, argv[2]) for d in dbs)
    parse_cli(["merge", argv[1], *sorted(dbs)])


def test_container_apps_jobs_hold_no_secret_value():
    text = bicep()
    for block in re.findall(r"env: \[(.*?)\n          \]", text, re.S):
        for name, rest in re.findall(r"name: '([A-Z_]+)'[^\n]*\n\s*(\w+):", block):
            if SECRETISH.search(name):
                assert rest == "secretRef", f"{name} must be a secretRef, not a literal"
    for block in re.findall(r"secrets: \[(.*?)\n      \]", text, re.S):
        assert "keyVaultUrl:" in block and not re.search(r"\bvalue:", block), "secrets only as Key Vault references"
    assert "FLOWLEAKS_FINGERPRINT_KEY" in text and text.count("secretRef: 'fingerprint-key'") == 2
    assert not re.search(r"@secure\(\)", text), "no secret parameter either: identities and Key Vault only"
