"""Run one scan end to end: credentials → client → known values → crawl → store → outcome.

`sweep` (incident response: a time window, every run in it) and `scan` (nightly: incremental) share
this path; they differ only in CrawlOptions.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from .auth import make_token_provider
from .config import Settings
from .errors import ScanFailed, describe
from .crawl import Crawl, CrawlOptions, CrawlStats
from .dataverse import DataverseTarget, scan_environment_variables
from .flow_api import FlowApi
from .http import HttpClient
from .keyvault import load_vault, vault_url
from .store import Store, fingerprint_key
from .suppress import apply_suppressions

log = logging.getLogger("flowleaks.sweep")

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_ERROR = 0, 1, 2, 3, 4


@dataclass
class KnownSources:
    vaults: tuple[str, ...] = ()
    vault_versions: bool = False
    stdin_lines: Iterable[str] | None = None
    hashes_file: str | None = None


@dataclass
class Outcome:
    scan_id: str
    stats: CrawlStats
    http: dict[str, Any]
    open_findings: int
    duration_s: float
    complete: bool
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.stats.unmatched_scope:  # a typo in a scope is not "not leaked"
            return EXIT_USAGE
        if self.open_findings:
            return EXIT_FINDINGS
        return EXIT_CLEAN if self.complete else EXIT_INCOMPLETE

    def scope_error(self) -> str | None:
        """One line naming what matched nothing and what exists, for a scope typo."""
        s = self.stats
        if not s.unmatched_scope:
            return None
        known = ", ".join(s.known_scope[:15]) + (f", … ({len(s.known_scope)} in all)" if len(s.known_scope) > 15 else "")
        return (f"{' and '.join(s.unmatched_scope)} matched nothing the API listed; "
                f"it lists: {known or 'nothing'}")


def build_engine(key: bytes, known_sources: KnownSources | None, min_confidence: str = "medium"):
    from detectors.engine import Engine
    from detectors.known_values import KnownValues

    known = KnownValues(key=key)
    if known_sources:
        if known_sources.stdin_lines is not None:
            known.add_values_from_lines(known_sources.stdin_lines, source_prefix="stdin")
            known_sources.stdin_lines = None  # nothing of the values is kept past this point
        if known_sources.hashes_file:
            with open(known_sources.hashes_file, encoding="utf-8") as f:
                known.add_hashes_from_lines(f, source_prefix=known_sources.hashes_file)
    return Engine(known=known, min_confidence=min_confidence), known


async def _execute(settings: Settings, options: CrawlOptions, known_sources: KnownSources | None,
                   store: Store, scan_id: str, progress: Callable | None,
                   transport: Callable | None = None, dataverse: Sequence[DataverseTarget] = ()) -> Outcome:
    started = time.monotonic()
    key = fingerprint_key(settings.db)
    # `record` scrubs everything the engine finds from the cassette: it looks at every confidence
    engine, known = build_engine(key, known_sources,
                                 "low" if options.kind == "record" else settings.min_confidence)
    tokens = make_token_provider(settings.auth, settings.cloud)
    notes: list[str] = []
    inner = transport(engine) if transport else None
    async with HttpClient(tokens, settings.http, transport=inner) as http:
        api = FlowApi(http, settings.flow_api_url, settings.cloud.flow_audience,
                      as_admin=settings.as_admin, pinned_root=settings.pinned_flow_api)
        crawl = Crawl(api, http, store, engine, key, options, scan_id, on_progress=progress)
        for vault in (known_sources.vaults if known_sources else ()):
            url = vault_url(vault, settings.cloud)
            try:
                loaded = await load_vault(http, url, settings.cloud, known, versions=known_sources.vault_versions)
            except Exception as exc:  # noqa: BLE001 - a vault that fails is recorded; the sweep goes on
                crawl.skip(None, None, None, None, None, "known values unavailable", f"{vault}: {exc}")
                continue
            notes.append(f"known values: {loaded.loaded} secrets from {loaded.vault}")
            for err in loaded.errors:
                crawl.skip(None, None, None, None, None, "known values unavailable", f"{loaded.vault}: {err}")
        for target in dataverse:  # PA007 live: environment variables holding a secret as plain text
            try:
                found = await scan_environment_variables(http, target, engine=engine, key=key)
            except Exception as exc:  # noqa: BLE001 - an org that fails is recorded; the sweep goes on
                crawl.skip(target.environment, None, None, None, "definition", "dataverse unavailable",
                           f"{target.url}: {describe(exc)}")
                continue
            for err in found.errors:
                crawl.skip(target.environment, None, None, None, "definition", "dataverse unavailable",
                           f"{target.url}: {err}")
            crawl.add_environment_posture(target.environment, found.findings, resolve=found.complete)
            notes.append(f"environment variables: {found.definitions} definitions from {target.url} "
                         f"({target.environment}), {len(found.findings)} PA007 findings")
        with engine.session():
            stats = await crawl.run()
        http_stats = {"requests": http.stats.requests, "api_requests": http.stats.api_requests,
                      "content_requests": http.stats.content_requests, "throttled": http.stats.throttled,
                      "retries": http.stats.retries, "throttle_wait_s": round(http.stats.throttle_wait_s, 2),
                      "bytes_downloaded": http.stats.bytes_downloaded, "refused": http.stats.refused,
                      "by_kind": dict(http.stats.by_kind)}
    return Outcome(scan_id, stats, http_stats, 0, time.monotonic() - started, stats.complete, notes)


def count_open(store: Store, options: CrawlOptions, scan_id: str) -> int:
    """Open findings behind the exit code. A sweep answers for what it saw in its window; the
    nightly scan answers for everything still open in its scope, old findings included, until
    they are resolved or suppressed. A scope names environments and flows by id or display name
    (as `--env`/`--flow` accept them), so both are matched, through the stored names."""
    if options.kind != "scan":
        return store.query("SELECT count(*) FROM findings WHERE scan_id = ? AND status = 'open'", [scan_id])[0][0]
    sql, params = "SELECT count(*) FROM findings f WHERE f.status = 'open'", []
    if options.environments:
        sql += (" AND (list_contains($envs, lower(f.environment)) OR EXISTS (SELECT 1 FROM environments e "
                "WHERE e.environment = f.environment AND list_contains($envs, lower(e.display_name))))")
        params.append(("envs", [e.lower() for e in options.environments]))
    if options.flows:
        sql += (" AND (list_contains($flows, lower(f.flow_id)) OR EXISTS (SELECT 1 FROM flows w "
                "WHERE w.environment = f.environment AND w.flow_id = f.flow_id "
                "AND list_contains($flows, lower(w.display_name))))")
        params.append(("flows", [f.lower() for f in options.flows]))
    return store.con.execute(sql, dict(params)).fetchall()[0][0]


def run_scan(settings: Settings, options: CrawlOptions, known_sources: KnownSources | None = None,
             progress: Callable | None = None, params: dict | None = None,
             transport: Callable | None = None, dataverse: Sequence[DataverseTarget] = ()) -> Outcome:
    """transport: optional factory engine -> httpx transport (used by `flowleaks record`).
    dataverse: orgs whose environment variables get the PA007 check (`--dataverse-url`)."""
    store = Store(settings.db)
    try:
        scan_id = store.begin_scan(options.kind, params or {})
        try:
            outcome = asyncio.run(_execute(settings, options, known_sources, store, scan_id, progress,
                                           transport, dataverse))
        except Exception as exc:
            store.finish_scan(scan_id, complete=False, status="failed", error=describe(exc))
            runs, flows = store.query("SELECT count(*), count(DISTINCT environment || '/' || flow_id) FROM runs "
                                      "WHERE scan_id = ?", [scan_id])[0]
            raise ScanFailed(f"{describe(exc)}; scan {scan_id} had stored {runs} runs of {flows} flows when it "
                             f"stopped (rerun to resume)") from exc
        apply_suppressions(store.con, scan_id)
        outcome.open_findings = count_open(store, options, scan_id)
        s, h = outcome.stats, outcome.http
        store.finish_scan(
            scan_id, complete=outcome.complete,
            environments_planned=s.environments_planned, environments_scanned=s.environments_scanned,
            flows_planned=s.flows_planned, flows_scanned=s.flows_scanned,
            runs_planned=s.runs_planned, runs_scanned=s.runs_scanned,
            content_fetched=s.content_fetched, content_reused=s.content_reused,
            bytes_downloaded=h["bytes_downloaded"], requests=h["requests"], throttled=h["throttled"],
            retries=h["retries"], skipped=sum(s.skipped.values()), findings=s.findings)
        return outcome
    finally:
        store.close()


def read_stdin_lines() -> Iterator[str]:
    """Known values from stdin, one per line, read lazily: each line is hashed as it is read, so no
    list of plaintext values outlives the loading (DESIGN invariant 4)."""
    return (line.rstrip("\r\n") for line in sys.stdin)


def write_summary_json(path: str, outcome: Outcome) -> None:
    """The scheduler's view of a scan: counts, completeness, duration, requests, 429s (mode 0600)."""
    import json

    from .private import write_private_text

    s = outcome.stats
    data = {
        "scan_id": outcome.scan_id, "complete": outcome.complete, "exit_code": outcome.exit_code,
        "duration_s": round(outcome.duration_s, 3), "open_findings": outcome.open_findings,
        "findings_seen": s.findings,
        "environments": {"planned": s.environments_planned, "scanned": s.environments_scanned},
        "flows": {"planned": s.flows_planned, "scanned": s.flows_scanned},
        "runs": {"planned": s.runs_planned, "scanned": s.runs_scanned},
        "content": {"fetched": s.content_fetched, "reused": s.content_reused},
        "skipped": dict(s.skipped), **{k: v for k, v in outcome.http.items()},
    }
    write_private_text(path, json.dumps(data, indent=2))
