"""Readers of the Dockerfile (instructions, the runtime stage, its user and environment) and of
.dockerignore (with Docker's semantics)."""
from __future__ import annotations

import os
import re
import shlex

from tests.deploy import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


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
