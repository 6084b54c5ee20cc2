"""The scan-files run: payloads outside the API — exported run history, content-link bodies, flow
definitions, a ticket's attachment — scanned offline into the same DuckDB store as a sweep.

The parts (scanner/files): `sources` lists the files, `read` turns each into documents, `shapes`
finds and attributes the bodies in them, `worker` scans files in a process pool and hands back only
redacted results. This module runs them: the one writer of the store, progress, and the outcome
whose exit status the command returns (0 clean, 1 open findings, 3 something not scanned and nothing
found). It prints nothing: progress goes to the `ScanProgress` the command passes in, and what a person
and a scheduler see (that progress bar, the summary) is files_summary.py in the report package; the
command is scanner/cli/scan_files.py.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from scanner.settings import Settings
from scanner.errors import ScanFailed, describe
from scanner.files.shapes import Where
from scanner.files.sources import Unlisted, expand
from scanner.files.worker import FileResult, scan_all
from scanner.api.flow_api import parse_api_time
from scanner.store.database import Batch, Store, finding_id, utcnow
from scanner.keys import fingerprint_key
from scanner.store.schema import FILE_FILTERED_COLUMNS, FILE_FINDING_COLUMNS, FILE_SKIPPED_COLUMNS
from scanner.pipeline.record import count_skip
from scanner.pipeline.sweep import EXIT_CLEAN, EXIT_FINDINGS, EXIT_INCOMPLETE, KnownSources, build_engine

log = logging.getLogger("flowleaks.scan_files")

KIND = "scan-files"
MIB = 1024 * 1024
FLUSH_ROWS = 5000
VAULT_UNAVAILABLE = "known values unavailable"


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


class ScanProgress(Protocol):
    """What the run tells a progress display: counts and sizes only, never a name or a finding.
    Started once the files are listed (their number and bytes are the totals), stopped however the
    scan ends."""

    def start(self, files: int, size: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def stop(self) -> None: ...


class _Quiet:
    """No progress display (--quiet)."""

    def start(self, files: int, size: int) -> None:
        pass

    def advance(self, size: int) -> None:
        pass

    def stop(self) -> None:
        pass


# -- the run -----------------------------------------------------------------------------------------

def run_files(settings: Settings, paths: Sequence[str], jobs: int, max_mb: int, known_sources: KnownSources,
              progress: ScanProgress | None = None) -> FilesOutcome:
    """progress: where the scan's progress goes (the command's bar), or None for none (--quiet)."""
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
        store.apply_suppressions(scan_id)
        out.open_findings = store.open_in_scan(scan_id)
        out.duration_s = time.monotonic() - started
        store.finish_scan(scan_id, complete=out.complete, skipped=sum(out.skipped.values()), findings=out.findings)
        return out
    finally:
        store.close()


def _scan(writer: "_Writer", sources: Sequence[Any], jobs: int, engine: Any, known: Any, key: bytes,
          max_bytes: int, progress: ScanProgress | None) -> None:
    """Scan and write; a scan stopped midway keeps what it wrote and says so in `scans`."""
    progress = progress or _Quiet()
    try:
        progress.start(len(sources), sum(s.size for s in sources))
        try:
            for result in scan_all(sources, jobs, engine, known, key, max_bytes):
                writer.add(result)
                progress.advance(result.size)
        finally:
            progress.stop()
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
        blocking, detail = count_skip(self.out.skipped, reason, detail)  # as the crawl's: redacted, bounded
        self.out.blocking += blocking
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
