"""The detection engine inside a worker process (`scan-files` workers, the crawl's `--jobs` workers).

The parent sends what the engine is made of (the known-value set as keyed hashes, the confidence floor,
the parsed custom packs, the matcher it checked) and never a secret; results leave a worker redacted.
"""
from __future__ import annotations

import signal
from typing import Any

_SESSION: Any = None  # the worker's detect-secrets settings context, held open for its life


def start_worker_engine(known: Any, min_confidence: str = "medium", custom: Any = None,
                        matcher: str | None = None) -> Any:
    global _SESSION
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it cancels the rest)
    from detectors.engine import Engine

    from scanner.pipeline.matcher_cache import install

    install()  # the parent compiled (and cached) the native pass's database: load it
    # `custom` (CustomRules) arrives as its parsed TOML and compiles here: the same --rules packs;
    # the parent's matcher, so every worker runs the backend the parent checked
    engine = Engine(known=known, min_confidence=min_confidence, custom=custom, matcher=matcher)
    _SESSION = engine.session()
    _SESSION.__enter__()
    return engine
