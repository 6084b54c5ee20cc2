"""Hardening tests (issue 6): markers and the example budget for the hypothesis fuzzers.

`make fuzz` sets FLOWLEAKS_FUZZ_EXAMPLES=5000 and runs `pytest tests -k fuzz`: every fuzz test here has
"fuzz" in its name and reads its example count from `fuzz_examples()` (default 50, so `make test`
stays fast). Tests marked `fuzz` run only the full-size variants of the pathological payloads
(100 MB string, 1,000,000 keys) when FLOWLEAKS_FUZZ_EXAMPLES is set, and are skipped otherwise.
"""
from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: hypothesis fuzzers and full-size pathological inputs (make fuzz)")
    config.addinivalue_line("markers", "slow: longer end-to-end runs")


def pytest_collection_modifyitems(config, items):
    full = bool(os.environ.get("FLOWLEAKS_FUZZ_EXAMPLES"))
    skip = pytest.mark.skip(reason="full-size input: runs under `make fuzz` (FLOWLEAKS_FUZZ_EXAMPLES set)")
    for item in items:
        if "full_size" in item.keywords and not full:
            item.add_marker(skip)
