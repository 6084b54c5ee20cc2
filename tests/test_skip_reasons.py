"""One list of non-blocking skip reasons: the words the crawl and scan-files write are in it."""
from scanner.files.read import NOT_JSON
from scanner.files.sources import NOT_FOLLOWED, NOT_REGULAR
from scanner.skip_reasons import NON_BLOCKING_SKIPS, sql_list


def test_scan_files_non_blocking_reasons_are_the_shared_list():
    assert {NOT_JSON, NOT_REGULAR, NOT_FOLLOWED} <= NON_BLOCKING_SKIPS
    assert "binary" not in NON_BLOCKING_SKIPS and "no link" not in NON_BLOCKING_SKIPS


def test_the_views_use_the_same_list():
    assert all(f"'{r}'" in sql_list() for r in NON_BLOCKING_SKIPS)
