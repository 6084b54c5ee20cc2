"""flowleaks scanner: auth, Flow API client, crawl, store and CLI."""
__version__ = "0.1.0"
