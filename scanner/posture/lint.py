"""`flowleaks lint PATH…`: posture rules over flow definitions and solutions, offline; files, zips and
folders in, a LintReport and its exit status out. The command itself, its options and output
handling, is scanner/cli/lint.py; the report's formats (table, JSON, SARIF) are the report
package's lint_report.py, so posture knows nothing of how a report reads.

Inputs (each PATH may be any of these; directories are walked like an unpacked zip):

* a definition JSON: bare `{triggers, actions}`, the Flow API's `{properties:{definition}}`, a list
  response `{value:[…]}`, or a Logic Apps ARM export (`resources[]` of type Microsoft.Logic/workflows);
* a legacy flow package `.zip` (`Microsoft.Flow/flows/<id>/definition.json`);
* a solution `.zip` (`Workflows/*.json`, `environmentvariabledefinitions/<schema>/
  environmentvariabledefinition.xml` and `environmentvariablevalues.json`);
* a deployment settings JSON (`pac solution create-settings`: `EnvironmentVariables`, `ConnectionReferences`);
* an `environmentvariabledefinition.xml`.

Exit status: 0 when no finding is at or above `--fail-on` (default `high`), 1 when one is, 2 on a usage
error or when an input could not be read (an incomplete lint is never reported as clean).

A report never holds a secret value: literal credentials are kept as a preview (`Pr0d…(32)`) and a keyed
fingerprint (key from FLOWLEAKS_FINGERPRINT_KEY; without it a random per-run key, so fingerprints are
then only comparable within one run).
"""
from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from scanner.keys import fingerprint_key
from scanner.posture import model
from scanner.posture.analyze import analyze_definition
from scanner.posture.base import SEVERITIES, SEVERITY_RANK, PostureFinding
from scanner.posture.rules.PA007 import analyze_environment
from scanner.posture.solution import (EnvVarDef, is_deployment_settings, parse_env_var_definition_xml,
                                      parse_env_var_values_json)

MAX_MEMBER_BYTES = 64 * 1024 * 1024  # a single definition/XML larger than this is skipped (reported)
MAX_TOTAL_BYTES = 512 * 1024 * 1024  # per zip: guard against zip bombs
_GUID_TAIL = re.compile(r"-[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


@dataclass(slots=True)
class Located:
    """A finding with where it came from."""

    finding: PostureFinding
    path: str  # the file given (or found in a directory)
    member: str = ""  # zip member, if any
    line: int | None = None

    @property
    def display(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path

    def to_dict(self) -> dict[str, Any]:
        d = self.finding.to_dict()
        d.update(path=self.path, member=self.member or None, line=self.line)
        return d


@dataclass(slots=True)
class LintReport:
    results: list[Located] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    flows: int = 0
    files: int = 0

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in SEVERITIES}
        for r in self.results:
            c[r.finding.severity] += 1
        return c


# ---------------------------------------------------------------------------------------------------
# Reading inputs

def _read_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8-sig"))


def why_unreadable(e: Exception) -> str:
    """Where and why a document failed to parse, for a fix-it message (lint's, and scan-files' for a
    file that is not JSON). Only the parser's own message and a position: never the document's text,
    which may hold a secret."""
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
    if isinstance(e, UnicodeDecodeError):
        return f"not valid UTF-8 at byte {e.start}"
    return f"cannot parse ({type(e).__name__})"


def _line_of(text: str | None, pattern: str) -> int | None:
    if not text:
        return None
    m = re.search(pattern, text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _action_line(text: str | None, f: PostureFinding) -> int | None:
    if f.rule_id == "PA007":
        if f.json_path.startswith("$.EnvironmentVariables"):
            return _line_of(text, r'"SchemaName"\s*:\s*' + re.escape(json.dumps(f.action)))
        tag = f.json_path.rsplit("/", 1)[-1]
        return _line_of(text, "<" + re.escape(tag) + r"\b") if f.json_path.startswith("/") else None
    name = f.action.split(".", 1)[1] if f.action.startswith("parameters.") else f.action
    # an action's own key is followed by an object; runAfter references are followed by a list
    return _line_of(text, re.escape(json.dumps(name)) + r"\s*:\s*\{")


def _definitions_in(doc: Any, fallback_name: str) -> list[tuple[str, dict]]:
    """(flow name, definition) pairs found in a JSON document."""
    d = model.definition_of(doc)
    if d is not None:
        name = fallback_name
        if isinstance(doc, dict):
            props = doc.get("properties") if isinstance(doc.get("properties"), dict) else {}
            name = str(props.get("displayName") or doc.get("name") or fallback_name)
        return [(name, d)]
    out: list[tuple[str, dict]] = []
    if isinstance(doc, dict) and isinstance(doc.get("resources"), list):  # ARM template / export
        for res in doc["resources"]:
            if isinstance(res, dict) and str(res.get("type", "")).lower().endswith("/workflows"):
                dd = model.unwrap_definition(res)
                if dd is not None:
                    out.append((str(res.get("name") or fallback_name), dd))
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):  # Flow API list response
        for item in doc["value"]:
            out.extend(_definitions_in(item, fallback_name))
    return out


class _Linter:
    def __init__(self, engine: Any | None, key: bytes):
        self.engine = engine
        self.key = key
        self.report = LintReport()

    # -- one document --------------------------------------------------------------------------------
    def _definition(self, path: str, member: str, text: str, flow: str, d: dict) -> None:
        self.report.flows += 1
        where = f"{path}{'!' + member if member else ''}"
        # parts the readers cannot read are not checked: say so (an error: lint cannot call it clean)
        for problem in model.problems(d):
            self.report.errors.append(f"{where}: definition unreadable at {problem}")
        try:
            fs = analyze_definition(d, flow_name=flow, engine=self.engine, key=self.key)
        except Exception as e:  # noqa: BLE001
            self.report.errors.append(f"{path}{'!' + member if member else ''}: cannot analyse: {type(e).__name__}")
            return
        for f in fs:
            f = _with_artifact(f, member or path)
            self.report.results.append(Located(f, path, member, _action_line(text, f)))

    def _settings(self, path: str, member: str, text: str, doc: dict, env_defs: list) -> None:
        fs = analyze_environment(env_defs, settings=doc, settings_artifact=member or path,
                                 engine=self.engine, key=self.key)
        # env_defs findings are reported with the solution; keep only the settings ones here
        for f in fs:
            if f.json_path.startswith("$.EnvironmentVariables"):
                self.report.results.append(Located(f, path, member, _action_line(text, f)))

    def json_doc(self, path: str, member: str, data: bytes, *, strict: bool, env_defs: list | None = None) -> None:
        where = f"{path}!{member}" if member else path
        try:
            text = data.decode("utf-8-sig")
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if strict:
                self.report.errors.append(f"{where}: {why_unreadable(e)}")
            return
        if is_deployment_settings(doc):
            self._settings(path, member, text, doc, env_defs or [])
            return
        stem = PurePosixPath(member or path).stem
        found = _definitions_in(doc, _GUID_TAIL.sub("", stem))
        if not found:
            if strict:
                self.report.errors.append(f"{where}: no flow definition or deployment settings found")
            return
        for flow, d in found:
            self._definition(path, member, text, flow, d)

    # -- containers ------------------------------------------------------------------------------------
    def members(self, path: str, entries: Iterator[tuple[str, bytes | None]]) -> None:
        """Files of a zip or directory: (posix relative name, bytes or None when too large)."""
        defs: list[EnvVarDef] = []
        values: dict[str, str] = {}
        def_texts: dict[str, str] = {}
        value_members: dict[str, tuple[str, str]] = {}
        jsons: list[tuple[str, bytes]] = []
        for name, data in entries:
            low = name.lower()
            if data is None:
                self.report.errors.append(f"{path}!{name}: skipped, larger than {MAX_MEMBER_BYTES} bytes")
                continue
            if low.endswith("environmentvariabledefinition.xml"):
                try:
                    d = parse_env_var_definition_xml(data, artifact=name)
                except Exception as e:  # noqa: BLE001
                    self.report.errors.append(f"{path}!{name}: cannot parse ({type(e).__name__})")
                    continue
                defs.append(d)
                def_texts[d.schemaname] = data.decode("utf-8-sig", "replace")
            elif low.endswith("environmentvariablevalues.json"):
                try:
                    vals = parse_env_var_values_json(_read_json(data))
                except Exception as e:  # noqa: BLE001
                    self.report.errors.append(f"{path}!{name}: {why_unreadable(e)}")
                    continue
                values.update(vals)
                for sn in vals:
                    value_members[sn] = (name, data.decode("utf-8-sig", "replace"))
            elif low.endswith(".json"):
                jsons.append((name, data))
        for name, data in jsons:
            low = name.lower()
            # inside a container, these must be definitions; other JSON is read only if it is one
            # (or deployment settings), e.g. a legacy package's manifest.json is skipped silently
            strict = low.startswith("workflows/") or low.endswith("/definition.json") or low == "definition.json"
            self.json_doc(path, name, data, strict=strict, env_defs=defs)
        if defs or values:
            for f in analyze_environment(defs, values, engine=self.engine, key=self.key):
                member = f.artifact
                text = def_texts.get(f.action)
                if f.json_path.startswith("$.environmentvariablevalues") and f.action in value_members:
                    member, text = value_members[f.action]
                    line = _line_of(text, re.escape(json.dumps(f.action)))
                else:
                    line = _action_line(text, f)
                self.report.results.append(Located(f, path, member, line))

    def path(self, p: Path) -> None:
        self.report.files += 1
        sp = str(p)
        if p.is_dir():
            self.members(sp, _dir_entries(p))
            return
        if zipfile.is_zipfile(p):
            try:
                with zipfile.ZipFile(p) as zf:
                    self.members(sp, _zip_entries(zf))
            except (zipfile.BadZipFile, OSError) as e:
                self.report.errors.append(f"{sp}: cannot read zip ({type(e).__name__})")
            return
        if p.stat().st_size > MAX_MEMBER_BYTES:
            self.report.errors.append(f"{sp}: skipped, larger than {MAX_MEMBER_BYTES} bytes")
            return
        data = p.read_bytes()
        if p.suffix.lower() == ".xml":
            self.members(sp, iter([(p.name, data)]))
            # members() reports against `path!name`; a bare XML file has no member
            for r in self.report.results:
                if r.path == sp and r.member == p.name:
                    r.member = ""
            return
        self.json_doc(sp, "", data, strict=True)


def _with_artifact(f: PostureFinding, artifact: str) -> PostureFinding:
    return replace(f, artifact=artifact)


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[tuple[str, bytes | None]]:
    total = 0
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")  # old exports used backslashes
        low = name.lower()
        if not (low.endswith(".json") or low.endswith(".xml")):
            continue
        if info.file_size > MAX_MEMBER_BYTES or total + info.file_size > MAX_TOTAL_BYTES:
            yield name, None
            continue
        with zf.open(info) as fh:
            data = fh.read(MAX_MEMBER_BYTES + 1)
        if len(data) > MAX_MEMBER_BYTES:
            yield name, None
            continue
        total += len(data)
        yield name, data


def _dir_entries(root: Path) -> Iterator[tuple[str, bytes | None]]:
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in (".json", ".xml"):
            continue
        rel = p.relative_to(root).as_posix()
        if p.stat().st_size > MAX_MEMBER_BYTES:
            yield rel, None
        else:
            yield rel, p.read_bytes()


def lint_paths(paths: list[Path | str], *, engine: Any | None, key: bytes | None = None) -> LintReport:
    """Lint files/zips/directories. `engine`: the detection engine for generic hits on literal strings
    (the caller's: scanner/cli/lint.py builds one), or None for the rules' own checks alone."""
    linter = _Linter(engine, key if key is not None else fingerprint_key(None))
    for p in paths:
        p = Path(p)
        if not p.exists():
            linter.report.errors.append(f"{p}: no such file or directory")
            continue
        linter.path(p)
    linter.report.results.sort(key=lambda r: (-SEVERITY_RANK[r.finding.severity], r.display,
                                              r.line or 0, r.finding.rule_id))
    return linter.report


def exit_code(report: LintReport, fail_on: str) -> int:
    """0 no finding at/above `fail_on` ('never': none counts), 1 findings at/above it, 2 input errors."""
    if report.errors:
        return 2
    if fail_on == "never":
        return 0
    threshold = SEVERITY_RANK[fail_on]
    return 1 if any(SEVERITY_RANK[r.finding.severity] >= threshold for r in report.results) else 0
