"""Loopback fake of the Power Automate (Flow) management API, with a generated tenant and ground truth.

    tenant = Tenant.generate(seed=7)
    with FakeFlowApi(tenant, faults=Faults(latency_ms=20, rate_limit_rps=100)) as api:
        env = api.env_vars()   # FLOWLEAKS_FLOW_API_URL, FLOWLEAKS_ACCESS_TOKEN, FLOWLEAKS_CONTENT_HOSTS
        ...
        tenant.planted, tenant.vault_secrets, tenant.risky_definitions, api.stats

Standalone: `python -m tests.fakeapi --help`.
"""
from .model import Plant
from .faults import Faults
from .server import FakeFlowApi
from .stats import Stats
from .tenant import RiskyDefinition, Tenant

__all__ = ["FakeFlowApi", "Faults", "Plant", "RiskyDefinition", "Stats", "Tenant"]
