"""What every flow template is made of: the definition skeleton, connector host blocks, the
`Template` interface and the `RunBuilder` that records one run's steps with plausible timestamps."""
from __future__ import annotations

import random
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Iterable

from .. import fakes
from ..model import TICKS_PER_SECOND, Body, Repetition, RunHeader, Step, fmt_ticks

if TYPE_CHECKING:
    from ..tenant import Flow, Tenant

SCHEMA = "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#"
SHAREPOINT_API = "/providers/Microsoft.PowerApps/apis/shared_sharepointonline"


def definition(triggers: dict, actions: dict) -> dict:
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "$connections": {"defaultValue": {}, "type": "Object"},
            "$authentication": {"defaultValue": {}, "type": "SecureObject"},
        },
        "triggers": triggers,
        "actions": actions,
        "outputs": {},
    }


def secure_config(sides: Iterable[str]) -> dict:
    sides = list(sides)
    return {"runtimeConfiguration": {"secureData": {"properties": sides}}} if sides else {}


def after(previous: str | None) -> dict:
    return {"runAfter": {previous: ["Succeeded"]} if previous else {}}


RECURRENCE = {"Recurrence": {"type": "Recurrence", "recurrence": {"frequency": "Hour", "interval": 1}}}


def connector_host(api_id: str, connection: str, operation: str) -> dict:
    """A connector action's `host` as the definition writes it."""
    return {"connectionName": connection, "operationId": operation, "apiId": api_id}


def run_host(api_id: str, connection: str, operation: str) -> dict:
    """The same `host` as a run's inputs record it."""
    return {"apiId": api_id, "connectionReferenceName": connection, "operationId": operation}


class RunBuilder:
    """Collects one run's trigger and actions, with plausible, increasing timestamps."""

    def __init__(self, tenant: Tenant, flow: Flow, header: RunHeader, rng: random.Random):
        self.tenant, self.flow, self.header, self.rng = tenant, flow, header, rng
        self.clock = header.start
        self.trigger_step: Step | None = None
        self.actions: dict[str, Step] = {}
        self.decoys: set[str] = set()

    def _span(self) -> tuple[int, int]:
        start = self.clock + self.rng.randint(1, 40) * TICKS_PER_SECOND // 1000
        end = start + self.rng.randint(5, 900) * TICKS_PER_SECOND // 1000 + self.rng.randint(0, 9999)
        self.clock = end
        return start, end

    def decoy(self, value: str) -> str:
        self.decoys.add(value)
        return value

    def guid(self) -> str:
        return self.decoy(fakes.guid(self.rng))

    def iso(self) -> str:
        return self.decoy(fmt_ticks(self.clock))

    def http_headers(self, content_type: str = "application/json; charset=utf-8") -> dict:
        return {"x-ms-request-id": self.guid(), "ETag": self.decoy(fakes.etag(self.rng)),
                "Date": formatdate(self.clock / TICKS_PER_SECOND, usegmt=True),
                "Content-Type": content_type}

    def trigger(self, name: str, type_: str, inputs: Body | None = None, outputs: Body | None = None,
                secure: Iterable[str] = ()) -> None:
        start, end = self._span()
        self.trigger_step = Step(name, type_, start, end, self.header.client_tracking_id, inputs, outputs,
                                 frozenset(secure))

    def action(self, name: str, type_: str, inputs: Body | None = None, outputs: Body | None = None,
               secure: Iterable[str] = ()) -> None:
        start, end = self._span()
        self.actions[name] = Step(name, type_, start, end, fakes.guid(self.rng), inputs, outputs, frozenset(secure))

    def foreach(self, name: str, inner: str, inner_type: str, items: list[tuple[Body, Body]],
                secure: Iterable[str] = ()) -> None:
        """A Foreach and its one inner action; each item becomes a repetition of the inner action."""
        start = self.clock
        reps = []
        for i, (inputs, outputs) in enumerate(items):
            r_start, r_end = self._span()
            reps.append(Repetition(f"{i:06d}", i, r_start, r_end, fakes.guid(self.rng), inputs, outputs))
        self.actions[name] = Step(name, "Foreach", start, self.clock, fakes.guid(self.rng), iterations=len(reps))
        self.actions[inner] = Step(inner, inner_type, reps[0].start if reps else start, self.clock,
                                   fakes.guid(self.rng), secure=frozenset(secure), loop=name, repetitions=reps)


class Template:
    name = ""
    display_names: tuple[str, ...] = ()
    connectors: tuple[str, ...] = ()
    risks: tuple[tuple[str, str], ...] = ()   # (issue, action or trigger name)

    def setup(self, rng: random.Random, flow: Flow, tenant: Tenant) -> dict[str, Any]:
        """Per-flow constants (literal secrets in the definition, hosts, names)."""
        return {}

    def definition(self, flow: Flow, tenant: Tenant) -> dict:
        raise NotImplementedError

    def run(self, b: RunBuilder) -> None:
        raise NotImplementedError
