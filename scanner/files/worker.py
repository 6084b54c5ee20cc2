"""One file → redacted results; many files → a process pool (`--jobs`).

Each worker process builds its own Engine from a pickled KnownValues (keyed hashes only) and returns
a `FileResult`: fingerprints, previews, lengths, rules and paths. A secret found in a file never
crosses the process boundary, and nothing here writes anywhere: the parent is the one writer.
Spawned, not forked, workers: the parent runs DuckDB's and rich's threads, which a fork would copy
mid-flight. Small files travel in batches (see BATCH_BYTES).
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from detectors.base import Drop, Hit

from scanner.pipeline.detection import RedactedHit
from scanner.errors import describe
from scanner.files.read import Document, Problem, read
from scanner.files.shapes import Body, Where, bodies, hint_from_name
from scanner.files.sources import Source

SCAN_ERROR = "scan error"
IN_FLIGHT_PER_JOB = 4  # tasks queued per worker: enough to keep it busy, few enough to keep memory flat
# Small files travel to a worker together: one round trip per file would cost about as much as
# scanning a small body, and leave the workers waiting on the queue.
BATCH_BYTES = 256 * 1024
BATCH_FILES = 64


@dataclass
class FileResult:
    """What scanning one file produced; nothing in it is a secret (safe to pickle, log and store)."""

    name: str
    size: int                     # bytes on disk
    scanned: bool = True          # False: the file as a whole could not be read
    read: int = 0                 # bytes of documents read (decompressed)
    bodies: int = 0
    hits: list[tuple[Where, RedactedHit]] = field(default_factory=list)   # json_path: in the file
    skipped: list[tuple[Where, str, str]] = field(default_factory=list)   # (where, reason, detail)
    dropped: list[tuple[Where, Drop]] = field(default_factory=list)

    @classmethod
    def failed(cls, source: Source, detail: str) -> "FileResult":
        return cls(source.name, source.size, scanned=False,
                   skipped=[(hint_from_name(source.name), SCAN_ERROR, detail)])


def join(base: str, path: str) -> str:
    """`$.actions.HTTP.output` + `$.headers.Authorization` → `$.actions.HTTP.output.headers.Authorization`:
    a body's paths are rooted at the body, a file's at the file."""
    return base + path[1:] if path.startswith("$") else f"{base}{path}"


class FileScanner:
    def __init__(self, engine: Any, key: bytes, max_bytes: int):
        self.engine, self.key, self.max_bytes = engine, key, max_bytes

    def scan(self, source: Source) -> FileResult:
        result = FileResult(source.name, source.size)
        hint = hint_from_name(source.name)
        for item in read(source.path, source.name, self.max_bytes):
            if isinstance(item, Problem):
                self._problem(result, hint, item)
                continue
            result.read += item.size
            for body in self._bodies(item, hint):
                self._scan(result, body, join(item.prefix, body.path))
        return result

    @staticmethod
    def _bodies(doc: Document, hint: Where) -> list[Body]:
        return bodies(doc.value, hint) if doc.is_json else [Body(hint, "$", doc.value)]

    @staticmethod
    def _problem(result: FileResult, hint: Where, problem: Problem) -> None:
        if problem.prefix is None:
            result.scanned = False
        result.skipped.append((hint, problem.reason, problem.detail))

    def _scan(self, result: FileResult, body: Body, base: str) -> None:
        raw = self.engine.scan(body.value, side=body.where.side)
        result.bodies += 1
        result.hits.extend((body.where, self._redact(h, join(base, h.json_path))) for h in raw.hits)
        result.skipped.extend((body.where, s.reason, f"{join(base, s.json_path)} {s.detail}".strip())
                              for s in raw.skipped)
        result.dropped.extend((body.where, Drop(d.rule_id, d.filter, join(base, d.json_path)))
                              for d in raw.dropped)

    def _redact(self, h: Hit, path: str) -> RedactedHit:
        """The secret ends here: only its keyed fingerprint, preview and length go on."""
        return RedactedHit.of(h, self.key, path)


# -- the pool ----------------------------------------------------------------------------------------

_WORKER: FileScanner | None = None


def _init_worker(known: Any, key: bytes, max_bytes: int, min_confidence: str = "medium",
                 custom: Any = None, matcher: str | None = None) -> None:
    global _WORKER
    from scanner.pipeline.worker_engine import start_worker_engine

    _WORKER = FileScanner(start_worker_engine(known, min_confidence, custom, matcher), key, max_bytes)


def _scan_in_worker(batch: list[Source]) -> list[FileResult]:
    assert _WORKER is not None
    return [_safe(_WORKER.scan, source) for source in batch]


def _safe(scan, source: Source) -> FileResult:
    try:
        return scan(source)
    except Exception as exc:  # noqa: BLE001 - one file's failure is that file's skip, not the run's end
        return FileResult.failed(source, _why(exc))


def _why(exc: Exception) -> str:
    if isinstance(exc, BrokenProcessPool):
        return "a worker process died (killed, or out of memory?); rerun with fewer --jobs or a lower --max-mb"
    return describe(exc)  # type and place only: an exception's text could quote the file


def scan_all(sources: Sequence[Source], jobs: int, engine: Any, known: Any, key: bytes,
             max_bytes: int) -> Iterator[FileResult]:
    """Results as files finish (any order: finding ids do not depend on it). One job, or files that
    make one batch, run in this process with `engine`; more start up to `jobs` worker processes."""
    groups = list(batches(sources)) if jobs > 1 else []
    if len(groups) <= 1:
        scanner = FileScanner(engine, key, max_bytes)
        with engine.session():
            for source in sources:
                yield _safe(scanner.scan, source)
        return
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(groups)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(known, key, max_bytes, engine.min_confidence, engine.custom,
                                         engine.matcher))
    try:
        yield from _pooled(pool, groups, jobs * IN_FLIGHT_PER_JOB)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: files in flight finish, the rest never start


def batches(sources: Sequence[Source]) -> Iterator[list[Source]]:
    """Consecutive files, up to BATCH_BYTES or BATCH_FILES together (a big file travels alone)."""
    batch: list[Source] = []
    size = 0
    for source in sources:
        if batch and (size + source.size > BATCH_BYTES or len(batch) >= BATCH_FILES):
            yield batch
            batch, size = [], 0
        batch.append(source)
        size += source.size
    if batch:
        yield batch


def _pooled(pool: ProcessPoolExecutor, groups: list[list[Source]], window: int) -> Iterator[FileResult]:
    todo = iter(groups)
    pending: dict[Future, list[Source]] = {}
    while True:
        for batch in todo:
            try:
                pending[pool.submit(_scan_in_worker, batch)] = batch
            except Exception as exc:  # noqa: BLE001 - a broken pool: every file left is on record
                yield from (FileResult.failed(source, _why(exc)) for source in batch)
                continue
            if len(pending) >= window:
                break
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            batch = pending.pop(future)
            try:
                yield from future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (BrokenProcessPool) or raised
                yield from (FileResult.failed(source, _why(exc)) for source in batch)
