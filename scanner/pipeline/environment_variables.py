"""PA007 read live from Dataverse: one org's environment variables (scanner/api/dataverse.py reads
them) analysed by the posture rule (scanner/posture/rules/PA007.py), the values dropped at once.

The sweep runs this per `--dataverse-url` target before the crawl; what it returns holds counts,
redacted findings and problems, never a value.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.api.dataverse import MAX_PAGES, DataverseTarget, read_environment_variables, row_path
from scanner.net.http import HttpClient
from scanner.posture.base import PostureFinding
from scanner.posture.rules.PA007 import analyze_environment
from scanner.posture.solution import EnvVarDef
from scanner.redact import redact_url

dataverse_log = logging.getLogger("flowleaks.dataverse")


@dataclass
class EnvVarScan:
    """PA007 over one org's environment variables: counts, redacted findings, and problems (no value in any)."""

    target: DataverseTarget
    definitions: int = 0
    values: int = 0
    pages: int = 0
    findings: list[PostureFinding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.errors


async def scan_environment_variables(http: HttpClient, target: DataverseTarget, *, engine: Any = None,
                                     key: bytes = b"", max_pages: int = MAX_PAGES) -> EnvVarScan:
    """Read every environment variable definition (+ current value) of one org and run PA007 on them.

    Raises FlowleaksHttpError when the first page cannot be read (no access, no such org); later
    problems (a refused nextLink, a page that is not a list) land in `errors` and the rows read so
    far are still analysed. The values live only between the read and PA007, and are dropped here."""
    read = await read_environment_variables(http, target, max_pages=max_pages)
    result = EnvVarScan(target, pages=read.pages, errors=read.errors)
    definitions: list[EnvVarDef] = []
    values: dict[str, str] = {}
    try:
        definitions += [EnvVarDef(schemaname=v.schemaname, displayname=v.displayname, type=v.type,
                                  defaultvalue=v.defaultvalue, secretstore=v.secretstore, artifact=target.url)
                        for v in read.variables]
        values.update((v.schemaname, v.value) for v in read.variables if v.value is not None)
        result.definitions, result.values = len(definitions), len(values)
        found = analyze_environment(definitions, values, engine=engine, key=key)
        result.findings = [replace(f, json_path=_dataverse_path(f)) for f in found]
    finally:
        # drop the values at once, whatever happened
        read.variables.clear()
        definitions.clear()
        values.clear()
    dataverse_log.info("dataverse %s: %d definitions, %d values, %d PA007 findings", redact_url(target.url),
                       result.definitions, result.values, len(result.findings))
    return result


def _dataverse_path(f: PostureFinding) -> str:
    """Where the finding sits in the Web API answer (analyze_environment names solution-export paths)."""
    if f.json_path.endswith("/defaultvalue"):
        return row_path(f.action, "defaultvalue")
    if f.json_path.endswith("/type"):
        return row_path(f.action, "type")
    if f.json_path.startswith("$.environmentvariablevalues"):
        return row_path(f.action, "value")
    return f.json_path
