"""What a cached content result depends on: rule code, known values, fingerprint key."""
from __future__ import annotations

import shutil
from pathlib import Path

import detectors
from detectors.engine import Engine
from detectors.known_values import KnownValues
from detectors.version import ruleset_digest
from scanner.pipeline.content import cache_version

KEY = b"k" * 32


def test_a_new_known_value_changes_the_engine_version():
    known = KnownValues(KEY)
    engine = Engine(known=known)
    before = engine.version
    known.add_value("a-value-that-is-long-enough", "stdin:1")
    assert engine.version != before


def test_the_fingerprint_key_changes_the_cache_version():
    engine = Engine(known=KnownValues(KEY))
    assert cache_version(engine, b"one") != cache_version(engine, b"two")
    assert cache_version(engine, b"one") == cache_version(engine, b"one")


def test_a_rule_change_changes_the_ruleset_digest(tmp_path):
    copy = tmp_path / "detectors"
    shutil.copytree(Path(detectors.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = ruleset_digest(copy)
    rules = copy / "powerplatform.py"
    rules.write_text(rules.read_text() + "\n# a rule upgrade\n")
    assert ruleset_digest(copy) != before
