"""A deterministic fake Power Automate tenant with planted secrets and their ground truth.

Environments, flows, definitions and the Key Vault are built up front (they are small). Run headers
are built per flow on first use, and run content (trigger, actions, bodies, plants) is rebuilt on
demand from (seed, flow, run) with a bounded cache, so a 50,000-run tenant costs little memory and
starts in about a second, and serving one run's content links does not rebuild it per link.
"""
from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterator, NamedTuple

from . import fakes
from .model import TICKS_PER_SECOND, Body, Plant, RunDetail, RunHeader, to_ticks
from .templates import TEMPLATES
from .templates.base import RunBuilder, Template

SECURED_LINK_STYLES = ("secureData", "secureData", "null", "absent")
ENV_DISPLAY_NAMES = ("Finance Prod", "HR Automation", "Dev Sandbox", "Sales Ops", "Integration Test")


def _rng(*parts: Any) -> random.Random:
    """An independent, process-stable random stream per (seed, purpose, ids...)."""
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


@dataclass(eq=False)
class Flow:
    environment: str
    flow_id: str
    index: int                   # position in the tenant; picks the template
    workflow_hex: str            # the Logic Apps workflow id in content URIs (not the flow GUID)
    display_name: str
    state: str
    creator: str
    created: int
    modified: int
    template: Template
    n_runs: int
    secured_link_style: str      # how secured links are shown: "secureData", "null" or "absent"
    maker_visible: bool          # listed on the maker (non-admin) path
    static: dict[str, Any] = field(default_factory=dict)
    definition: dict = field(default_factory=dict)
    runs: list[RunHeader] | None = None          # newest first; built on first use
    run_index: dict[str, int] | None = None


@dataclass(eq=False)
class Environment:
    name: str
    display_name: str
    location: str
    is_default: bool
    created: int
    flows: list[Flow] = field(default_factory=list)


@dataclass(frozen=True)
class VaultVersion:
    version: str                 # 32 hex
    value: str
    created: int                 # Unix seconds


@dataclass(frozen=True)
class VaultEntry:
    name: str
    enabled: bool
    versions: tuple[VaultVersion, ...]   # oldest first; the last one is current


@dataclass(frozen=True)
class EnvVariable:
    """A Dataverse environment variable definition and its current value (None: no value row)."""
    definition_id: str
    schemaname: str
    displayname: str
    type: int                    # option value: 100000000 String ... 100000005 Secret
    defaultvalue: str | None
    value: str | None
    plaintext_secret: bool       # PA007 must report it (a secret in a String variable)


class RiskyDefinition(NamedTuple):
    """A posture issue a definition linter should raise (issue codes: see templates/__init__.py)."""
    environment: str
    flow_id: str
    issue: str
    action: str


class Tenant:
    # Key Vault secrets that flows read with Get secret; the rest of the vault is filler.
    FLOW_VAULT_SECRETS = ("PartnerApiKey", "ClientSecret", "SqlPassword", "ErpToken")
    DISABLED_VAULT_SECRET = "LegacyApiKey"

    def __init__(self, seed: int, now: datetime, *, history_days: float, failed_fraction: float,
                 running_fraction: float, max_loop_items: int, run_cache_size: int):
        self.seed = seed
        self.now = now
        self.now_ticks = to_ticks(now)
        self.history_days = history_days
        self.failed_fraction = failed_fraction
        self.running_fraction = running_fraction
        self.max_loop_items = max_loop_items
        rng = _rng(seed, "tenant")
        self.tenant_id = fakes.guid(rng)
        self.subscription_id = fakes.guid(rng)
        self.environments: list[Environment] = []
        self.vault: dict[str, VaultEntry] = {}
        self.env_variables: list[EnvVariable] = []   # served by the fake's Dataverse listener
        self.risky_definitions: list[RiskyDefinition] = []
        self._flows: dict[tuple[str, str], Flow] = {}
        self._by_hex: dict[str, Flow] = {}
        self._runs_lock = threading.Lock()
        self._cached_detail = lru_cache(maxsize=run_cache_size)(self._detail_by_key)

    @classmethod
    def generate(cls, seed: int, environments: int = 2, flows_per_env: int = 5, runs_per_flow: int = 5,
                 now: datetime | None = None, *, history_days: float = 35, failed_fraction: float = 0.1,
                 running_fraction: float = 0.2, max_loop_items: int = 6, maker_visible_fraction: float = 1.0,
                 vault_size: int = 30, run_cache_size: int = 4096) -> Tenant:
        """Build a tenant; the same arguments give the same ids, payloads and secrets.

        Runs start over the last `history_days` before `now` (default: the current second), so with
        35 days some fall outside a 30-day retention window. The newest run of a flow is `Running`
        with probability `running_fraction`; others are `Failed` with `failed_fraction`.
        `maker_visible_fraction` of the flows are visible on the maker path (all are on admin).
        """
        now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        t = cls(seed, now.replace(microsecond=0), history_days=history_days,
                failed_fraction=failed_fraction, running_fraction=running_fraction,
                max_loop_items=max_loop_items, run_cache_size=run_cache_size)
        t._make_vault(vault_size)
        t._make_env_variables()
        index = 0
        for e in range(environments):
            rng = _rng(seed, "env", e)
            name = f"Default-{t.tenant_id}" if e == 0 else fakes.guid(rng)
            env = Environment(name, f"{fakes.pick(rng, 'ABCDEFGHJKLMNPQRSTUVWXYZ', 3)} (default)" if e == 0
                              else ENV_DISPLAY_NAMES[(e - 1) % len(ENV_DISPLAY_NAMES)],
                              rng.choice(("europe", "unitedstates")), e == 0,
                              t.now_ticks - rng.randint(400, 900) * 86400 * TICKS_PER_SECOND)
            t.environments.append(env)
            for _ in range(flows_per_env):
                flow = t._make_flow(env, index, runs_per_flow, maker_visible_fraction)
                env.flows.append(flow)
                t._flows[(env.name.lower(), flow.flow_id)] = flow
                t._by_hex[flow.workflow_hex] = flow
                index += 1
        return t

    def _make_vault(self, size: int) -> None:
        rng = _rng(self.seed, "vault")
        names = list(self.FLOW_VAULT_SECRETS) + [self.DISABLED_VAULT_SECRET]
        names += [f"app-setting-{i:02d}" for i in range(max(0, size - len(names)))]
        for name in names:
            created = self.now_ticks // TICKS_PER_SECOND - rng.randint(30, 400) * 86400
            versions = tuple(VaultVersion(fakes.hex_id(rng), fakes.vault_secret_value(rng), created + i * 86400 * 7)
                             for i in range(rng.randint(1, 3)))
            self.vault[name] = VaultEntry(name, name != self.DISABLED_VAULT_SECRET, versions)

    def _make_env_variables(self) -> None:
        """Dataverse environment variables: a password typed String (PA007), a Secret holding a Key
        Vault reference, and harmless ones. Their own random stream: other ids do not move."""
        rng = _rng(self.seed, "envvars")
        kv_ref = (f"/subscriptions/{self.subscription_id}/resourceGroups/rg-flows/providers/Microsoft.KeyVault/"
                  f"vaults/kv-flows-{fakes.pick(rng, 'abcdefghjkmnpqrstuvwxyz', 4)}/secrets/{self.FLOW_VAULT_SECRETS[0]}")
        self.env_variables = [
            EnvVariable(fakes.guid(rng), "xyz_ApiPassword", "API password", 100000000, None,
                        fakes.password(rng), True),
            EnvVariable(fakes.guid(rng), "xyz_PartnerApiKey", "Partner API key", 100000005, None, kv_ref, False),
            EnvVariable(fakes.guid(rng), "xyz_BaseUrl", "Base URL", 100000000, "https://api.contoso.example/v1",
                        None, False),
            EnvVariable(fakes.guid(rng), "xyz_RetryCount", "Retry count", 100000001, "3", "5", False),
        ]

    @property
    def env_variable_secrets(self) -> set[str]:
        """Values of the environment variables that hold a secret as plain text (never to be stored)."""
        return {v.value for v in self.env_variables if v.plaintext_secret and v.value}

    def _make_flow(self, env: Environment, index: int, n_runs: int, maker_fraction: float) -> Flow:
        rng = _rng(self.seed, "flow", index)
        template = TEMPLATES[index % len(TEMPLATES)]
        created = self.now_ticks - rng.randint(40, 400) * 86400 * TICKS_PER_SECOND
        flow = Flow(
            environment=env.name, flow_id=fakes.guid(rng), index=index, workflow_hex=fakes.hex_id(rng),
            display_name=f"{rng.choice(template.display_names)} {index + 1}",
            state="Stopped" if index % 7 == 4 else "Started", creator=fakes.guid(rng), created=created,
            modified=created + rng.randint(0, 30) * 86400 * TICKS_PER_SECOND, template=template, n_runs=n_runs,
            secured_link_style=SECURED_LINK_STYLES[index % len(SECURED_LINK_STYLES)],
            maker_visible=rng.random() < maker_fraction)
        flow.static = template.setup(rng, flow, self)
        flow.definition = template.definition(flow, self)
        self.risky_definitions += [RiskyDefinition(env.name, flow.flow_id, issue, action)
                                   for issue, action in template.risks]
        return flow

    # --- lookups --------------------------------------------------------------------------------

    @property
    def flows(self) -> list[Flow]:
        return [f for env in self.environments for f in env.flows]

    @property
    def total_runs(self) -> int:
        return sum(f.n_runs for f in self.flows)

    @property
    def vault_secrets(self) -> dict[str, str]:
        """Current value of every enabled Key Vault secret."""
        return {e.name: e.versions[-1].value for e in self.vault.values() if e.enabled}

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name.lower() == name.lower()), None)

    def flow(self, environment: str, flow_id: str) -> Flow | None:
        return self._flows.get((environment.lower(), flow_id.lower()))

    def flow_by_hex(self, workflow_hex: str) -> Flow | None:
        return self._by_hex.get(workflow_hex)

    def runs(self, flow: Flow) -> list[RunHeader]:
        """The flow's runs, newest first."""
        if flow.runs is None:
            with self._runs_lock:
                if flow.runs is None:
                    runs = self._make_runs(flow)
                    flow.run_index = {r.name: i for i, r in enumerate(runs)}
                    flow.runs = runs
        return flow.runs

    def run_header(self, flow: Flow, run_name: str) -> RunHeader | None:
        runs = self.runs(flow)
        i = flow.run_index.get(run_name.upper())
        return None if i is None else runs[i]

    def run_detail(self, flow: Flow, run_name: str) -> RunDetail | None:
        """The run's trigger, actions, bodies and plants (cached; treat as read-only)."""
        if self.run_header(flow, run_name) is None:
            return None
        return self._cached_detail(flow.environment.lower(), flow.flow_id, run_name.upper())

    def _make_runs(self, flow: Flow) -> list[RunHeader]:
        rng = _rng(self.seed, "runs", flow.flow_id)
        span = int(self.history_days * 86400 * TICKS_PER_SECOND)
        offsets = sorted(rng.randint(60 * TICKS_PER_SECOND, span) for _ in range(flow.n_runs))
        running = bool(offsets) and rng.random() < self.running_fraction
        if running:  # a run still in progress started a few minutes ago, after every other run
            offsets[0] = rng.randint(TICKS_PER_SECOND, min(offsets[0], 1800 * TICKS_PER_SECOND))
        runs = []
        for i, offset in enumerate(offsets):
            start = self.now_ticks - offset
            # Real run names count down with time: 29 digits, "CU", a partition number.
            digits = f"0858{offset:015d}{rng.randrange(10**10):010d}"
            name = f"{digits}CU{rng.randint(1, 399)}"
            tracking = f"{digits[:-1]}{rng.randrange(10)}CU{rng.randint(1, 399)}"
            if running and i == 0:
                runs.append(RunHeader(name, start, None, "Running", tracking))
                continue
            status = "Failed" if rng.random() < self.failed_fraction else "Succeeded"
            # Long enough to hold every step the builder lays out (well under 1 s each).
            end = start + (20 + 2 * self.max_loop_items) * TICKS_PER_SECOND + rng.randrange(TICKS_PER_SECOND)
            runs.append(RunHeader(name, start, end, status, tracking))
        return runs

    def _detail_by_key(self, env_key: str, flow_id: str, run_name: str) -> RunDetail:
        flow = self._flows[(env_key, flow_id)]
        return self._build_run(flow, self.run_header(flow, run_name))

    def _build_run(self, flow: Flow, header: RunHeader) -> RunDetail:
        b = RunBuilder(self, flow, header, _rng(self.seed, "run", flow.flow_id, header.name))
        flow.template.run(b)
        if header.status != "Succeeded":
            self._end_early(b, header.status)
        detail = RunDetail(header, b.trigger_step, b.actions, decoys=b.decoys)
        detail.plants = list(self._plants(flow, detail))
        return detail

    @staticmethod
    def _end_early(b: RunBuilder, status: str) -> None:
        """A Failed run fails its last action (an error body replaces the outputs); a Running run is
        still in its last action (no outputs or end time yet)."""
        step = next(s for s in reversed(b.actions.values()) if s.type != "Foreach" and s.repetitions is None)
        if status == "Running":
            step.status, step.code, step.end, step.outputs = "Running", "NotSpecified", None, None
            return
        step.status, step.code = "Failed", "InternalServerError"
        if step.type in ("Http", "OpenApiConnection", "Workflow"):
            step.outputs = Body({"statusCode": 500, "headers": b.http_headers(), "body": {"error": {
                "code": "InternalServerError", "message": "The upstream service returned an error."}}})
        else:
            step.outputs = None

    def _plants(self, flow: Flow, detail: RunDetail) -> Iterator[Plant]:
        run = detail.header.name
        for step in (detail.trigger, *detail.actions.values()):
            prefix = "trigger" if step is detail.trigger else "action"
            holders: list[tuple[str | None, Body | None, Body | None]] = (
                [(r.name, r.inputs, r.outputs) for r in step.repetitions] if step.repetitions is not None
                else [(None, step.inputs, step.outputs)])
            for repetition, inputs, outputs in holders:
                for side, body in (("inputs", inputs), ("outputs", outputs)):
                    for p in body.plants if body is not None else ():
                        yield Plant(flow.environment, flow.flow_id, run, step.name, repetition, f"{prefix}_{side}",
                                    p.kind, p.secret, side in step.secure, p.carrier)

    # --- ground truth -----------------------------------------------------------------------------

    def iter_runs(self) -> Iterator[tuple[Flow, RunHeader]]:
        for flow in self.flows:
            for header in self.runs(flow):
                yield flow, header

    def iter_details(self) -> Iterator[tuple[Flow, RunDetail]]:
        """Every run's detail, built without going through (and evicting) the serving cache."""
        for flow, header in self.iter_runs():
            yield flow, self._build_run(flow, header)

    def iter_plants(self) -> Iterator[Plant]:
        for _, detail in self.iter_details():
            yield from detail.plants

    @property
    def planted(self) -> list[Plant]:
        """Every planted occurrence (builds every run: use iter_plants() on large tenants)."""
        return list(self.iter_plants())

    def plants_for_run(self, environment: str, flow_id: str, run_id: str) -> list[Plant]:
        flow = self.flow(environment, flow_id)
        detail = flow and self.run_detail(flow, run_id)
        return list(detail.plants) if detail else []

    def secrets(self, visible_only: bool = False) -> set[str]:
        """Distinct planted secret strings (only those reachable through the API if visible_only)."""
        return {p.secret for p in self.iter_plants() if not (visible_only and p.secured)}

    def decoys(self) -> set[str]:
        """Distinct look-alike strings in run content that must not be reported as secrets."""
        return set().union(*(d.decoys for _, d in self.iter_details()))
