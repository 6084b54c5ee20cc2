"""Flow templates: a Logic Apps definition plus the run content it produces.

Flows cycle through TEMPLATES, so any tenant with at least len(TEMPLATES) (13) flows holds every case
(the first ten are the original cases; a ten-flow tenant keeps holding them): HTTP with secrets in
headers and in the query string, Compose and Initialize variable holding secrets, Key Vault Get secret
with and without Secure Inputs/Outputs and an HTTP action consuming it, a SharePoint connector, a
Foreach with an inner action, a child flow, a Response, an XML (`$content`) body, a webhook trigger, a
secured trigger and a flow with nothing to find; then run history full of identifiers (Graph paging
and delta tokens, SharePoint drive and item ids, Blob FileLocators and markers, Dataverse paging
cookies, ETags and row versions, tracking headers) with secrets only entropy can find and providers'
documentation examples as decoys. One module per family: http.py (credentials over HTTP),
connectors.py (Key Vault, SharePoint, loops and child flows), identifiers.py (identifier-heavy run
history); base.py holds what they share (the definition skeleton, `Template`, `RunBuilder`).

Each template's `runtimeConfiguration.secureData` in the definition is exactly what its runs hide.
`risks` lists the posture issues a definition linter should raise for the template:
  keyvault-get-secret-unsecured-outputs  Get secret without Secure Outputs: the value is in history
  secret-consumer-unsecured-inputs       an action using a Key Vault value without Secure Inputs
  hardcoded-secret                       a literal credential written into the definition
"""
from __future__ import annotations

from .base import Template
from .connectors import LoopChildFlow, SharePointSync, VaultSecret
from .http import LegacySoap, OrdersApi, SafeStatus, SecureTrigger, TokenClient
from .identifiers import BlobArchive, DataverseRows, GraphFiles

TEMPLATES: tuple[Template, ...] = (
    OrdersApi(),
    TokenClient(),
    VaultSecret("vault_unsecured", (), ()),
    VaultSecret("vault_secured", ("inputs", "outputs"), ("inputs",)),
    SharePointSync(),
    LoopChildFlow(),
    VaultSecret("vault_outputs_visible", ("inputs",), ("inputs",)),
    LegacySoap(),
    SecureTrigger(),
    SafeStatus(),
    # run history full of identifiers (Graph, SharePoint, Blob, Dataverse): the precision test's bodies
    GraphFiles(),
    BlobArchive(),
    DataverseRows(),
)
