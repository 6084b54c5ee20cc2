"""Which `skipped.reason` values leave a scan complete: one list, for the crawl, scan-files and the
`coverage`/`skipped_by_reason` views (docs/decisions.md explains each).

Nobody can read secured content in run history either; a run that aged out between listing and
reading is gone for everyone; an action that did not run (Skipped) or has not finished has no content
yet; a side an execution has no content on (one link present, the other absent, or a Recurrence
trigger) has nothing to read; a foreign nextLink re-read from the API's own origin lost nothing.
scan-files: text that is not JSON was scanned as text, and what is not a file's content (a FIFO, a
link to a directory) is nothing to scan. A file a connector returned (`$content` that is a PDF, an
image, an Office/ZIP file) has its printable strings scanned: recorded as `binary file`, not blocking.
"""
from __future__ import annotations

NON_BLOCKING_SKIPS = frozenset({
    "secured", "gone", "not run", "no content", "nextLink rehomed",        # the crawl
    "binary file",  # a known file format in `$content`: its printable strings were scanned
    "not json", "not a regular file", "not followed",                      # scan-files
})


def sql_list() -> str:
    """The set as a SQL list literal, for views (values are fixed words: no quoting issues)."""
    return "(" + ", ".join(f"'{r}'" for r in sorted(NON_BLOCKING_SKIPS)) + ")"
