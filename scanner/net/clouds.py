"""One table of hosts and token audiences per Microsoft cloud.

Sources are in ../shared/docs/power-automate-api.md §4.2. Where the reference marks a value as an
inference ([I]) it is still our best default, and every host can be overridden (FLOWLEAKS_FLOW_API_URL,
FLOWLEAKS_CONTENT_HOSTS), so a wrong default costs a flag, not a release.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    flow_api: str  # Flow service root (ProcessSimple)
    flow_audience: str
    bap_api: str
    bap_audience: str
    authority_host: str
    content_host_suffixes: tuple[str, ...]  # Logic Apps run-content (SAS) hosts
    vault_suffix: str
    vault_audience: str

    def scope(self, audience: str) -> str:
        """MSAL scope for an audience: resource + '/.default' (one slash)."""
        return audience.rstrip("/") + "/.default"


CLOUDS: dict[str, Cloud] = {
    "public": Cloud(
        name="public",
        flow_api="https://api.flow.microsoft.com",
        flow_audience="https://service.flow.microsoft.com/",
        bap_api="https://api.bap.microsoft.com",
        bap_audience="https://service.powerapps.com/",
        authority_host="https://login.microsoftonline.com",
        content_host_suffixes=(".logic.azure.com",),
        vault_suffix="vault.azure.net",
        vault_audience="https://vault.azure.net",
    ),
    "gcc": Cloud(
        name="gcc",
        flow_api="https://gov.api.flow.microsoft.us",
        flow_audience="https://gov.service.flow.microsoft.us/",
        bap_api="https://gov.api.bap.microsoft.us",
        bap_audience="https://gov.service.powerapps.us/",
        # GCC (moderate) tenants live in the commercial Entra ID.
        authority_host="https://login.microsoftonline.com",
        content_host_suffixes=(".logic.azure.us", ".logic.azure.com"),
        vault_suffix="vault.usgovcloudapi.net",
        vault_audience="https://vault.usgovcloudapi.net",
    ),
    "gcchigh": Cloud(
        name="gcchigh",
        flow_api="https://high.api.flow.microsoft.us",
        flow_audience="https://high.service.flow.microsoft.us/",
        bap_api="https://high.api.bap.microsoft.us",
        bap_audience="https://high.service.powerapps.us/",
        authority_host="https://login.microsoftonline.us",
        content_host_suffixes=(".logic.azure.us",),
        vault_suffix="vault.usgovcloudapi.net",
        vault_audience="https://vault.usgovcloudapi.net",
    ),
    "dod": Cloud(
        name="dod",
        flow_api="https://api.flow.appsplatform.us",
        flow_audience="https://service.flow.appsplatform.us/",
        bap_api="https://api.bap.appsplatform.us",
        bap_audience="https://service.apps.appsplatform.us/",
        authority_host="https://login.microsoftonline.us",
        content_host_suffixes=(".logic.azure.us",),
        vault_suffix="vault.usgovcloudapi.net",
        vault_audience="https://vault.usgovcloudapi.net",
    ),
    "china": Cloud(
        name="china",
        flow_api="https://api.powerautomate.cn",
        flow_audience="https://service.powerautomate.cn/",
        bap_api="https://api.bap.partner.microsoftonline.cn",
        bap_audience="https://service.powerapps.cn/",
        authority_host="https://login.chinacloudapi.cn",
        content_host_suffixes=(".logic.azure.cn", ".logic.chinacloudapi.cn"),
        vault_suffix="vault.azure.cn",
        vault_audience="https://vault.azure.cn",
    ),
}


def get_cloud(name: str) -> Cloud:
    try:
        return CLOUDS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown cloud {name!r}; choose one of {', '.join(CLOUDS)}") from None
