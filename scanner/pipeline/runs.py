"""Run reading, a part of the crawl (scanner/pipeline/crawl.py): list a flow's runs in its window,
read each run (one `$expand` read when possible), and turn it into content units: one per side of
each trigger, action and repetition execution, with its link (or why it has none).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scanner.api.flow_api import as_dict, content_links, is_secured, parse_api_time, text
from scanner.net.errors import ApiError, FlowleaksHttpError
from scanner.store.database import utcnow

if TYPE_CHECKING:
    from scanner.pipeline.plan import FlowContext

log = logging.getLogger("flowleaks.crawl")

# Trigger/action types whose executions carry no content links at all (a schedule fires with nothing).
NO_CONTENT_TYPES = frozenset({"recurrence"})
NOT_RUN_STATUSES = frozenset({"skipped", "running", "waiting", "paused", "suspended"})
# Definition action types that have no content links of their own in run history.
CONTAINER_TYPES = frozenset({"scope", "if", "switch", "foreach", "until", "terminate"})


@dataclass
class ContentUnit:
    action: str
    repetition: str | None
    side: str
    link: Any                   # the link object, None (the API sent null) or None when absent
    status: str = ""            # the action's (or repetition's) run status, lowercased
    sibling: bool = False       # the other side of the same action execution has a readable link


def units_of(name: str, repetition: str | None, prefix: str, props: dict) -> list[ContentUnit]:
    """The two sides of one trigger/action/repetition execution, as the API showed them."""
    links = content_links(props)
    status = text(props.get("status")).lower()
    return [ContentUnit(name, repetition, f"{prefix}_{io}", link, status,
                        not is_secured(links["outputs" if io == "inputs" else "inputs"]))
            for io, link in links.items()]


class RunReading:
    """The crawl's run-reading methods (state: Crawl.__init__)."""

    async def scan_runs(self, ctx: FlowContext) -> bool:
        """List the flow's runs (window, or after the watermark) and scan each; False if listing failed."""
        env, flow_id = ctx.environment, ctx.flow_id
        window = await self.run_window(ctx)
        tasks: list[asyncio.Task] = []
        ok = True

        async def submit(run: dict) -> None:
            if not ctx.loaded:  # new runs to explain: an unchanged flow's definition is read now
                await self.load_definition(ctx, ctx.props)
            self.stats.runs_planned += 1
            await self.run_slots.acquire()
            tasks.append(asyncio.create_task(self._run_task(ctx, run)))

        listed = ctx.listed
        log.debug("listing runs of %s/%s (%s)", env, flow_id, window.filter)
        try:
            async for page in self.api.runs(env, flow_id, window.filter, on_rehome=self.rehomed(env, flow_id)):
                for run in page:
                    if not window.wanted(run):
                        self.stats.outside_window += 1
                        continue
                    listed.add(str(run.get("name")))
                    await submit(run)
                # drop finished tasks so a 50,000-run flow doesn't keep 50,000 task objects
                tasks = [t for t in tasks if not t.done()]
            for run_id in window.running:  # runs still Running last time: read them again by name
                if run_id not in listed:
                    await submit({"name": run_id})
        except FlowleaksHttpError as exc:
            ok = False
            self.skip(env, flow_id, None, None, None, exc.reason, f"listing runs: {exc}")
        if tasks:
            await asyncio.gather(*tasks)
        if ok and not window.status:  # a status filter lists only some runs: absence proves nothing then
            ctx.window = window.span()
        return ok

    async def _run_task(self, ctx: FlowContext, run: dict) -> None:
        try:
            await self.scan_run(ctx, run)
        except FlowleaksHttpError as exc:
            self.skip(ctx.environment, ctx.flow_id, str(run.get("name")), None, None, exc.reason, str(exc))
        finally:
            self.run_slots.release()
        self.batch_runs += 1
        await self.flush()

    async def scan_run(self, ctx: FlowContext, listed: dict) -> None:
        env, flow, run_id = ctx.environment, ctx.flow_id, str(listed.get("name"))
        try:
            run = await self.api.get_run(env, flow, run_id)
        except ApiError as exc:
            if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                self.skip(env, flow, run_id, None, None, "gone", str(exc))
                ctx.gone.append(run_id)
                return
            raise
        meta: list[tuple] = []
        units = await self.collect_units(ctx, run_id, run, meta)
        props = as_dict(run.get("properties")) or as_dict(listed.get("properties"))
        run_start = parse_api_time(props.get("startTime"))
        refreshed: dict[tuple, Any] | None = None
        scanned = skipped = 0
        stored = await self.stored_results(ctx, units)  # the run's cached results, in one query
        for unit in units:
            if await self.scan_unit(ctx, run_id, run_start, unit, stored=stored):
                scanned += 1
                continue
            if refreshed is None:  # an expired link: re-read the run once for fresh links
                again = await self.api.get_run(env, flow, run_id)
                refreshed = {(u.action, u.repetition, u.side): u
                             for u in await self.collect_units(ctx, run_id, again)}
            fresh = refreshed.get((unit.action, unit.repetition, unit.side))
            if fresh is None or fresh.link is None:  # the re-read run lacks it: still the expired link
                self.skip(env, flow, run_id, unit.action, unit.side, "expired",
                          "content link expired and the re-read run has no fresh link", unit.repetition)
                skipped += 1
                continue
            if await self.scan_unit(ctx, run_id, run_start, fresh, last_try=True):
                scanned += 1
            else:
                skipped += 1
        self.batch.actions.extend((env, flow, run_id, *m, self.scan_id) for m in meta)
        self.batch.runs.append((env, flow, run_id, run_start, parse_api_time(props.get("endTime")),
                                props.get("status"), self.scan_id, as_dict(props.get("trigger")).get("name"),
                                len(meta), scanned, skipped, utcnow()))
        self.stats.runs_scanned += 1
        raw_start = text(props.get("startTime")).rstrip("Z")
        if raw_start and (ctx.newest_start is None or raw_start > ctx.newest_start):
            ctx.newest_start = raw_start
        if props.get("status") in ("Running", "Waiting", "Paused", "Suspended"):
            ctx.running.add(run_id)

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
                                            on_rehome=self.rehomed(ctx.environment, ctx.flow_id, run_id))
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
                        on_rehome=self.rehomed(ctx.environment, ctx.flow_id, run_id, name))
                except FlowleaksHttpError as exc:  # this loop's iterations are lost, not the run's other actions
                    self.skip(ctx.environment, ctx.flow_id, run_id, name, "action_inputs", exc.reason,
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

    def missing_link(self, ctx: FlowContext, run_id: str, unit: ContentUnit) -> None:
        """Record a side without a link for what it is: secured by the definition, not run (yet), a side
        the action has no content on, or a link the API should have given and did not (blocking)."""
        io = unit.side.rsplit("_", 1)[1]
        if io in ctx.secured.get(unit.action, frozenset()):
            reason, detail = "secured", "no link; the definition secures it"
        elif unit.status in NOT_RUN_STATUSES:
            reason, detail = "not run", f"status {unit.status}"
        elif unit.sibling:
            reason, detail = "no content", f"no {io}Link beside a readable link"
        elif ctx.action_types.get(unit.action, "").lower() in NO_CONTENT_TYPES:
            reason, detail = "no content", f"a {ctx.action_types[unit.action]} has no content"
        else:
            reason, detail = "no link", f"the {unit.status or 'unknown'} execution has no {io}Link and is not secured"
        self.skip(ctx.environment, ctx.flow_id, run_id, unit.action, unit.side, reason, detail, unit.repetition)
