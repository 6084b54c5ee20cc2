"""The deployment files run as written (issue 15): the Dockerfile, .dockerignore, the Kubernetes
manifests under deploy/kubernetes and the Container Apps template under deploy/azure.

Static checks (no Docker, no cluster, no network): every YAML parses; the CronJobs are what a
sharded nightly scan needs (an Indexed Job of N pods, N said once per place and the places agreeing, a
merge that starts after the scan can have ended, non-root, read-only root, no secret value); every
command line the files run is accepted by flowleaks' own click parser, and each pod's environment gives
the shard it should. Then the Kubernetes pods' shell lines are run for real, against the loopback fake
of the Flow API, as Kubernetes would run them: N shards, then the merge.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
BICEP = DEPLOY / "azure" / "containerapps-jobs.bicep"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# env names that hold a credential or key: never a literal value in a manifest or the image
SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|(^|_)KEY($|_)|CREDENTIAL", re.I)
INDEX_REFS = ("$(JOB_COMPLETION_INDEX)", "${JOB_COMPLETION_INDEX}", "$JOB_COMPLETION_INDEX", "${K}", "$K")


# --------------------------------------------------------------------------------------------------
# helpers: Dockerfile

def dockerfile_instructions() -> list[tuple[int, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, stage, buf = [], -1, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        text, buf = buf + line, ""
        instr, _, args = text.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    return [(i, a) for s, i, a in ins if s == last]


def env_assignments(args: str) -> dict[str, str]:
    """ENV/ARG arguments: `A=1 B="2"`, or the legacy `ENV A 1`."""
    parts = shlex.split(args)
    if parts and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}
    return dict(p.split("=", 1) if "=" in p else (p, "") for p in parts)


def image_uid() -> int:
    users = [a for i, a in final_stage() if i == "USER"]
    assert users, "the runtime stage sets no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), (f"USER {users[-1]!r}: use a numeric uid (Kubernetes' runAsNonRoot cannot verify a "
                           "user name)")
    return int(uid)


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for i, a in final_stage():
        if i == "ENV":
            env.update(env_assignments(a))
    return env


# --------------------------------------------------------------------------------------------------
# helpers: .dockerignore, with Docker's semantics (moby/patternmatcher): patterns in order, the last
# that matches a path or one of its parent folders wins, `!` re-includes, `**` spans folders

def _pattern_regex(pattern: str) -> re.Pattern:
    rx, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                rx += "(.*/)?"
            else:
                rx += ".*"
            continue
        if c == "*":
            rx += "[^/]*"
        elif c == "?":
            rx += "[^/]"
        elif c == "[":
            j = pattern.index("]", i)
            rx += pattern[i:j + 1]
            i = j
        else:
            rx += re.escape(c)
        i += 1
    return re.compile(rx)


def dockerignore_rules() -> list[tuple[bool, str, re.Pattern]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pat = os.path.normpath(line[1:] if negated else line).lstrip("/")
        rules.append((negated, pat, _pattern_regex(pat)))
    return rules


def excluded(path: str, rules=None) -> bool:
    rules = dockerignore_rules() if rules is None else rules
    out = False
    parents = path.split("/")[:-1]
    for negated, pat, rx in rules:
        hit = bool(rx.fullmatch(path))
        n = len(pat.split("/"))
        if not hit and parents and n <= len(parents):
            hit = bool(rx.fullmatch("/".join(parents[:n])))
        if hit:
            out = not negated
    return out


# --------------------------------------------------------------------------------------------------
# helpers: Kubernetes

def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomization() -> dict:
    return load(K8S / "kustomization.yaml")[0]


def applied() -> list[dict]:
    """The objects `kubectl apply -k deploy/kubernetes` creates."""
    return [d for r in kustomization()["resources"] for d in load(K8S / r)]


def cronjob(name: str) -> dict:
    found = [d for d in applied() if d.get("kind") == "CronJob" and d["metadata"]["name"] == name]
    assert len(found) == 1, f"kustomization.yaml applies {len(found)} CronJob(s) named {name}"
    return found[0]


def scan_cronjob() -> dict:
    return cronjob("flowleaks-scan")


def merge_cronjob() -> dict:
    return cronjob("flowleaks-merge")


def pod(cj: dict) -> dict:
    return cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def only_container(cj: dict) -> dict:
    cs = pod(cj)["containers"]
    assert len(cs) == 1, "one container per pod"
    return cs[0]


def env_value(container: dict, name: str) -> str:
    found = [e for e in container.get("env", []) if e["name"] == name]
    assert found, f"container {container['name']} does not set {name}"
    assert "value" in found[0], f"{name} is not a literal value"
    return found[0]["value"]


def shard_count() -> int:
    return int(env_value(only_container(scan_cronjob()), "FLOWLEAKS_SHARD_COUNT"))


def shell_script(container: dict) -> str | None:
    """The script of a `/bin/sh -c SCRIPT` container, or None when flowleaks is exec'd directly."""
    cmd = container.get("command") or []
    if cmd[:1] in (["/bin/sh"], ["sh"]) and "-c" in cmd + container.get("args", [])[:1]:
        rest = cmd[cmd.index("-c") + 1:] if "-c" in cmd else container["args"][1:]
        rest = rest or container.get("args", [])
        return rest[0]
    return None


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


def container_argv(container: dict, index: int | None) -> list[str]:
    script = shell_script(container)
    if script is not None:
        return flowleaks_argv(script, index)
    assert container.get("command") in (None, ["flowleaks"]), "exec form must run the image's flowleaks"
    argv = list(container.get("args", []))
    return [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in argv]


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


def all_containers(docs: list[dict]):
    """Every container (and init container) of every pod template in these objects."""
    def walk(node):
        if isinstance(node, dict):
            for key in ("containers", "initContainers"):
                for c in node.get(key) or []:
                    if isinstance(c, dict) and "image" in c:
                        yield c
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
    for d in docs:
        yield from walk(d)


def daily(schedule: str) -> int:
    """Minutes after midnight of a daily 'M H * * *' schedule."""
    m, h, *rest = schedule.split()
    assert rest == ["*", "*", "*"] and m.isdigit() and h.isdigit(), f"not a daily schedule: {schedule!r}"
    return int(h) * 60 + int(m)


# --------------------------------------------------------------------------------------------------
# Dockerfile

def test_the_image_runs_as_a_fixed_non_root_user():
    uid = image_uid()
    assert uid != 0
    users = [a for i, a in final_stage() if i == "USER"]
    gid = users[-1].split(":")[1] if ":" in users[-1] else None
    assert gid is None or (gid.isdigit() and int(gid) != 0), "a non-root group too"
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", runs), f"the image creates no user with uid {uid}"


def test_the_image_bakes_in_no_secret():
    for stage, instr, args in dockerfile_instructions():
        if instr in ("ENV", "ARG"):
            for name in env_assignments(args):
                assert not SECRETISH.search(name), f"{instr} {name}: a credential or key baked into the image"
        if instr in ("COPY", "ADD"):
            assert not re.search(r"\.(key|pem|pfx|env|duckdb)\b", args), f"{instr} {args}: a key or database"
    assert not [a for _, i, a in dockerfile_instructions() if i == "ADD"], "ADD fetches and unpacks: use COPY"


def test_the_image_copies_only_the_package_sources():
    allowed = {"pyproject.toml", "README.md", "LICENSE", "scanner", "detectors"}
    for _, instr, args in dockerfile_instructions():
        if instr != "COPY" or "--from=" in args:
            continue
        srcs = [s for s in shlex.split(args) if not s.startswith("--")][:-1]
        for s in srcs:
            assert s.rstrip("/") in allowed, f"COPY {s}: the image needs only {sorted(allowed)}"


def test_the_entrypoint_is_flowleaks():
    entry = [a for i, a in final_stage() if i == "ENTRYPOINT"]
    assert entry, "no ENTRYPOINT"
    assert json.loads(entry[-1]) == ["flowleaks"], f"ENTRYPOINT {entry[-1]} (exec form, flowleaks alone)"


def test_data_and_cache_are_writable_by_the_image_user():
    uid, env = image_uid(), image_env()
    cache = env.get("XDG_CACHE_HOME")
    assert cache and cache.startswith("/"), "XDG_CACHE_HOME must point at a folder the user can write"
    volumes = [v for i, a in final_stage() if i == "VOLUME" for v in json.loads(a)]
    assert "/data" in volumes
    runs = [a for i, a in final_stage() if i == "RUN"]
    owned = [r for r in runs if re.search(rf"install -d -o {uid}\b", r)]
    assert owned and all(p in owned[0].split() for p in ("/data", cache)), \
        f"/data and {cache} must be created owned by uid {uid}"


def test_the_build_refuses_a_package_without_its_modules_or_rules():
    """The image is checked after install, from the installed copy: a package built without
    scanner/files or detectors/rules/*.toml fails the build rather than scanning with no rules."""
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    assert "import scanner.files" in runs and "catalogue.load()" in runs


def test_dockerignore_lets_in_only_the_package():
    rules = dockerignore_rules()
    for path in (".venv/bin/python", ".git/HEAD", "demo-output/demo.duckdb", "tenant.duckdb",
                 "scanner/stray.duckdb", "scanner/stray.duckdb.wal", "flowleaks.duckdb.key", "detectors/a.key",
                 "cassettes/sample-tenant.yaml", "tests/test_deploy.py", ".pytest_cache/v/x", ".hypothesis/x",
                 "build/lib/scanner/cli/main.py", "flowleaks.egg-info/PKG-INFO", "scanner/__pycache__/cli.cpython-311.pyc",
                 "deploy/kubernetes/cronjob.yaml", "benchmarks/crawl.py", "docs/decisions.md", ".env", "app.pem"):
        assert excluded(path, rules), f".dockerignore lets {path} into the build context"
    for path in ("pyproject.toml", "README.md", "LICENSE", "scanner/cli/main.py", "scanner/files/read.py",
                 "detectors/engine.py", "detectors/rules/microsoft.toml"):
        assert not excluded(path, rules), f".dockerignore keeps {path} (the build needs it) out"
    # and in this very repository, everything that would enter the context
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        rel = "" if rel == "." else rel + "/"
        dirnames[:] = [d for d in dirnames if not (excluded(rel + d, rules) and not any(
            neg and fnmatch.fnmatch(rel + d, pat.split("/")[0]) for neg, pat, _ in rules))]
        for f in filenames:
            path = rel + f
            if not excluded(path, rules):
                top = path.split("/")[0]
                assert top in ("pyproject.toml", "README.md", "LICENSE", "scanner", "detectors"), path


def test_the_package_build_includes_every_module_and_rule_file():
    """What `pip install .` in the image installs: every package folder and the rule catalogue. An
    explicit `packages = [...]` list leaves out subpackages (scanner/files), and data files need
    package-data (there is no MANIFEST.in); the editable install the tests use hides both."""
    from setuptools import find_packages

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("setuptools", {})
    packages = cfg.get("packages")
    if isinstance(packages, dict) or packages is None:
        find = (packages or {}).get("find", {})
        packages = find_packages(where=str(ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    packages = set(packages)
    data = cfg.get("package-data", {})
    for top in ("scanner", "detectors"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert name in packages, f"package {name} is not installed by pip install . (pyproject.toml)"
        for f in (ROOT / top).rglob("*"):
            if f.is_dir() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            owner = f.parent
            while not (owner / "__init__.py").exists():
                owner = owner.parent
            pkg = ".".join(owner.relative_to(ROOT).parts)
            rel = f.relative_to(owner).as_posix()
            globs = [*data.get(pkg, []), *data.get("*", []), *data.get("", [])]
            assert any(fnmatch.fnmatch(rel, g) for g in globs), \
                f"{f.relative_to(ROOT)} is not package data of {pkg}: pip install . leaves it out"


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
    pytest.importorskip("scanner.shard", reason="--shard is not built yet")
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


# --------------------------------------------------------------------------------------------------
# Azure Container Apps jobs (Bicep: parsed as text, no Bicep compiler here)

def bicep() -> str:
    return BICEP.read_text()


def bicep_param_default(name: str) -> str:
    m = re.search(rf"^param {name} \w+ = (.+)$", bicep(), re.M)
    assert m, f"param {name} has no default"
    return m.group(1).strip().strip("'")


def bicep_string(text: str, start: int) -> str:
    """The Bicep string literal opening at text[start] (a quote), with its ${...} interpolations kept
    as written (they may hold quoted strings of their own)."""
    assert text[start] == "'"
    i, depth, inner = start + 1, 0, False
    while i < len(text):
        c = text[i]
        if depth == 0 and c == "\\":
            i += 2
            continue
        if depth == 0 and text.startswith("${", i):
            depth, i = 1, i + 2
            continue
        if depth:
            if c == "'":
                inner = not inner
            elif not inner and c == "{":
                depth += 1
            elif not inner and c == "}":
                depth -= 1
        elif c == "'":
            return text[start + 1:i]
        i += 1
    raise AssertionError("unterminated Bicep string")


def bicep_args() -> list[str]:
    """The first item of every container's args: [...] (the scan's, then the merge's)."""
    text = bicep()
    return [bicep_string(text, m.end() - 1) for m in re.finditer(r"args:\s*\[\s*'", text)]


def azure_scan_script(k: int) -> str:
    wrapper = re.search(r"^var scanWrapper = '((?:[^'\\]|\\.)*)'$", bicep(), re.M).group(1)
    n = bicep_param_default("shardCount")
    return (bicep_args()[0].replace("${k}", str(k)).replace("${shardCount}", n)
            .replace("${join(extraScanArgs, ' ')}", "").replace("${scanWrapper}", wrapper))


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
