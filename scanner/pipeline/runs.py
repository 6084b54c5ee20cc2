"""The read-runs stage: list each planned flow's runs in its window, read each run (one `$expand` read
when possible, the actions list and loop repetitions when it is not), and turn it into content
units: one per side of each trigger, action and repetition execution, with its link (or why it has
none). Runs go on to the content stage (content.py) on a bounded queue; API requests are paced by
the API pacer (scanner/net/pacer.py).

A flow is finished once its listing ended and every run it listed has left the stages
(`finish_flow`): then run findings whose run is gone are resolved and, when nothing blocked, its
watermark advances, in the writer's order after its runs' rows.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from scanner.api.flow_api import FlowApi, as_dict, content_links, is_secured, text
from scanner.net.errors import ApiError, FlowleaksHttpError
from scanner.pipeline.queues import Closable, drain, together
from scanner.store import lifecycle

if TYPE_CHECKING:
    from scanner.pipeline.crawl import CrawlOptions, CrawlStats
    from scanner.pipeline.plan import FlowContext, Plan
    from scanner.pipeline.record import Recorder

log = logging.getLogger("flowleaks.crawl")

# Trigger/action types whose executions carry no content links at all (a schedule fires with nothing).
NO_CONTENT_TYPES = frozenset({"recurrence"})
NOT_RUN_STATUSES = frozenset({"skipped", "running", "waiting", "paused", "suspended"})
# Definition action types that have no content links of their own in run history.
CONTAINER_TYPES = frozenset({"scope", "if", "switch", "foreach", "until", "terminate"})
FLOWS_LISTED_AT_ONCE = 8   # flows whose runs are being listed at the same time
RUN_READERS = 32           # run reads in progress (the API slots bound the requests themselves)


@dataclass
class ContentUnit:
    action: str
    repetition: str | None
    side: str
    link: Any                   # the link object, None (the API sent null) or None when absent
    status: str = ""            # the action's (or repetition's) run status, lowercased
    sibling: bool = False       # the other side of the same action execution has a readable link


@dataclass
class RunToRead:
    """A run the listing returned (or a run still Running last time, by name): the read-runs input."""
    ctx: FlowContext
    listed: dict


@dataclass
class RunRead:
    """A run, read: what the content stage takes."""
    ctx: FlowContext
    run_id: str
    listed: dict
    run: dict
    units: list[ContentUnit]
    meta: list[tuple] = field(default_factory=list)  # one row per action execution (the actions table)


def units_of(name: str, repetition: str | None, prefix: str, props: dict) -> list[ContentUnit]:
    """The two sides of one trigger/action/repetition execution, as the API showed them."""
    links = content_links(props)
    status = text(props.get("status")).lower()
    return [ContentUnit(name, repetition, f"{prefix}_{io}", link, status,
                        not is_secured(links["outputs" if io == "inputs" else "inputs"]))
            for io, link in links.items()]


class ReadRuns:
    """The read-runs stage: `run` takes planned flows from `flows` and puts read runs on `runs`."""

    def __init__(self, api: FlowApi, plan: Plan, options: CrawlOptions, stats: CrawlStats, rec: Recorder):
        self.api, self.plan, self.opt, self.stats, self.rec = api, plan, options, stats, rec
        # flows waiting for their last runs: a finished one is dropped at once, so a tenant of many
        # flows never holds their definitions and run lists to the end
        self.finishing: set[asyncio.Task] = set()
        self.finish_failed: BaseException | None = None

    async def run(self, flows: Closable[FlowContext], runs: Closable[RunRead]) -> None:
        to_read: Closable[RunToRead] = Closable(self.opt.max_runs_in_flight)

        async def list_all() -> None:
            try:
                await drain(flows, FLOWS_LISTED_AT_ONCE, lambda ctx: self.list_runs(ctx, to_read))
            finally:
                to_read.close()

        try:
            await together(list_all(), drain(to_read, RUN_READERS, lambda r: self.read(r, runs)))
            # every run is handed on; the flows finish as the content stage gets through their runs
            await together(*self.finishing)
            if self.finish_failed is not None:
                raise self.finish_failed
        finally:
            for task in list(self.finishing):  # after a failure elsewhere: none is left waiting
                task.cancel()
            runs.close()

    async def list_runs(self, ctx: FlowContext, to_read: Closable[RunToRead]) -> None:
        """List the flow's runs (window, or after the watermark) and hand each on."""
        env, flow_id, window = ctx.environment, ctx.flow_id, ctx.run_window
        ok = True

        async def submit(run: dict) -> None:
            if not ctx.loaded:  # new runs to explain: an unchanged flow's definition is read now
                await self.plan.load_definition(ctx, ctx.props)
            self.stats.runs_planned += 1
            ctx.run_started()
            await to_read.put(RunToRead(ctx, run))

        log.debug("listing runs of %s/%s (%s)", env, flow_id, window.filter)
        try:
            async for page in self.api.runs(env, flow_id, window.filter, on_rehome=self.rec.rehomed(env, flow_id)):
                for run in page:
                    if not window.wanted(run):
                        self.stats.outside_window += 1
                        continue
                    ctx.listed.add(str(run.get("name")))
                    await submit(run)
            for run_id in window.running:  # runs still Running last time: read them again by name
                if run_id not in ctx.listed:
                    await submit({"name": run_id})
        except FlowleaksHttpError as exc:
            ok = False
            self.rec.skip(env, flow_id, None, None, None, exc.reason, f"listing runs: {exc}")
        if ok and not window.status:  # a status filter lists only some runs: absence proves nothing then
            ctx.window = window.span()
        ctx.listing_ended()
        task = asyncio.create_task(self.finish_flow(ctx, ok))
        self.finishing.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self.finishing.discard(task)
        if not task.cancelled() and task.exception() is not None and self.finish_failed is None:
            self.finish_failed = task.exception()

    async def read(self, item: RunToRead, runs: Closable[RunRead]) -> None:
        ctx, listed = item.ctx, item.listed
        env, flow, run_id = ctx.environment, ctx.flow_id, str(listed.get("name"))
        try:
            try:
                run = await self.api.get_run(env, flow, run_id)
            except ApiError as exc:
                if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                    self.rec.skip(env, flow, run_id, None, None, "gone", str(exc))
                    ctx.gone.append(run_id)
                    await self.rec.run_ended()
                    ctx.run_ended()
                    return
                raise
            meta: list[tuple] = []
            units = await self.collect_units(ctx, run_id, run, meta)
        except FlowleaksHttpError as exc:
            self.rec.skip(env, flow, run_id, None, None, exc.reason, str(exc))
            await self.rec.run_ended()
            ctx.run_ended()
            return
        await runs.put(RunRead(ctx, run_id, listed, run, units, meta))

    async def reread_units(self, ctx: FlowContext, run_id: str) -> list[ContentUnit]:
        """The run read again, for fresh content links (the content stage asks when one expired)."""
        return await self.collect_units(ctx, run_id, await self.api.get_run(ctx.environment, ctx.flow_id, run_id))

    async def collect_units(self, ctx: FlowContext, run_id: str, run: dict,
                            meta: list[tuple] | None = None) -> list[ContentUnit]:
        """Every (action, repetition, side, link) of a run, from one `$expand` read when possible.

        `meta` collects one row per action execution for the `actions` table."""
        props = as_dict(run.get("properties"))
        units: list[ContentUnit] = []
        trigger = as_dict(props.get("trigger"))
        units.extend(units_of(str(trigger.get("name") or "trigger"), None, "trigger", trigger))
        actions = props.get("actions")
        if not isinstance(actions, dict):
            actions = {}
        # An action with no links at all is a fallback case, unless the definition or the run says
        # why: a container has no content, a fully secured action may have its links left out, and an
        # action that did not run (Skipped) or has not finished has none yet.
        missing = [n for n, a in actions.items()
                   if isinstance(a, dict) and "inputsLink" not in a and "outputsLink" not in a
                   and not a.get("repetitionCount")
                   and text(a.get("status")).lower() not in NOT_RUN_STATUSES
                   and ctx.action_types.get(n, "").lower() not in CONTAINER_TYPES
                   and ctx.secured.get(n, frozenset()) < {"inputs", "outputs"}]
        if not actions or missing:
            # $expand gave no actions or left links out: the actions list has them (one paged call).
            listed = await self.api.actions(ctx.environment, ctx.flow_id, run_id,
                                            on_rehome=self.rec.rehomed(ctx.environment, ctx.flow_id, run_id))
            for item in listed:
                name = str(item.get("name"))
                if name in actions and name not in missing:
                    continue
                actions[name] = as_dict(item.get("properties"))

        def note(name: str, rep: str | None, p: dict) -> None:
            if meta is not None:
                i, o = p.get("inputsLink"), p.get("outputsLink")
                meta.append((name, rep, p.get("status"), p.get("code"),
                             i is not None and is_secured(i), o is not None and is_secured(o),
                             (i or {}).get("contentSize") if isinstance(i, dict) else None,
                             (o or {}).get("contentSize") if isinstance(o, dict) else None))

        for name, action in actions.items():
            if not isinstance(action, dict):
                continue
            note(name, None, action)
            if action.get("repetitionCount") or action.get("repetitionIndexes"):
                try:
                    reps = await self.api.repetitions(
                        ctx.environment, ctx.flow_id, run_id, name,
                        on_rehome=self.rec.rehomed(ctx.environment, ctx.flow_id, run_id, name))
                except FlowleaksHttpError as exc:  # this loop's iterations are lost, not the run's other actions
                    self.rec.skip(ctx.environment, ctx.flow_id, run_id, name, "action_inputs", exc.reason,
                                  f"listing repetitions: {exc}")
                    continue
                if reps:
                    for rep in reps:
                        rprops = as_dict(rep.get("properties"))
                        note(name, str(rep.get("name")), rprops)
                        units.extend(units_of(name, str(rep.get("name")), "action", rprops))
                    continue
            if ctx.action_types.get(name, "").lower() in CONTAINER_TYPES and \
                    "inputsLink" not in action and "outputsLink" not in action:
                continue
            units.extend(units_of(name, None, "action", action))
        return units

    async def finish_flow(self, ctx: FlowContext, listed_ok: bool) -> None:
        """Once every run of the flow has left the stages: resolve run findings whose run is gone and,
        when the listing was complete and nothing blocked, advance the watermark."""
        await ctx.finished.wait()
        if listed_ok:
            await self.resolve_gone(ctx)
        if listed_ok and not self.rec.flow_blocking.get((ctx.environment, ctx.flow_id)):
            self.stats.flows_scanned += 1
            if self.opt.incremental:
                self.rec.add_watermark(ctx)

    async def resolve_gone(self, ctx: FlowContext) -> None:
        """Resolve run findings whose run the API no longer serves: not in this complete listing of the
        window, or 404 when read. Findings of older runs outside the window are checked by reading the
        run (the service's retention varies by plan: the clock alone never resolves anything)."""
        env, flow = ctx.environment, ctx.flow_id
        if ctx.window is not None:
            low, high, exclusive = ctx.window
            self.stats.resolved += await self.rec.resolve_unlisted(env, flow, low, high, sorted(ctx.listed),
                                                                   exclusive)
            oldest = datetime.now(timezone.utc) - timedelta(days=lifecycle.RETENTION_DAYS)
            before = min(low, oldest) if low is not None else oldest
            for run_id in await self.rec.runs_to_probe(env, flow, before):
                try:
                    await self.api.get_run(env, flow, run_id)
                except ApiError as exc:
                    if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                        ctx.gone.append(run_id)
                except FlowleaksHttpError:  # unknown: the finding stays open
                    pass
        if ctx.gone:
            log.info("%s/%s: %d run(s) no longer served; their findings are resolved", env, flow, len(ctx.gone))
            self.stats.resolved += await self.rec.resolve_runs(env, flow, ctx.gone)
