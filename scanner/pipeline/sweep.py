"""Run one scan end to end: credentials → client → known values → Dataverse environment variables
(PA007) → crawl → store → outcome.

`sweep` (incident response: a time window, every run in it) and `scan` (nightly: incremental) share
this path; they differ only in CrawlOptions.

Every database call of a scan runs on one thread, the StoreWriter's (writer.py): it opens the Store,
starts the scan row, serves the crawl, applies suppressions, counts, finishes the row and closes.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from scanner.api.dataverse import DataverseTarget
from scanner.api.flow_api import FlowApi
from scanner.api.keyvault import load_vault, vault_url
from scanner.errors import ScanFailed, describe
from scanner.keys import fingerprint_key
from scanner.net.auth import make_token_provider
from scanner.net.http import HttpClient
from scanner.pipeline.crawl import Crawl, CrawlOptions, CrawlStats
from scanner.pipeline.environment_variables import scan_environment_variables
from scanner.pipeline.shard import key_id
from scanner.pipeline.writer import StoreWriter
from scanner.private import check_output_path
from scanner.redact import redact_url
from scanner.settings import Settings
from scanner.store.database import Store

log = logging.getLogger("flowleaks.sweep")

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_ERROR = 0, 1, 2, 3, 4


@dataclass
class KnownSources:
    vaults: tuple[str, ...] = ()
    vault_versions: bool = False
    stdin_lines: Iterable[str] | None = None
    hashes_file: str | None = None
    notes: list[str] = field(default_factory=list)  # what was loaded and dropped (build_engine fills it)


@dataclass
class Outcome:
    scan_id: str
    stats: CrawlStats
    http: dict[str, Any]
    open_findings: int
    duration_s: float
    complete: bool
    notes: list[str] = field(default_factory=list)
    new_findings: int = 0  # open findings first seen by this scan (first_scan_id); the rest were reported before
    shard: Any = None      # scanner.shard.Shard when this process scanned one shard of the tenant

    @property
    def old_open_findings(self) -> int:
        """Open findings behind the exit code that an earlier scan already reported."""
        return max(0, self.open_findings - self.new_findings)

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


def build_engine(key: bytes, known_sources: KnownSources | None, min_confidence: str = "medium",
                 custom_rules: Any = None):
    from detectors.engine import Engine
    from detectors.known_values import KnownValues

    from scanner.pipeline.matcher_cache import install

    install()
    known = KnownValues(key=key)
    if known_sources:
        if known_sources.stdin_lines is not None:
            known.add_values_from_lines(known_sources.stdin_lines, source_prefix="stdin")
            known_sources.stdin_lines = None  # nothing of the values is kept past this point
            known_sources.notes.append(_loaded_note("known values", known.values, "stdin", [
                (known.ignored_short, f"too short (under {known.MIN_LENGTH} characters)"),
                (known.ignored_empty, "empty")]))
        if known_sources.hashes_file:
            empty_before = known.ignored_empty
            with open(known_sources.hashes_file, encoding="utf-8") as f:
                known.add_hashes_from_lines(f, source_prefix=known_sources.hashes_file)
            first = known.first_invalid_hash_line
            bad = f"not a SHA-256 hex digest (64 hex characters{f', first at line {first}' if first else ''})"
            known_sources.notes.append(_loaded_note("known hashes", known.hashes, known_sources.hashes_file, [
                (known.invalid_hash_lines, bad), (known.ignored_empty - empty_before, "empty")]))
    return Engine(known=known, min_confidence=min_confidence, custom=custom_rules), known


def _loaded_note(what: str, loaded: int, source: str, dropped: list[tuple[int, str]]) -> str:
    """`known values: 2 from stdin; dropped 1 line: too short (…)` — counts and reasons, never a value.
    Zero loaded is said loudly: the user believes these values are being looked for."""
    text = f"{what}: {loaded} from {source}"
    if not loaded:
        text += " (NOTHING TO MATCH from this input)"
    reasons = [f"{n} {why}" for n, why in dropped if n]
    if reasons:
        total = sum(n for n, _ in dropped)
        text += f"; dropped {total} line{'s' if total != 1 else ''}: " + ", ".join(reasons)
    return text


async def _execute(settings: Settings, options: CrawlOptions, known_sources: KnownSources | None,
                   db: StoreWriter, scan_id: str, progress: Callable | None,
                   transport: Callable | None = None, dataverse: Sequence[DataverseTarget] = ()) -> Outcome:
    started = time.monotonic()
    key = fingerprint_key(settings.db)
    # `record` scrubs everything the engine finds from the cassette: it looks at every confidence
    engine, known = build_engine(key, known_sources,
                                 "low" if options.kind == "record" else settings.min_confidence,
                                 settings.custom_rules)
    tokens = make_token_provider(settings.auth, settings.cloud)
    notes: list[str] = list(known_sources.notes) if known_sources else []
    inner = transport(engine) if transport else None
    async with HttpClient(tokens, settings.http, transport=inner) as http:
        http.on_retry = getattr(progress, "retrying", None)  # a silent retry looks like a hang
        api = FlowApi(http, settings.flow_api_url, settings.cloud.flow_audience,
                      as_admin=settings.as_admin, pinned_root=settings.pinned_flow_api)
        crawl = Crawl(api, http, db, engine, key, options, scan_id, on_progress=progress)
        await crawl.prepare()  # the suppressions, before the PA007 findings below take a status
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
        return store.open_in_scan(scan_id)
    return store.open_in_scope(options.environments, options.flows)


def run_scan(settings: Settings, options: CrawlOptions, known_sources: KnownSources | None = None,
             progress: Callable | None = None, params: dict | None = None,
             transport: Callable | None = None, dataverse: Sequence[DataverseTarget] = (),
             outputs: dict[str, str | None] | None = None) -> Outcome:
    """transport: optional factory engine -> httpx transport (used by `flowleaks record`).
    dataverse: orgs whose environment variables get the PA007 check (`--dataverse-url`).
    outputs: option -> file the command writes afterwards, checked before the first request."""
    # Fail before the work: every output path, then the credential configuration, then the database.
    for option, path in (outputs or {}).items():
        if path:
            check_output_path(path, option)
    make_token_provider(settings.auth, settings.cloud)
    db = StoreWriter.open(settings.db)  # the Store lives on the writer thread: every call goes there
    try:
        scan_id = db.call(Store.begin_scan, options.kind, params or {})
        # what `flowleaks merge` checks before it combines shard databases: one key, one tenant
        db.call(Store.set_meta, {"fingerprint_key_id": key_id(fingerprint_key(settings.db)),
                                 "tenant": settings.auth.tenant_id or "", "flow_api": redact_url(settings.flow_api_url)})
        try:
            outcome = asyncio.run(_execute(settings, options, known_sources, db, scan_id, progress,
                                           transport, dataverse))
        except Exception as exc:
            db.call(Store.finish_scan, scan_id, complete=False, status="failed", error=describe(exc))
            runs, flows = db.call(Store.runs_stored, scan_id)
            if not runs:  # nothing to resume: the cause alone is the whole story
                raise ScanFailed(describe(exc)) from exc
            raise ScanFailed(f"{describe(exc)}; scan {scan_id} had stored {runs} runs of {flows} flows when it "
                             f"stopped (rerun to resume)") from exc
        db.call(Store.apply_suppressions, scan_id)
        if options.shard is not None:
            sh, st = options.shard, outcome.stats
            outcome.shard = sh
            outcome.notes.insert(0, f"shard {sh}: this scan covers the {st.flows_planned} of "
                                    f"{st.flows_planned + st.flows_other_shards} flows in scope that hash to "
                                    f"shard {sh.index} of {sh.count}; its findings and exit code speak for "
                                    f"this shard only (combine the shards with flowleaks merge)")
        outcome.open_findings = db.call(count_open, options, scan_id)
        outcome.new_findings = db.call(Store.new_open_in_scan, scan_id)
        s, h = outcome.stats, outcome.http
        db.call(
            Store.finish_scan, scan_id, complete=outcome.complete,
            environments_planned=s.environments_planned, environments_scanned=s.environments_scanned,
            flows_planned=s.flows_planned, flows_scanned=s.flows_scanned,
            runs_planned=s.runs_planned, runs_scanned=s.runs_scanned,
            content_fetched=s.content_fetched, content_reused=s.content_reused,
            bytes_downloaded=h["bytes_downloaded"], requests=h["requests"], throttled=h["throttled"],
            retries=h["retries"], skipped=sum(s.skipped.values()), findings=s.findings)
        return outcome
    finally:
        db.close()


def read_stdin_lines() -> Iterator[str]:
    """Known values from stdin, one per line, read lazily: each line is hashed as it is read, so no
    list of plaintext values outlives the loading (DESIGN invariant 4).

    From a terminal, a line on stderr says the scan is waiting for input (it would look hung), and the
    typed secrets are not echoed (they would stay on screen and in the scrollback)."""
    stream = sys.stdin
    if not stream.isatty():
        return (line.rstrip("\r\n") for line in stream)
    return _read_terminal(stream)


def _read_terminal(stream) -> Iterator[str]:
    sys.stderr.write("flowleaks: reading known values from the terminal, one per line (not echoed); "
                     "end with Ctrl-D\n")
    sys.stderr.flush()
    try:
        import termios

        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO  # lflags; canonical mode stays, so Enter and Ctrl-D work as usual
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
    except Exception:  # noqa: BLE001 - ImportError, termios.error, OSError
        saved = None  # no termios (Windows) or not a real tty: read with echo rather than fail
    try:
        for line in stream:
            yield line.rstrip("\r\n")
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def write_summary_json(path: str, outcome: Outcome) -> None:
    """The scheduler's view of a scan: counts, completeness, duration, requests, 429s (mode 0600)."""
    import json

    from scanner.private import write_private_text

    s = outcome.stats
    data = {
        "scan_id": outcome.scan_id, "complete": outcome.complete, "exit_code": outcome.exit_code,
        "duration_s": round(outcome.duration_s, 3), "open_findings": outcome.open_findings,
        # what the scheduler alerts on: new since the previous scan; the old ones were reported then
        "new_findings": outcome.new_findings, "old_open_findings": outcome.old_open_findings,
        "findings_seen": s.findings,
        "environments": {"planned": s.environments_planned, "scanned": s.environments_scanned},
        "flows": {"planned": s.flows_planned, "scanned": s.flows_scanned},
        "runs": {"planned": s.runs_planned, "scanned": s.runs_scanned},
        "content": {"fetched": s.content_fetched, "reused": s.content_reused},
        "detection": s.detection,  # counts: bodies, worker processes used, batches where they ran
        "skipped": dict(s.skipped), **{k: v for k, v in outcome.http.items()},
        "notes": list(outcome.notes),  # counts and sources only (known values are never echoed)
        "shard": outcome.shard.as_param() if outcome.shard is not None else None,
    }
    write_private_text(path, json.dumps(data, indent=2))
