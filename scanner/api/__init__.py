"""The services' APIs as typed reads: Flow, Key Vault, Dataverse."""
