"""The Flow management API listener: its routes (environments, flows, runs, actions, repetitions) and
the JSON shapes it answers with (shared/docs/power-automate-api.md §1.2-1.8, §2, §3)."""
from __future__ import annotations

import json
import operator
import re
from datetime import datetime
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from .listener import Reply, error_reply, json_reply
from .model import RunDetail, RunHeader, Step, fmt_ticks, parse_iso_ticks, to_ticks
from .paging import BadRequest
from .tenant import Flow

API_VERSION = "2016-11-01"
BASE = "/providers/Microsoft.ProcessSimple"

_API_ROUTE = re.compile(r"""
    ^/providers/microsoft\.processsimple(?P<admin>/scopes/admin)?/environments
    (?:/(?P<env>[^/]+)
      (?:/(?P<v2>v2/)?(?P<flows>flows)
        (?:/(?P<flow>[^/]+)
          (?:/(?P<runs>runs)
            (?:/(?P<run>[^/]+)
              (?:/(?P<actions>actions)
                (?:/(?P<action>[^/]+)(?:/(?P<sub>repetitions|scopeRepetitions))?)?
              )?
            )?
          )?
        )?
      )?
    )?/?$""", re.X | re.I)
_FILTER_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+?)\s*$", re.I)
_COMPARE = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
            "lt": operator.lt, "le": operator.le}


def _parse_filter(text: str) -> Callable[[RunHeader], bool]:
    """`status eq 'Failed' and startTime ge 2026-01-01T00:00:00.1234567Z` (field names any case)."""
    preds: list[Callable[[RunHeader], bool]] = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        m = _FILTER_CLAUSE.match(clause)
        if not m:
            raise ValueError(clause)
        field, op, value = m[1].lower(), _COMPARE[m[2].lower()], m[3].strip("'\"")
        if field == "status" and op in (operator.eq, operator.ne):
            preds.append(lambda h, op=op, v=value.lower(): op(h.status.lower(), v))
        elif field == "starttime":
            preds.append(lambda h, op=op, t=parse_iso_ticks(value): op(h.start, t))
        else:
            raise ValueError(clause)
    return lambda h: all(p(h) for p in preds)


class FlowRoutes:
    """FakeFlowApi's API listener (needs the plumbing of server.py, faults.py and paging.py, and
    `_put_links` / `_issue_se` of content.py)."""

    def _api(self, method: str, target: str, headers: Any) -> Reply | object:
        self._sleep()
        url = urlsplit(target)
        m = _API_ROUTE.match(url.path)
        kind = self._api_kind(m) if m else "other"
        reply = self._throttle(self._api_bucket, self._bursting())
        attempt = 0
        if reply is None:
            reply, attempt = self._transient_fault(f"api {method} {target}")
        if reply is None:
            try:
                reply = self._api_route(method, url.path, url.query, m, kind, headers)
            except BadRequest as e:
                reply = error_reply(400, e.code, e.message)
            reply = self._malform(reply, f"api {method} {target}", attempt)
        return self._finish("api", kind, method, url.path, reply)

    @staticmethod
    def _api_kind(m: re.Match) -> str:
        if m["sub"]:
            return "repetitions" if m["sub"].lower() == "repetitions" else "scope_repetitions"
        for group, kind in (("action", "action"), ("actions", "actions"), ("run", "run"), ("runs", "runs"),
                            ("flow", "flow"), ("flows", "flows"), ("env", "environment")):
            if m[group]:
                return kind
        return "environments"

    def _api_route(self, method: str, path: str, query: str, m: re.Match | None, kind: str,
                   headers: Any) -> Reply:
        if not self._authorized(headers):
            return error_reply(401, "InvalidAuthenticationToken", "The access token is missing or invalid.")
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        version = q.get("api-version")
        if version != API_VERSION:
            return error_reply(400, "MissingApiVersionParameter" if version is None else "InvalidApiVersionParameter",
                          f"The api-version '{version}' is invalid. The supported version is '{API_VERSION}'.")
        if m is None or (m["v2"] and kind != "flows") or (m["v2"] and not m["admin"]):
            return error_reply(404, "NotFound", f"The route '{path}' is not supported.")
        if method != "GET":
            return error_reply(405, "MethodNotAllowed", f"{method} is not supported by the fake.")
        if kind == "environments":
            return json_reply(200, {"value": [self._env_json(e) for e in self.tenant.environments]})

        env_name = unquote(m["env"])
        if env_name.lower() in self._denied:
            return error_reply(403, "EnvironmentAccessDenied", f"Access to the environment '{env_name}' is denied.")
        env = self.tenant.environment(env_name)
        if env is None:
            return error_reply(404, "EnvironmentNotFound", f"The environment '{env_name}' could not be found.")
        admin = bool(m["admin"])
        if kind == "environment":
            return json_reply(200, self._env_json(env))
        if kind == "flows":
            flows = [f for f in env.flows if admin or f.maker_visible]
            page, next_link = self._page(flows, path, q, "flows")
            return self._list([self._flow_json(f, with_definition=False) for f in page], next_link)

        flow_id = unquote(m["flow"])
        flow = self.tenant.flow(env.name, flow_id)
        if flow is None or not (admin or flow.maker_visible):
            return error_reply(404, "FlowNotFound", f"Could not find flow '{flow_id}'.")
        if kind == "flow":
            return json_reply(200, self._flow_json(flow, with_definition=True))
        if kind == "runs":
            return self._runs(flow, path, q)

        run_name = unquote(m["run"])
        detail = self.tenant.run_detail(flow, run_name)
        if detail is not None and self.retained_from is not None and detail.header.start < self.retained_from:
            detail = None
        if detail is None:
            return self._arm_error(404, "WorkflowRunNotFound",
                                   f"The workflow '{flow.flow_id}' run '{run_name}' could not be found.")
        se = self._issue_se()
        if kind == "run":
            expand = q.get("$expand", "").lower().replace("%2f", "/")
            with self._lock:
                reads = self._run_reads[detail.header.name] = self._run_reads.get(detail.header.name, 0) + 1
            body = self._run_json(flow, detail, se, expand_actions="properties/actions" in expand)
            if reads > 1 and self.faults.links_vanish_on_reread:
                for props in (body["properties"].get("actions") or {}).values():
                    props.pop("inputsLink", None)
                    props.pop("outputsLink", None)
            return json_reply(200, body)
        if kind == "actions":
            steps = list(detail.actions.values())
            page, next_link = self._page(steps, path, q, "actions")
            return self._list([self._action_json(flow, detail, s, se, expanded=False) for s in page], next_link)

        action_name = unquote(m["action"])
        step = detail.actions.get(action_name)
        if step is None:
            return self._arm_error(404, "WorkflowRunActionNotFound",
                                   f"The workflow '{flow.flow_id}' run '{run_name}' action '{action_name}' "
                                   "could not be found.")
        if kind == "action":
            return json_reply(200, self._action_json(flow, detail, step, se, expanded=False))
        items = (self._repetitions_json(flow, detail, step, se) if kind == "repetitions"
                 else self._scope_repetitions_json(flow, detail, step))
        page, next_link = self._page(items, path, q, "repetitions")
        return self._list(page, next_link)

    @staticmethod
    def _arm_error(status: int, code: str, message: str) -> Reply:
        """The Flow API wraps Logic Apps engine errors in an ARM failure (see §1.3)."""
        inner = json.dumps({"error": {"code": code, "message": message}})
        return error_reply(status, "AzureResourceManagerRequestFailed",
                      f"Request to Azure Resource Manager failed with error: '{inner}'.")

    def show_runs_until(self, when: datetime | None) -> None:
        """List only runs that started at or before `when` (None: all runs)."""
        self.visible_until = None if when is None else to_ticks(when)

    def _runs(self, flow: Flow, path: str, q: dict[str, str]) -> Reply:
        runs = self.tenant.runs(flow)
        if self.visible_until is not None:
            runs = [r for r in runs if r.start <= self.visible_until]
        if self.retained_from is not None:
            runs = [r for r in runs if r.start >= self.retained_from]
        if q.get("$filter"):
            try:
                keep = _parse_filter(q["$filter"])
            except ValueError:
                return error_reply(400, "InvalidFilter", f"The filter '{q['$filter']}' is not valid or not supported.")
            runs = [r for r in runs if keep(r)]
        page, next_link = self._page(runs, path, q, "runs")
        se = self._issue_se()
        return self._list([self._run_json(flow, self.tenant.run_detail(flow, r.name), se) for r in page], next_link)

    # --- JSON shapes ---------------------------------------------------------------------------------------

    def _env_json(self, env: Any) -> dict:
        return {"name": env.name, "location": env.location, "type": "Microsoft.ProcessSimple/environments",
                "id": f"{BASE}/environments/{env.name}",
                "properties": {"displayName": env.display_name, "createdTime": fmt_ticks(env.created),
                               "isDefault": env.is_default, "provisioningState": "Succeeded",
                               "environmentSku": "Default" if env.is_default else "Production",
                               "azureRegionHint": "westeurope" if env.location == "europe" else "westus",
                               "runtimeEndpoints": {"microsoft.Flow": self.api_url}}}

    def _flow_json(self, flow: Flow, with_definition: bool) -> dict:
        definition = flow.definition
        env_id = f"{BASE}/environments/{flow.environment}"
        props: dict[str, Any] = {
            "apiId": "/providers/Microsoft.PowerApps/apis/shared_logicflows",
            "displayName": flow.display_name, "userType": "Owner", "state": flow.state,
            "createdTime": fmt_ticks(flow.created), "lastModifiedTime": fmt_ticks(flow.modified),
            "flowSuspensionReason": "None",
            "environment": {"name": flow.environment, "type": "Microsoft.ProcessSimple/environments", "id": env_id},
            "definitionSummary": {
                "triggers": [{"type": t["type"], "kind": t.get("kind")} for t in definition["triggers"].values()],
                "actions": [{"type": a["type"], "swaggerOperationId": a["inputs"].get("host", {}).get("operationId")}
                            for a in definition["actions"].values() if isinstance(a.get("inputs"), dict)]},
            "creator": {"tenantId": self.tenant.tenant_id, "objectId": flow.creator, "userId": flow.creator,
                        "userType": "ActiveDirectory"},
            "connectionReferences": {c: {"connectionName": f"{c}-{flow.workflow_hex[:8]}",
                                         "id": f"/providers/Microsoft.PowerApps/apis/{c}"}
                                     for c in flow.template.connectors},
            "flowFailureAlertSubscribed": False, "isManaged": False,
        }
        if with_definition:
            props["definition"] = definition
        return {"name": flow.flow_id, "id": f"{env_id}/flows/{flow.flow_id}",
                "type": "Microsoft.ProcessSimple/environments/flows", "properties": props}

    def _run_id(self, flow: Flow, run: str) -> str:
        return f"{BASE}/environments/{flow.environment}/flows/{flow.flow_id}/runs/{run}"

    def _run_json(self, flow: Flow, detail: RunDetail, se: str, expand_actions: bool = False) -> dict:
        h, trigger = detail.header, detail.trigger
        trig: dict[str, Any] = {"name": trigger.name}
        self._put_links(trig, flow, detail, trigger, None, se)
        trig.update(self._times(trigger.start, trigger.end))
        trig.update({"correlation": {"clientTrackingId": h.client_tracking_id}, "code": "OK", "status": "Succeeded"})
        props: dict[str, Any] = {**self._times(h.start, h.end), "status": h.status,
                                 "correlation": {"clientTrackingId": h.client_tracking_id}, "trigger": trig}
        if h.status == "Failed":
            props["code"] = "ActionFailed"
            props["error"] = {"code": "ActionFailed", "message": "An action failed. No dependent actions succeeded."}
        if expand_actions:
            props["actions"] = {s.name: self._action_json(flow, detail, s, se, expanded=True)["properties"]
                                for s in detail.actions.values()}
        return {"name": h.name, "id": self._run_id(flow, h.name), "type": "Microsoft.ProcessSimple/environments/flows/runs",
                "properties": props}

    @staticmethod
    def _times(start: int, end: int | None) -> dict[str, str]:
        return {"startTime": fmt_ticks(start), **({"endTime": fmt_ticks(end)} if end is not None else {})}

    def _action_json(self, flow: Flow, detail: RunDetail, step: Step, se: str, expanded: bool) -> dict:
        props: dict[str, Any] = {}
        f = self.faults
        skipped = (step.repetitions is None and f.skipped_action_rate
                   and self._roll("skipped", detail.header.name, step.name) < f.skipped_action_rate)
        dropped = (step.repetitions is None and f.drop_links_rate
                   and self._roll("drop", detail.header.name, step.name) < f.drop_links_rate)
        if step.repetitions is not None:
            props["repetitionCount"] = len(step.repetitions)   # the links are on the repetitions
        elif not skipped and not dropped and not (
                expanded and f.expand_missing_links
                and self._roll("expand", detail.header.name, step.name) < f.expand_missing_links):
            self._put_links(props, flow, detail, step, None, se)
        props.update(self._times(step.start, step.end))
        props["correlation"] = {"actionTrackingId": step.tracking_id,
                                "clientTrackingId": detail.header.client_tracking_id}
        props.update({"status": "Skipped" if skipped else step.status, "code": "ActionSkipped" if skipped else step.code})
        if step.status == "Failed":
            props["error"] = {"code": step.code, "message": "The upstream service returned an error."}
        return {"name": step.name, "id": f"{self._run_id(flow, detail.header.name)}/actions/{step.name}",
                "type": "Microsoft.ProcessSimple/environments/flows/runs/actions", "properties": props}

    def _repetitions_json(self, flow: Flow, detail: RunDetail, step: Step, se: str) -> list[dict]:
        base = f"{self._run_id(flow, detail.header.name)}/actions/{step.name}/repetitions"
        items = []
        for rep in step.repetitions or ():
            props: dict[str, Any] = {"repetitionIndexes": [{"scopeName": step.loop, "itemIndex": rep.index}],
                                     "trackingId": rep.tracking_id}
            self._put_links(props, flow, detail, step, rep, se)
            props.update(self._times(rep.start, rep.end))
            props.update({"correlation": {"actionTrackingId": rep.tracking_id,
                                          "clientTrackingId": detail.header.client_tracking_id},
                          "status": rep.status, "code": "OK"})
            items.append({"name": rep.name, "id": f"{base}/{rep.name}",
                          "type": "Microsoft.ProcessSimple/environments/flows/runs/actions/repetitions",
                          "properties": props})
        return items

    def _scope_repetitions_json(self, flow: Flow, detail: RunDetail, loop: Step) -> list[dict]:
        inner = next((s for s in detail.actions.values() if s.loop == loop.name), None)
        base = f"{self._run_id(flow, detail.header.name)}/actions/{loop.name}/scopeRepetitions"
        return [{"name": rep.name, "id": f"{base}/{rep.name}",
                 "type": "Microsoft.ProcessSimple/environments/flows/runs/actions/scopeRepetitions",
                 "properties": {"repetitionIndexes": [{"scopeName": loop.name, "itemIndex": rep.index}],
                                **self._times(rep.start, rep.end),
                                "correlation": {"actionTrackingId": rep.tracking_id,
                                                "clientTrackingId": detail.header.client_tracking_id},
                                "status": rep.status, "code": "NotSpecified"}}
                for rep in (inner.repetitions if inner and loop.iterations is not None else ())]

    # --- content links ---------------------------------------------------------------------------------------
