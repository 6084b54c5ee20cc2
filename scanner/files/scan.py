"""`flowleaks scan-files PATH…`: payloads outside the API — exported run history, content-link bodies,
flow definitions, a ticket's attachment — scanned offline into the same DuckDB store as a sweep.

The parts (scanner/files): `sources` lists the files, `read` turns each into documents, `shapes`
finds and attributes the bodies in them, `worker` scans files in a process pool and hands back only
redacted results. This module is the command: options, the one writer of the store, progress, the
summary and the exit status (0 clean, 1 open findings, 2 usage, 3 something not scanned and nothing
found, 4 unexpected error).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import click

from scanner.settings import Settings, connection_options, jobs_option, known_value_options, output_options, settings_from
from scanner.skip_reasons import NON_BLOCKING_SKIPS
from scanner.errors import ScanFailed, describe
from scanner.files.shapes import Where
from scanner.files.sources import Unlisted, expand
from scanner.files.worker import FileResult, scan_all
from scanner.api.flow_api import parse_api_time
from scanner.redact import redact_text
from scanner.cli.rules import custom_rules_from, rules_options
from scanner.store.database import (FILE_FILTERED_COLUMNS, FILE_FINDING_COLUMNS, FILE_SKIPPED_COLUMNS, Batch, Store, finding_id,
                    fingerprint_key, utcnow)
from scanner.pipeline.sweep import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, KnownSources, build_engine, read_stdin_lines

log = logging.getLogger("flowleaks.scan_files")

KIND = "scan-files"
MIB = 1024 * 1024
FLUSH_ROWS = 5000
VAULT_UNAVAILABLE = "known values unavailable"

# --db, and what reading a Key Vault needs (cloud, credentials), exactly as `sweep` defines them: each
# option is defined once. The Flow-API-only options (endpoints, scope, concurrency) mean nothing here.
_OWN_CONNECTION_OPTIONS = frozenset({"cloud", "auth_method", "tenant_id", "client_id", "client_secret",
                                     "certificate", "certificate_password", "token_cache", "access_token", "db"})


def _connection_params() -> list[click.Parameter]:
    return connection_options(lambda: None).__click_params__


def db_and_vault_options(f: Callable) -> Callable:
    f.__click_params__ = [*getattr(f, "__click_params__", []),  # type: ignore[attr-defined]
                          *(p for p in _connection_params() if p.name in _OWN_CONNECTION_OPTIONS)]
    return f


# click >= 8.3 marks "no default" with a sentinel (older versions with None)
_NO_DEFAULT = getattr(click.core, "UNSET", None)


def _settings(kw: dict) -> Settings:
    """Settings from our options, the ones we do not offer at their defaults."""
    for p in _connection_params():
        kw.setdefault(p.name, None if p.default is _NO_DEFAULT else p.default)
    return settings_from(kw)


@dataclass
class FilesOutcome:
    scan_id: str
    jobs: int
    files_planned: int = 0
    files_scanned: int = 0
    bodies: int = 0
    bytes_on_disk: int = 0
    bytes_read: int = 0
    findings: int = 0
    open_findings: int = 0
    skipped: Counter = field(default_factory=Counter)
    blocking: int = 0
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        # no file at all under the paths given is an empty scan, never a clean one
        return self.blocking == 0 and self.files_planned > 0

    @property
    def exit_code(self) -> int:
        if self.open_findings:
            return EXIT_FINDINGS
        return EXIT_CLEAN if self.complete else EXIT_INCOMPLETE

    @property
    def mb_per_s(self) -> float:
        return self.bytes_on_disk / 1e6 / self.duration_s if self.duration_s > 0 else 0.0


@click.command("scan-files")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@jobs_option("files are scanned in parallel, a group of files each")
@click.option("--max-mb", type=click.IntRange(1, 1 << 20), default=64, show_default=True,
              envvar="FLOWLEAKS_MAX_MB", show_envvar=True, help="Largest file (decompressed), or JSON Lines line, read; a bigger one is recorded as 'too large'.")
@db_and_vault_options
@known_value_options
@output_options
@rules_options
def scan_files_command(paths: tuple[str, ...], jobs: int, max_mb: int, **kw: Any) -> None:
    """Scan exported payloads for secrets: files and directories (recursively); JSON, JSON Lines,
    .json.gz/.jsonl.gz, anything else as text. Findings land in the database like a sweep's
    (`file` names the file, `json_path` the place in it), for `flowleaks query` and `export`.

    Recognised and attributed (environment, flow, run, action, side): `m365 flow run get
    --withActions [--withTrigger]` output, run and action objects from the Flow/Logic Apps APIs,
    content-link bodies (side from the file name, e.g. ActionOutputs.json), flow definitions
    (side `definition`). Anything else gets side `file`.

    \b
    Examples:
      m365 flow run get -e Default-<tenant> --flowName <flow> -n <run> --withActions > run.json
      flowleaks scan-files run.json
      flowleaks scan-files exports/ tickets/attachment.txt --db ir.duckdb
      printf '%s\\n' "$LEAKED_KEY" | flowleaks scan-files --known-values-stdin history.jsonl.gz

    Exit status: 0 clean, 1 open findings, 2 usage error, 3 something could not be scanned (and
    nothing was found), 4 unexpected error.
    """
    settings = _settings(kw)
    settings.custom_rules = custom_rules_from(kw)
    known = KnownSources(vaults=kw.pop("known_vaults"), vault_versions=kw.pop("known_vault_versions"),
                         stdin_lines=read_stdin_lines() if kw.pop("known_values_stdin") else None,
                         hashes_file=kw.pop("known_hashes"))
    outcome = run_files(settings, paths, jobs, max_mb, known, progress=not kw.pop("quiet", False))
    print_files_summary(settings.db, outcome)
    summary_path = kw.pop("summary_json", None)
    if summary_path:
        write_files_summary_json(summary_path, outcome)
    click.get_current_context().exit(outcome.exit_code)


# -- the run -----------------------------------------------------------------------------------------

def run_files(settings: Settings, paths: Sequence[str], jobs: int, max_mb: int, known_sources: KnownSources,
              progress: bool = True) -> FilesOutcome:
    started = time.monotonic()
    key = fingerprint_key(settings.db)
    engine, known = build_engine(key, known_sources, settings.min_confidence, settings.custom_rules)
    notes, vault_failures = load_vaults(settings, known_sources, known) if known_sources.vaults else ([], [])
    feedback = list(known_sources.notes)  # per input: loaded, dropped and why (as `sweep` says it)
    if known:
        feedback.insert(0, f"known values: {known.values} values and {known.hashes} hashes to match")
    notes[0:0] = feedback
    sources, unlisted = expand(paths)
    store = Store(settings.db)
    try:
        scan_id = store.begin_scan(KIND, {"paths": list(paths), "jobs": jobs, "max_mb": max_mb,
                                          "known_vaults": list(known_sources.vaults)})
        out = FilesOutcome(scan_id, jobs, files_planned=len(sources), notes=notes)
        if not sources:
            notes.append("no file to scan under the paths given: an empty scan is not a clean result (exit 3)")
        writer = _Writer(store, out)
        for failure in vault_failures:
            writer.skip(None, Where(), VAULT_UNAVAILABLE, failure)
        writer.unlisted(unlisted)
        _scan(writer, sources, jobs, engine, known, key, max_mb * MIB, progress)
        from scanner.store.suppressions import apply_suppressions

        apply_suppressions(store.con, scan_id)
        out.open_findings = store.query("SELECT count(*) FROM findings WHERE scan_id = ? AND status = 'open'",
                                        [scan_id])[0][0]
        out.duration_s = time.monotonic() - started
        store.finish_scan(scan_id, complete=out.complete, skipped=sum(out.skipped.values()), findings=out.findings)
        return out
    finally:
        store.close()


def _scan(writer: "_Writer", sources: Sequence[Any], jobs: int, engine: Any, known: Any, key: bytes,
          max_bytes: int, progress: bool) -> None:
    """Scan and write; a scan stopped midway keeps what it wrote and says so in `scans`."""
    from scanner.report.summary import err_console

    try:
        with _progress(progress, sources, err_console) as advance:
            for result in scan_all(sources, jobs, engine, known, key, max_bytes):
                writer.add(result)
                advance(result)
        writer.flush()
    except BaseException as exc:
        stopped = writer.out.files_scanned
        try:
            writer.flush()
        finally:
            interrupted = not isinstance(exc, Exception)
            writer.store.finish_scan(writer.out.scan_id, complete=False,
                                     status="interrupted" if interrupted else "failed",
                                     error=None if interrupted else describe(exc))
        if interrupted:
            raise
        raise ScanFailed(f"{describe(exc)}; scan {writer.out.scan_id} had stored the results of {stopped} "
                         f"files when it stopped") from exc


class _Writer:
    """FileResults → store rows (the file column last), written in batches by this one process."""

    def __init__(self, store: Store, out: FilesOutcome):
        self.store, self.out = store, out
        self.batch = Batch.empty()

    def add(self, r: FileResult) -> None:
        out, now = self.out, utcnow()
        out.files_scanned += r.scanned
        out.bodies += r.bodies
        out.bytes_on_disk += r.size if r.scanned else 0  # MB/s counts what was read, not what was refused
        out.bytes_read += r.read
        seen: set[str] = set()
        for where, hit in r.hits:
            fid = finding_id(where.environment, where.flow_id, where.run_id, where.action, where.repetition,
                             where.side, hit.json_path, hit.rule_id, hit.fingerprint, file=r.name)
            if fid in seen:
                continue
            seen.add(fid)
            out.findings += 1
            self.batch.findings.append(_row(FILE_FINDING_COLUMNS, _place(where), finding_id=fid, scan_id=out.scan_id,
                                            json_path=hit.json_path, rule_id=hit.rule_id, detector=hit.detector,
                                            fingerprint=hit.fingerprint, preview=hit.preview,
                                            secret_length=hit.length, visible=where.visible,
                                            known_secret=hit.known_secret, first_seen=now, last_seen=now,
                                            status="open", confidence=hit.confidence, decoding=hit.decoding,
                                            run_start=parse_api_time(where.run_start),
                                            first_scan_id=out.scan_id, file=r.name))
        for where, reason, detail in r.skipped:
            self.skip(r.name, where, reason, detail)
        self.batch.filtered.extend(_row(FILE_FILTERED_COLUMNS, _place(where), scan_id=out.scan_id,
                                        json_path=d.json_path, rule_id=d.rule_id, filter=d.filter,
                                        recorded_at=now, file=r.name)
                                   for where, d in r.dropped)
        if len(self.batch) + len(self.batch.filtered) >= FLUSH_ROWS:
            self.flush()

    def unlisted(self, items: Iterable[Unlisted]) -> None:
        for u in items:
            self.skip(u.name, Where(), u.reason, u.detail)

    def skip(self, file: str | None, where: Where, reason: str, detail: str) -> None:
        blocking = reason not in NON_BLOCKING_SKIPS  # one list: scanner/skip_reasons.py
        self.out.skipped[reason] += 1
        self.out.blocking += blocking
        detail = redact_text(detail)[:500]  # as the crawl stores them: redacted, bounded
        log.log(logging.INFO if blocking else logging.DEBUG, "skipped %s: %s%s", file or "-", reason,
                f" ({detail})" if detail else "")
        self.batch.skipped.append(_row(FILE_SKIPPED_COLUMNS, _place(where), scan_id=self.out.scan_id,
                                       reason=reason, detail=detail, recorded_at=utcnow(), file=file))

    def flush(self) -> None:
        batch, self.batch = self.batch, Batch.empty()
        self.store.write_batch(batch)


def _place(where: Where) -> dict[str, Any]:
    return {"environment": where.environment, "flow_id": where.flow_id, "run_id": where.run_id,
            "action": where.action, "repetition": where.repetition, "side": where.side}


def _row(columns: Sequence[str], place: dict[str, Any], **values: Any) -> tuple:
    """A row in the store's column order, built by name (a column added later cannot shift the rest).
    `place` fills the location columns the table has (`filtered` has no repetition)."""
    unknown = set(values) - set(columns)
    if unknown:
        raise ValueError(f"not a column: {sorted(unknown)}")
    values.update((k, v) for k, v in place.items() if k in columns)
    return tuple(values.get(c) for c in columns)


class _progress:
    """A rich progress bar on stderr (files, MB, MB/s); a no-op with --quiet. Counts only."""

    def __init__(self, enabled: bool, sources: Sequence[Any], console: Any):
        self.bar = None
        if enabled:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TransferSpeedColumn)

            self.bar = Progress(TextColumn("scanning"), BarColumn(), TextColumn(f"{{task.fields[files]}}/{len(sources)} files"),
                                DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(), console=console)
            self.task = self.bar.add_task("scan", total=sum(s.size for s in sources) or None, files=0)
            self.files = 0

    def __enter__(self) -> Callable[[FileResult], None]:
        if self.bar is None:
            return lambda result: None
        self.bar.start()
        return self._advance

    def _advance(self, result: FileResult) -> None:
        self.files += 1
        self.bar.update(self.task, advance=result.size, files=self.files)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- known values from Key Vault ---------------------------------------------------------------------

def load_vaults(settings: Settings, sources: KnownSources, known: Any) -> tuple[list[str], list[str]]:
    """Hash every enabled secret of each `--known-vault` into `known`, through the same client and
    loader as `sweep`. Returns (notes, failures); a vault that fails is a failure, not the end."""
    return asyncio.run(_load_vaults(settings, sources, known))


async def _load_vaults(settings: Settings, sources: KnownSources, known: Any) -> tuple[list[str], list[str]]:
    from scanner.net.auth import make_token_provider
    from scanner.net.http import HttpClient
    from scanner.api.keyvault import load_vault, vault_url

    notes: list[str] = []
    failures: list[str] = []
    async with HttpClient(make_token_provider(settings.auth, settings.cloud), settings.http) as http:
        for vault in sources.vaults:
            try:
                loaded = await load_vault(http, vault_url(vault, settings.cloud), settings.cloud, known,
                                          versions=sources.vault_versions)
            except Exception as exc:  # noqa: BLE001 - recorded, and the files are still scanned
                failures.append(f"{vault}: {describe(exc)}")
                continue
            notes.append(f"known values: {loaded.loaded} secrets from {loaded.vault}")
            failures += [f"{loaded.vault}: {err}" for err in loaded.errors]
    return notes, failures


# -- what a person and a scheduler see ---------------------------------------------------------------

def print_files_summary(db: str, outcome: FilesOutcome) -> None:
    """Counts, open findings by rule, the files with most of them, skipped by reason, the verdict
    (the house style of report.print_summary)."""
    from rich.markup import escape

    from scanner.report.summary import out_console

    store = Store(db, read_only=True)
    try:
        by_rule = store.query("SELECT rule_id, count(*), count(DISTINCT fingerprint), count(DISTINCT file) "
                              "FROM findings WHERE scan_id = ? AND status = 'open' GROUP BY ALL "
                              "ORDER BY 2 DESC, 1", [outcome.scan_id])
        by_file = store.query("SELECT file, count(*), count(DISTINCT fingerprint) FROM findings "
                              "WHERE scan_id = ? AND status = 'open' GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 10",
                              [outcome.scan_id])
        skipped = store.query("SELECT reason, count(*), count(DISTINCT file) FROM skipped WHERE scan_id = ? "
                              "GROUP BY ALL ORDER BY 2 DESC, 1", [outcome.scan_id])
    finally:
        store.close()
    o = outcome
    out_console.print(f"[bold]flowleaks[/bold] scan-files {o.scan_id}: {o.files_scanned}/{o.files_planned} files, "
                      f"{o.bodies} bodies, {o.bytes_on_disk / 1e6:.1f} MB ({o.bytes_read / 1e6:.1f} MB read), "
                      f"{o.jobs} jobs, {o.duration_s:.1f}s ({o.mb_per_s:.2f} MB/s)")
    for note in o.notes:
        out_console.print(escape(note))
    if by_rule:
        out_console.print(_table("Open findings by rule", ("rule", "findings", "distinct secrets", "files"), by_rule))
        out_console.print(_table("Files with most open findings", ("file", "findings", "distinct secrets"),
                                 [(escape(str(f)), n, s) for f, n, s in by_file]))
    else:
        out_console.print("No open findings.")
    if skipped:
        out_console.print(_table("Not scanned (or scanned as text), by reason", ("reason", "count", "files"),
                                 [(r if r in NON_BLOCKING_SKIPS else f"{r} (blocking)", n, f) for r, n, f in skipped]))
    verdict = ("[green]complete[/green]" if o.complete else
               "[red]INCOMPLETE[/red]: something was not scanned (see skipped); not a clean result")
    out_console.print(f"Scan {verdict}. Details: flowleaks query \"SELECT file, json_path, rule_id, preview FROM "
                      f"findings WHERE scan_id = '{o.scan_id}'\" --db {escape(db)}")


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]):
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r))
    return t


def write_files_summary_json(path: str, outcome: FilesOutcome) -> None:
    """The scheduler's view (mode 0600): counts, completeness, duration, throughput."""
    import json

    from scanner.private import write_private_text

    o = outcome
    data = {"scan_id": o.scan_id, "kind": KIND, "complete": o.complete, "exit_code": o.exit_code,
            "duration_s": round(o.duration_s, 3), "open_findings": o.open_findings, "findings_seen": o.findings,
            "files": {"planned": o.files_planned, "scanned": o.files_scanned}, "bodies": o.bodies,
            "bytes_on_disk": o.bytes_on_disk, "bytes_read": o.bytes_read, "mb_per_s": round(o.mb_per_s, 3),
            "jobs": o.jobs, "skipped": dict(o.skipped), "skipped_blocking": o.blocking}
    write_private_text(path, json.dumps(data, indent=2))
