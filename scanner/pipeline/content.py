"""Content fetching, a part of the crawl (scanner/pipeline/crawl.py): one content link fetched and
handed to detection, or, for a body scanned before (the same md5 and size), its stored result reused.
The stored results of a run's units are looked up in one query through the writer (`stored_results`).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from scanner.api.flow_api import is_secured, link_key
from scanner.net.errors import FlowleaksHttpError, LinkExpired
from scanner.pipeline.detection import ContentResult
from scanner.store.database import Store, utcnow

if TYPE_CHECKING:
    from scanner.pipeline.plan import FlowContext
    from scanner.pipeline.runs import ContentUnit


def cache_version(engine: Any, key: bytes) -> str:
    """The identity a cached content result depends on: the engine (rule set with its code version,
    the known-value set, limits) and the fingerprint key (the cached hits carry fingerprints made
    with it). The key enters only as a keyed digest, so the database cannot be used to test keys."""
    key_id = hmac.new(key, b"flowleaks content cache key id", hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(f"{engine.version}|{key_id}".encode()).hexdigest()[:32]


def valid_md5_key(link: dict) -> str | None:
    """The md5+size identity of a body, only when the hash really is an md5 (16 bytes of base64):
    a fake or placeholder hash ('test==') must never make two different bodies look the same."""
    key = link_key(link)
    if not key:
        return None
    try:
        return key if len(base64.b64decode(key.rsplit(":", 1)[0], validate=True)) == 16 else None
    except ValueError:
        return None


class ContentFetching:
    """The crawl's content methods (state: Crawl.__init__)."""

    def content_key(self, ctx: FlowContext, unit: ContentUnit) -> str | None:
        """The unit's content-cache key (md5+size, and the secret source it is the output of), or None
        when results are not reused or the body has no trustworthy identity."""
        if not self.opt.reuse_content or unit.link is None or is_secured(unit.link):
            return None
        key = valid_md5_key(unit.link)
        source = ctx.sources.get(unit.action) if unit.side == "action_outputs" else None
        if key and source:  # the same body means more when it is a secret source's output
            key = f"{key}|{source}"
        return key

    async def stored_results(self, ctx: FlowContext, units: list[ContentUnit]) -> dict[str, str]:
        """The stored results of a run's units not already in memory: one query through the writer,
        not one per unit. A key missing from the answer was not stored (scan_unit does not ask again)."""
        keys = [k for k in (self.content_key(ctx, u) for u in units) if k and k not in self.reuse]
        return await self.db.run(Store.content_results, keys, self.engine_version) if keys else {}

    async def scan_unit(self, ctx: FlowContext, run_id: str, run_start: str | None, unit: ContentUnit,
                        last_try: bool = False, stored: dict[str, str] | None = None) -> bool:
        """Fetch and scan one content link. False only for an expired link worth one more try.
        `stored`: `stored_results` of the run's units (a key it lacks was asked for and not found);
        None: this unit's key is looked up alone."""
        env, flow = ctx.environment, ctx.flow_id
        link = unit.link
        if link is None:
            self.missing_link(ctx, run_id, unit)
            return True
        if is_secured(link):
            detail = "secureData" if isinstance(link, dict) and link.get("secureData") else "no uri"
            self.skip(env, flow, run_id, unit.action, unit.side, "secured", detail, unit.repetition)
            return True
        source = ctx.sources.get(unit.action) if unit.side == "action_outputs" else None
        key = self.content_key(ctx, unit)
        if key:
            cached = self.reuse.get(key)
            if cached is None:
                if stored is None:
                    stored = await self.stored_results(ctx, [unit])
                text = stored.get(key)
                cached = ContentResult.from_json(text) if text else None
            if cached is not None:
                self._remember(key, cached)
                self.stats.content_reused += 1
                self.add_result(ctx, run_id, run_start, unit, cached)
                return True
        try:
            body = await self.http.fetch_content(str(link["uri"]))
        except LinkExpired as exc:
            if not last_try:
                return False
            self.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
            return True
        except FlowleaksHttpError as exc:
            self.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
            return True
        self.stats.content_fetched += 1
        result = await self.detect(ctx, unit, body, source)
        if key:
            self._remember(key, result)
            self.batch.content.append((key, self.engine_version, result.to_json(), utcnow()))
        self.add_result(ctx, run_id, run_start, unit, result)
        return True

    def _remember(self, key: str, result: ContentResult) -> None:
        self.reuse[key] = result
        self.reuse.move_to_end(key)
        if len(self.reuse) > 20000:
            self.reuse.popitem(last=False)
