"""The crawl and the scan it serves."""
