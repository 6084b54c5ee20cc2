"""The crawl (plan → runs → content → detection → record), and the scan it serves (sweep.py)."""
