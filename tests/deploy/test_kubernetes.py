"""The Kubernetes manifests: the files, the scan and merge CronJobs, and the pods' lines run for real
against the loopback fake Flow API."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy import SECRETISH
from tests.deploy.bicep import BICEP, azure_scan_script
from tests.deploy.commands import parse_cli
from tests.deploy.dockerfile import DOCKERFILE, DOCKERIGNORE, image_env, image_uid
from tests.deploy.kubernetes import (K8S, all_containers, applied, container_argv, daily, kustomization, load,
                                     merge_cronjob, only_container, pod, scan_cronjob, shard_count, shell_script,
                                     yaml_files)


# --------------------------------------------------------------------------------------------------
# Kubernetes: the files

def test_every_yaml_under_deploy_parses():
    files = yaml_files()
    assert len(files) >= 6
    for f in files:
        docs = load(f)
        assert docs, f"{f} is empty"
        for d in docs:
            assert isinstance(d, dict) and d.get("apiVersion") and d.get("kind"), f"{f}: not a Kubernetes object"


def test_the_kustomization_applies_the_manifests_and_never_the_placeholder_secret():
    k = kustomization()
    assert k["kind"] == "Kustomization"
    for r in k["resources"]:
        assert (K8S / r).is_file(), f"kustomization.yaml lists {r}, which does not exist"
    assert "secret.example.yaml" not in k["resources"], "a placeholder fingerprint key must never be applied"
    assert not any(d["kind"] == "Secret" for d in applied()), "Secrets are created out of band"
    images = {i["name"] for i in k.get("images", [])}
    for c in all_containers(applied()):
        assert c["image"].split(":")[0] in images, f"image {c['image']} is not set by kustomization.yaml"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_the_manifests():
    p = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    docs = [d for d in yaml.safe_load_all(p.stdout) if d]
    assert {d["kind"] for d in docs} >= {"Namespace", "PersistentVolumeClaim", "CronJob"}
    assert all(d["metadata"].get("namespace") == kustomization()["namespace"] for d in docs if d["kind"] != "Namespace")


def test_the_secret_example_holds_placeholders_only_and_every_reference():
    docs = load(K8S / "secret.example.yaml")
    names = {}
    for d in docs:
        assert d["kind"] == "Secret" and "data" not in d, "placeholders in stringData only"
        for key, value in d["stringData"].items():
            assert re.fullmatch(r"<[a-z0-9-]+>", value), f"{d['metadata']['name']}.{key}: {value!r} is not a <placeholder>"
        names[d["metadata"]["name"]] = set(d["stringData"])
    # every Secret the pods read is documented there, with the keys they read
    for c in all_containers(applied()):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in names.get(ref["name"], ()), f"{ref} is not in secret.example.yaml"
        for ef in c.get("envFrom", []):
            if "secretRef" in ef:
                assert ef["secretRef"]["name"] in names
    for cj in (scan_cronjob(), merge_cronjob()):
        for v in pod(cj).get("volumes", []):
            if "secret" in v and v["secret"]["secretName"] in names:
                continue
            if "secret" in v:
                assert v["secret"].get("optional") is True, f"volume {v['name']}: a Secret not documented must be optional"


def test_no_manifest_holds_a_secret_value():
    docs = [d for f in yaml_files() if f.name != "secret.example.yaml" for d in load(f)]
    assert not [d for d in docs if d.get("kind") == "Secret"]
    for c in all_containers(docs):
        for e in c.get("env", []):
            if SECRETISH.search(e["name"]):
                assert "value" not in e and "secretKeyRef" in e.get("valueFrom", {}), \
                    f"{c['name']}: {e['name']} must come from a Secret (secretKeyRef), not a literal"
        for ef in c.get("envFrom", []):
            assert set(ef) <= {"secretRef", "prefix"}, f"{c['name']}: envFrom {ef} (credentials only from Secrets)"


def test_every_flowleaks_container_has_the_one_fingerprint_key():
    refs = set()
    for c in all_containers(applied()):
        e = [e for e in c.get("env", []) if e["name"] == "FLOWLEAKS_FINGERPRINT_KEY"]
        assert e, f"{c['name']} has no FLOWLEAKS_FINGERPRINT_KEY: it would key its database by a new random key"
        ref = e[0]["valueFrom"]["secretKeyRef"]
        assert ref.get("optional") in (None, False), "the key must not be optional"
        refs.add((ref["name"], ref["key"]))
    assert len(refs) == 1, f"every shard and the merge must read the same key: {refs}"


def test_flowleaks_finds_no_secret_in_the_deployment_files(tmp_path):
    """flowleaks' own detectors over the files a deployment reads (manifests, template, Dockerfile)."""
    from tests.cli import flowleaks

    files = [*yaml_files(), BICEP, DOCKERFILE, DOCKERIGNORE]
    r = flowleaks("scan-files", "--jobs", "1", "--quiet", "--db", tmp_path / "d.duckdb", *files,
                  env={"FLOWLEAKS_FINGERPRINT_KEY": "test-deploy"})
    assert r.code == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------------------------------
# Kubernetes: the scan CronJob

def test_the_scan_is_an_indexed_job_of_n_shards():
    cj = scan_cronjob()
    assert cj["apiVersion"] == "batch/v1" and cj["kind"] == "CronJob"
    assert len(cj["spec"]["schedule"].split()) == 5
    assert cj["spec"]["concurrencyPolicy"] == "Forbid", "two nights at once would give a shard two writers"
    job = cj["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    n = shard_count()
    assert job["completions"] == job["parallelism"] == n, \
        f"completions {job['completions']}, parallelism {job['parallelism']}, FLOWLEAKS_SHARD_COUNT {n}: one N"
    restart = pod(cj)["restartPolicy"]
    assert restart in ("Never", "OnFailure")
    if "backoffLimitPerIndex" in job or "podFailurePolicy" in job:
        assert restart == "Never", "backoffLimitPerIndex and podFailurePolicy need restartPolicy Never"
    assert not any(e["name"] == "FLOWLEAKS_SHARD" for e in only_container(cj).get("env", [])), \
        "FLOWLEAKS_SHARD would give every pod the same shard"


def test_pod_failure_policies_name_the_containers():
    for cj in (scan_cronjob(), merge_cronjob()):
        job = cj["spec"]["jobTemplate"]["spec"]
        names = {c["name"] for c in pod(cj)["containers"]}
        for rule in job.get("podFailurePolicy", {}).get("rules", []):
            codes = rule.get("onExitCodes")
            if codes and "containerName" in codes:
                assert codes["containerName"] in names, f"podFailurePolicy names {codes['containerName']}"
            if codes:
                assert 0 not in codes["values"]


def test_pods_run_non_root_with_a_read_only_root_filesystem():
    uid, cache = image_uid(), image_env()["XDG_CACHE_HOME"]
    for cj in (scan_cronjob(), merge_cronjob()):
        spec = pod(cj)
        psc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, "flowleaks needs no Kubernetes API token"
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = {**psc, **c.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True
            assert sc.get("runAsUser") == uid, f"runAsUser {sc.get('runAsUser')}: the image's uid is {uid}"
            assert sc.get("allowPrivilegeEscalation") is False
            assert sc.get("readOnlyRootFilesystem") is True
            assert "ALL" in sc.get("capabilities", {}).get("drop", [])
            assert sc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            env_cache = next((e.get("value") for e in c.get("env", []) if e["name"] == "XDG_CACHE_HOME"), cache)
            for path in (env_cache, "/tmp"):
                assert path in mounts and "emptyDir" in volumes[mounts[path]], \
                    f"{c['name']}: {path} must be a writable emptyDir (the root filesystem is read-only)"
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{c['name']}: resources.{kind} cpu and memory"


def test_data_is_the_shared_read_write_many_claim():
    pvcs = {d["metadata"]["name"]: d for d in applied() if d["kind"] == "PersistentVolumeClaim"}
    for cj in (scan_cronjob(), merge_cronjob()):
        spec = pod(cj)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mount = [m for m in only_container(cj)["volumeMounts"] if m["mountPath"] == "/data"]
        assert mount and not mount[0].get("readOnly"), "/data is mounted read-write"
        claim = volumes[mount[0]["name"]]["persistentVolumeClaim"]["claimName"]
        assert claim in pvcs, f"claim {claim} is not in the kustomization"
        assert "ReadWriteMany" in pvcs[claim]["spec"]["accessModes"], "N pods on any nodes share /data"


def test_each_shard_pod_runs_a_flowleaks_scan_of_its_own_shard():
    """The pod's command line, parsed by flowleaks' own CLI for every index, and the shard flowleaks
    takes from that pod's environment (JOB_COMPLETION_INDEX, set by Kubernetes in an Indexed Job)."""
    pytest.importorskip("scanner.pipeline.shard", reason="--shard is not built yet")
    from scanner.pipeline.shard import Shard, resolve_shard

    c, n = only_container(scan_cronjob()), shard_count()
    dbs, summaries = set(), set()
    for k in range(n):
        name, params = parse_cli(container_argv(c, k))
        assert name == "scan"
        assert params["as_admin"] is True and params["quiet"] is True
        assert "shard" in params, "flowleaks scan has no --shard option"
        env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
        env["JOB_COMPLETION_INDEX"] = str(k)
        assert resolve_shard(params.get("shard"), env) == Shard(k, n)
        dbs.add(params["db"])
        summaries.add(params["summary_json"])
        assert params["db"].startswith("/data/") and params["summary_json"].startswith("/data/")
    assert len(dbs) == len(summaries) == n, "every shard writes its own database and summary"


def test_the_merge_merges_exactly_the_shard_databases():
    c = only_container(merge_cronjob())
    scan_c, n = only_container(scan_cronjob()), shard_count()
    shard_dbs = [parse_cli(container_argv(scan_c, k))[1]["db"] for k in range(n)]
    summaries = [parse_cli(container_argv(scan_c, k))[1]["summary_json"] for k in range(n)]
    argv = container_argv(c, None)
    assert argv[0] == "merge"
    out, patterns = argv[1], argv[2:]
    expanded = []
    for p in patterns:  # the shell's glob, over what the shards write
        hits = [f for f in [*shard_dbs, *summaries, out] if fnmatch.fnmatch(f, p)] if any(ch in p for ch in "*?[") else [p]
        expanded += hits
    assert sorted(expanded) == sorted(shard_dbs), f"merge would read {expanded}, the shards write {shard_dbs}"
    assert out.startswith("/data/") and out not in shard_dbs
    name, params = parse_cli(["merge", out, *expanded])
    assert name == "merge" and params["out"] == out and list(params["shards"]) == sorted(expanded)


def test_the_merge_starts_after_the_scan_can_have_ended():
    scan, merge = scan_cronjob()["spec"], merge_cronjob()["spec"]
    assert scan.get("timeZone") == merge.get("timeZone")
    assert merge["concurrencyPolicy"] == "Forbid"
    latest_end = (daily(scan["schedule"]) * 60 + scan.get("startingDeadlineSeconds", 0)
                  + scan["jobTemplate"]["spec"]["activeDeadlineSeconds"])
    assert latest_end <= daily(merge["schedule"]) * 60, \
        "the scan may still run when the merge starts (startingDeadlineSeconds + activeDeadlineSeconds)"


@pytest.mark.parametrize("code,expected", [(0, 0), (1, 0), (2, 2), (3, 3), (4, 4)])
def test_a_shard_with_open_findings_succeeds_and_every_other_failure_stays(tmp_path, code, expected):
    """The pods' shell line: exit 1 (open findings) is the shard's work done (the merge reports them);
    2, 3 and 4 fail the pod. Run with a stand-in flowleaks that exits with `code`."""
    for script in (shell_script(only_container(scan_cronjob())), azure_scan_script(0)):
        fake = tmp_path / "flowleaks"
        fake.write_text(f"#!/bin/sh\nexit {code}\n")
        fake.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "JOB_COMPLETION_INDEX": "0"}
        p = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == expected, p.stderr


def test_a_scan_pod_without_an_index_stops_before_flowleaks(tmp_path):
    fake = tmp_path / "flowleaks"
    fake.write_text("#!/bin/sh\necho ran >&2\nexit 0\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "JOB_COMPLETION_INDEX"}
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    p = subprocess.run(["/bin/sh", "-c", shell_script(only_container(scan_cronjob()))], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "ran" not in p.stderr  # a usage error: podFailurePolicy fails the Job


# --------------------------------------------------------------------------------------------------
# Kubernetes: the pods' lines, run for real against the loopback fake Flow API

def _run_pod(container: dict, data: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = shell_script(container).replace("/data/", f"{data}/")
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env}
    for e in container.get("env", []):
        if "value" in e:
            full[e["name"]] = e["value"].replace("/cache", str(data / ".cache"))
    return subprocess.run(["/bin/sh", "-c", script], env=full, capture_output=True, text=True, timeout=300)


def test_the_nightly_pods_run_as_written_against_the_fake_api(tmp_path):
    from tests.fakeapi import FakeFlowApi, Tenant

    tenant = Tenant.generate(seed=11, environments=2, flows_per_env=4, runs_per_flow=1)
    data, n = tmp_path / "data", shard_count()
    data.mkdir()
    key = {"FLOWLEAKS_FINGERPRINT_KEY": "test-deploy-key"}  # as the Secret would give it
    with FakeFlowApi(tenant) as api:
        for k in range(n):
            r = _run_pod(only_container(scan_cronjob()), data, {**api.env_vars(), **key, "JOB_COMPLETION_INDEX": str(k)})
            assert r.returncode == 0, r.stderr
            summary = json.loads((data / f"shard-{k}.json").read_text())
            assert summary["shard"] == {"index": k, "count": n} and summary["complete"] is True
            assert stat.S_IMODE((data / f"shard-{k}.duckdb").stat().st_mode) == 0o600
        merged = _run_pod(only_container(merge_cronjob()), data, key)
        assert merged.returncode == 1, merged.stdout + merged.stderr  # the planted secrets: open findings
        assert f"{n} of {n} shards" in merged.stdout
        assert stat.S_IMODE((data / "tenant.duckdb").stat().st_mode) == 0o600
        assert not list(data.glob("*.key")), "with the key from the Secret no key file is written"
        (data / f"shard-{n - 1}.duckdb").unlink()  # a shard that never ran
        again = _run_pod(only_container(merge_cronjob()), data, key)
        assert again.returncode == 3, again.stdout + again.stderr  # incomplete, never clean
