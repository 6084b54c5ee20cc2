"""Detection hand-off, a part of the crawl (scanner/pipeline/crawl.py): a content body goes to the
detectors (on the one detector thread, or in `--jobs` worker processes) and comes back redacted:
only fingerprints, previews and lengths leave `detect_body`.
"""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from detectors.base import Drop, Skip, fingerprint, preview
from detectors.source_outputs import source_output_hits

from scanner.posture.explain import literal_path

if TYPE_CHECKING:
    from scanner.pipeline.plan import FlowContext
    from scanner.pipeline.runs import ContentUnit


@dataclass(frozen=True, slots=True)
class RedactedHit:
    """A detector hit with the secret replaced by what may be kept: fingerprint, preview, length."""

    json_path: str
    rule_id: str
    detector: str
    fingerprint: str
    preview: str
    length: int
    known_secret: str | None
    confidence: str
    decoding: str

    @classmethod
    def of(cls, hit: Any, key: bytes, json_path: str | None = None) -> "RedactedHit":
        """The one place a detector hit's secret ends: only its keyed fingerprint, preview and
        length go on (`json_path` overrides the hit's, e.g. prefixed with a file's line)."""
        return cls(hit.json_path if json_path is None else json_path, hit.rule_id, hit.detector,
                   fingerprint(key, hit.secret), preview(hit.secret), len(hit.secret), hit.known_secret,
                   hit.confidence, hit.decoding)


@dataclass(frozen=True, slots=True)
class ContentResult:
    """What scanning one content body produced; safe to cache and to persist (no secret in it)."""

    hits: tuple[RedactedHit, ...] = ()
    skipped: tuple[Skip, ...] = ()
    dropped: tuple[Drop, ...] = ()

    # Serialised by field name, never by position: a field added or reordered later cannot shift
    # a cached fingerprint into the preview column.
    def to_json(self) -> str:
        return json.dumps({"hits": [{f: getattr(h, f) for f in RedactedHit.__slots__} for h in self.hits],
                           "skipped": [{"json_path": k.json_path, "reason": k.reason, "detail": k.detail}
                                       for k in self.skipped],
                           "dropped": [{"rule_id": d.rule_id, "filter": d.filter, "json_path": d.json_path}
                                       for d in self.dropped]})

    @classmethod
    def from_json(cls, text: str) -> "ContentResult":
        d = json.loads(text)
        return cls(tuple(RedactedHit(**h) for h in d["hits"]), tuple(Skip(**k) for k in d["skipped"]),
                   tuple(Drop(**x) for x in d["dropped"]))


class Detection:
    """The crawl's detection methods (state: Crawl.__init__)."""

    def start_detectors(self) -> None:
        """Detection in `jobs` worker processes (both cores; results leave them redacted), or on the
        one detector thread for `--jobs 1` and for `record`, whose scrubber must see each secret."""
        self.proc_pool = None
        if self.opt.jobs > 1 and self.opt.secret_sink is None:
            import multiprocessing

            e = self.engine
            self.proc_pool = ProcessPoolExecutor(
                max_workers=self.opt.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_detect_worker,
                initargs=(e.known, self.key, e.min_confidence, e.custom, e.matcher))

    async def detect(self, ctx: FlowContext, unit: ContentUnit, body: bytes, source: str | None) -> ContentResult:
        """One body through the detectors; each hit's posture cause is noted while its literal path
        (where the action's definition types the value in) is known."""
        strings = self.action_strings(ctx, unit.action)
        loop = asyncio.get_running_loop()
        if self.proc_pool is not None:
            result, literals = await loop.run_in_executor(self.proc_pool, detect_in_worker, body, unit.side,
                                                          source, strings)
        else:
            result, literals = await loop.run_in_executor(self.detect_pool, self._detect, body, unit.side,
                                                          source, strings)
        for h, literal in zip(result.hits, literals):
            self.cause(ctx, unit.action, unit.side, h.fingerprint, literal=literal, detected=True)
        return result

    def _detect(self, body: bytes, side: str, source: str | None = None,
                strings: list | None = None) -> tuple[ContentResult, list]:
        """Runs in the detector thread (`--jobs 1`, `record`)."""
        return detect_body(self.engine, self.key, body, side, source, strings, self.opt.secret_sink)


def detect_body(engine: Any, key: bytes, body: bytes, side: str, source: str | None = None,
                strings: list | None = None, secret_sink: Callable[[str], Any] | None = None
                ) -> tuple[ContentResult, list]:
    """One content body through the engine. The secrets in the engine's hits end here: only their
    fingerprint, preview and length leave this function, and for each hit where the action's
    `strings` (posture.action_strings) hold it typed in, that path (else None).

    `source`: the action is a secret source (Key Vault Get secret…) by its definition, so the
    value at its documented output field is a secret even if nothing else would flag it."""
    parsed = decode_body(body)
    raw = engine.scan(parsed, side=side)
    found = list(raw.hits)
    if source:
        for sh in source_output_hits(source, parsed, side):
            # the whole field is the secret: a pattern/entropy hit on a piece of it is the same leak,
            # and so is an entropy hit on all of it (the source output is the more specific rule)
            found = [h for h in found if h.detector == "known_value" or not (
                h.json_path == sh.json_path and h.secret in sh.secret
                and (h.secret != sh.secret or h.detector == "entropy"))]
            if not any(h.secret == sh.secret or (h.detector == "known_value" and h.json_path == sh.json_path
                                                 and h.secret in sh.secret) for h in found):
                found.append(sh)
    if secret_sink is not None:
        for h in found:
            secret_sink(h.secret)
    hits = tuple(RedactedHit.of(h, key) for h in found)
    literals = [literal_path(strings, h.secret) if strings else None for h in found]
    return ContentResult(hits, tuple(raw.skipped), tuple(raw.dropped)), literals


# -- the detection worker processes (`jobs` > 1) ---------------------------------------------------
_WORKER: tuple[Any, bytes] | None = None


def init_detect_worker(known: Any, key: bytes, min_confidence: str, custom: Any, matcher: str) -> None:
    global _WORKER
    from scanner.pipeline.worker_engine import start_worker_engine

    _WORKER = (start_worker_engine(known, min_confidence, custom, matcher), key)


def detect_in_worker(body: bytes, side: str, source: str | None, strings: list) -> tuple[ContentResult, list]:
    assert _WORKER is not None, "init_detect_worker did not run"
    engine, key = _WORKER
    return detect_body(engine, key, body, side, source, strings)


def decode_body(body: bytes) -> Any:
    """Content is JSON in practice; anything else is scanned as text (or bytes when not UTF-8)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body
