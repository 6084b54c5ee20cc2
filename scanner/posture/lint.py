"""`flowleaks lint PATH…`: posture rules over flow definitions and solutions, offline.

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

Output never contains a secret value: literal credentials show as a preview (`Pr0d…(32)`) and a keyed
fingerprint (key from FLOWLEAKS_FINGERPRINT_KEY; without it a random per-run key, so fingerprints are
then only comparable within one run).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import click

from scanner import __version__
from scanner.posture import model as definition
from scanner import posture
from scanner.report import sarif
from scanner.posture import PostureFinding

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
        c = {s: 0 for s in posture.SEVERITIES}
        for r in self.results:
            c[r.finding.severity] += 1
        return c


# ---------------------------------------------------------------------------------------------------
# Reading inputs

def _read_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8-sig"))


def _why_unreadable(e: Exception) -> str:
    """Where and why a document failed to parse, for a fix-it message. Only the parser's own message
    and a position: never the document's text, which may hold a secret."""
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
    d = posture.definition_of(doc)
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
                dd = posture.unwrap_definition(res)
                if dd is not None:
                    out.append((str(res.get("name") or fallback_name), dd))
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):  # Flow API list response
        for item in doc["value"]:
            out.extend(_definitions_in(item, fallback_name))
    return out


class _Linter:
    def __init__(self, engine: Any, key: bytes):
        self.engine = engine
        self.key = key
        self.report = LintReport()

    # -- one document --------------------------------------------------------------------------------
    def _definition(self, path: str, member: str, text: str, flow: str, d: dict) -> None:
        self.report.flows += 1
        where = f"{path}{'!' + member if member else ''}"
        # parts the readers cannot read are not checked: say so (an error: lint cannot call it clean)
        for problem in definition.problems(d):
            self.report.errors.append(f"{where}: definition unreadable at {problem}")
        try:
            fs = posture.analyze_definition(d, flow_name=flow, engine=self.engine, key=self.key)
        except Exception as e:  # noqa: BLE001
            self.report.errors.append(f"{path}{'!' + member if member else ''}: cannot analyse: {type(e).__name__}")
            return
        for f in fs:
            f = _with_artifact(f, member or path)
            self.report.results.append(Located(f, path, member, _action_line(text, f)))

    def _settings(self, path: str, member: str, text: str, doc: dict, env_defs: list) -> None:
        fs = posture.analyze_environment(env_defs, settings=doc, settings_artifact=member or path,
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
                self.report.errors.append(f"{where}: {_why_unreadable(e)}")
            return
        if posture.is_deployment_settings(doc):
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
        defs: list[posture.EnvVarDef] = []
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
                    d = posture.parse_env_var_definition_xml(data, artifact=name)
                except Exception as e:  # noqa: BLE001
                    self.report.errors.append(f"{path}!{name}: cannot parse ({type(e).__name__})")
                    continue
                defs.append(d)
                def_texts[d.schemaname] = data.decode("utf-8-sig", "replace")
            elif low.endswith("environmentvariablevalues.json"):
                try:
                    vals = posture.parse_env_var_values_json(_read_json(data))
                except Exception as e:  # noqa: BLE001
                    self.report.errors.append(f"{path}!{name}: {_why_unreadable(e)}")
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
            for f in posture.analyze_environment(defs, values, engine=self.engine, key=self.key):
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
    from dataclasses import replace
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


def lint_paths(paths: list[Path | str], *, engine: Any = None, key: bytes | None = None) -> LintReport:
    """Lint files/zips/directories. `engine`: None = default detection engine (if importable), False = none."""
    eng = posture.default_engine() if engine is None else (engine or False)
    linter = _Linter(eng if eng is not None else False, key if key is not None else fingerprint_key())
    for p in paths:
        p = Path(p)
        if not p.exists():
            linter.report.errors.append(f"{p}: no such file or directory")
            continue
        linter.path(p)
    linter.report.results.sort(key=lambda r: (-posture.SEVERITY_RANK[r.finding.severity], r.display,
                                              r.line or 0, r.finding.rule_id))
    return linter.report


def fingerprint_key() -> bytes:
    """FLOWLEAKS_FINGERPRINT_KEY (UTF-8) when set; else a random per-run key (never an empty key:
    an unkeyed hash of a weak password can be guessed)."""
    k = os.environ.get("FLOWLEAKS_FINGERPRINT_KEY")
    return k.encode("utf-8") if k else secrets.token_bytes(32)


# ---------------------------------------------------------------------------------------------------
# Output

def to_json(report: LintReport) -> dict[str, Any]:
    return {"tool": "flowleaks", "version": __version__, "command": "lint",
            "summary": {**report.counts(), "files": report.files, "flows": report.flows,
                        "errors": len(report.errors)},
            "findings": [r.to_dict() for r in report.results], "errors": list(report.errors)}


def to_sarif(report: LintReport) -> dict[str, Any]:
    rules = [posture.RULES[rid].to_sarif() for rid in posture.RULES]  # all rules, so ids are stable
    results = []
    for r in report.results:
        f = r.finding
        msg = f"{f.message}. {f.remediation}."
        if f.preview:
            msg += f" (value {f.preview})"
        fps = {"flowleaksLocation/v1": sarif.location_fingerprint(f.rule_id, r.display, f.json_path)}
        if f.fingerprint:
            fps["flowleaksSecret/v1"] = f.fingerprint
        props: dict[str, Any] = {"severity": f.severity, "remediation": f.remediation, "jsonPath": f.json_path}
        if f.flow:
            props["flow"] = f.flow
        if r.member:
            props["member"] = r.member
        if f.preview:
            props["preview"] = f.preview
        if f.sources:
            props["sources"] = list(f.sources)
        # the file and the line of the action, which code scanning shows; a zip member has no line a
        # dashboard could show (the lines are the member's), so the member goes in the message
        region = {"startLine": r.line} if (r.line and not r.member) else None
        where = ", ".join(p for p in (r.member and f"in {r.member}", f.action and f"action '{f.action}'",
                                      f.json_path and f"at {f.json_path}") if p)
        results.append(sarif.result(f.rule_id, msg, level=sarif.level_for(f.severity), uri=sarif.artifact_uri(r.path),
                                    region=region, logical_name=f.logical_name or f.action,
                                    fingerprints=fps, properties=props, location_message=where or None))
    inv = {"executionSuccessful": not report.errors}
    if report.errors:
        inv["toolExecutionNotifications"] = [{"level": "error", "message": {"text": e}} for e in report.errors]
    return sarif.sarif_log(rules, results, invocation=inv)


def _table(report: LintReport, out) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=max(100, min(200, _term_width())), highlight=False,
                      force_terminal=out.isatty() if hasattr(out, "isatty") else False)
    if report.results:
        t = Table(show_lines=False, expand=False)
        for col in ("Severity", "Rule", "Where", "Action", "Message", "Fix", "Value"):
            t.add_column(col, overflow="fold")
        for r in report.results:
            f = r.finding
            where = r.display + (f":{r.line}" if r.line else "")
            t.add_row(f.severity, f.rule_id, where, f.action, f.message, f.remediation, f.preview or "")
        console.print(t)
    summary = _summary_line(report)
    if summary:
        console.print(summary, markup=False)


def _summary_line(report: LintReport) -> str | None:
    """The count line, or None when every input failed: then the errors on stderr are the whole story,
    and a "0 finding(s)" line would read as a clean lint that never ran."""
    if report.errors and not (report.results or report.flows):
        return None
    c = report.counts()
    line = (f"{len(report.results)} finding(s): {c['high']} high, {c['medium']} medium, {c['low']} low "
            f"in {report.flows} flow(s), {report.files} input(s)")
    if report.errors:
        line += f"; INCOMPLETE: {len(report.errors)} input error(s), see stderr"
    return line


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 160


class _OutputError(click.FileError):
    exit_code = 2  # the report could not be written: a usage error, never "findings" (click's 1)


def _write_report(output: Path, report: LintReport, text: str | None) -> None:
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise _OutputError(str(output), hint=e.strerror or type(e).__name__) from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        if text is None:
            _table(report, fh)
        else:
            fh.write(text)


def exit_code(report: LintReport, fail_on: str) -> int:
    if report.errors:
        return 2
    if fail_on == "never":
        return 0
    threshold = posture.SEVERITY_RANK[fail_on]
    return 1 if any(posture.SEVERITY_RANK[r.finding.severity] >= threshold for r in report.results) else 0


@click.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--fail-on", type=click.Choice(["high", "medium", "low", "never"]), default="high",
              show_default=True, help="Exit 1 when a finding is at or above this severity.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE instead of stdout.")
def lint_command(paths: tuple[Path, ...], fail_on: str, fmt: str, output: Path | None) -> None:
    """Check flow definitions, flow packages, solutions and deployment settings for settings that
    leak secrets into run history (rules PA001-PA007), without calling any API.

    PATH can be a definition JSON (bare, {properties:{definition}} or an ARM export), a flow package
    or solution .zip, an unpacked solution directory, a deployment settings JSON or an
    environmentvariabledefinition.xml.

    Exit status: 0 no finding at/above --fail-on, 1 findings at/above it, 2 usage error or unreadable
    input. Secret values are never printed: literal credentials show as a short preview.
    """
    report = lint_paths(list(paths))
    if fmt == "json":
        text = json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "sarif":
        text = json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
    else:
        text = None
    if output is not None:
        _write_report(output, report, text)
    elif text is None:
        _table(report, sys.stdout)
    else:
        click.echo(text, nl=False)
    for e in report.errors:
        click.echo(f"flowleaks lint: {e}", err=True)
    click.get_current_context().exit(exit_code(report, fail_on))
