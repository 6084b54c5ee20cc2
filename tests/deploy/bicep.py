"""Readers of the Azure Container Apps jobs template (deploy/azure, Bicep: parsed as text, no Bicep
compiler here): parameter defaults, string literals, the containers' args."""
from __future__ import annotations

import re

from tests.deploy import DEPLOY

BICEP = DEPLOY / "azure" / "containerapps-jobs.bicep"


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
