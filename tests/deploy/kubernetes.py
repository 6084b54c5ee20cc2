"""Readers of the Kubernetes manifests under deploy/kubernetes: the files, what the kustomization
applies, the CronJobs, their pods and containers."""
from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy import DEPLOY
from tests.deploy.commands import flowleaks_argv

K8S = DEPLOY / "kubernetes"


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


def container_argv(container: dict, index: int | None) -> list[str]:
    script = shell_script(container)
    if script is not None:
        return flowleaks_argv(script, index)
    assert container.get("command") in (None, ["flowleaks"]), "exec form must run the image's flowleaks"
    argv = list(container.get("args", []))
    return [a.replace("$(JOB_COMPLETION_INDEX)", str(index)) for a in argv]


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
