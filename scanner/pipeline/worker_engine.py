"""The detection engine inside a worker process (`scan-files` workers, the crawl's `--jobs` workers),
and the crawl's pool of them (`start_detect_pool`, used by scanner/pipeline/detection.py `Detector`).

The parent sends what the engine is made of (the known-value set as keyed hashes, the confidence floor,
the parsed custom packs, the matcher it checked) and never a secret; results leave a worker redacted,
and an exception leaves it as its type only (`WorkerFailure`), never its text.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

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
    # closed while the interpreter can still import: left to the garbage collector at exit, it can print
    # "Exception ignored in: <generator object Engine.session…>" with a traceback into the parent's stderr
    atexit.register(_SESSION.__exit__, None, None, None)
    return engine


# -- the crawl's detection workers ------------------------------------------------------------------
_DETECT: tuple[Any, bytes] | None = None  # (engine, fingerprint key) of this worker


def start_detect_pool(jobs: int, engine: Any, key: bytes) -> tuple[ProcessPoolExecutor, list[Future]]:
    """`jobs` spawned workers, each building its engine from `engine`'s parts, and one `worker_ready`
    future per worker (each submit spawns one). Blocks while the children read their start-up data:
    call it off the event loop."""
    import multiprocessing
    from multiprocessing import resource_tracker

    # first: when it starts the tracker process, it unblocks SIGINT in this thread afterwards
    resource_tracker.ensure_running()
    with _sigint_blocked():  # the children inherit the mask: a Ctrl-C is the parent's alone
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=init_detect_worker,
            initargs=(engine.known, key, engine.min_confidence, engine.custom, engine.matcher))
        return pool, [pool.submit(worker_ready) for _ in range(jobs)]


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread. A process started here inherits the mask, across exec too, so a
    Ctrl-C while it still imports cannot kill it with a traceback (it ignores SIGINT from its init on)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def init_detect_worker(known: Any, key: bytes, min_confidence: str, custom: Any, matcher: str) -> None:
    global _DETECT
    _DETECT = (start_worker_engine(known, min_confidence, custom, matcher), key)


def worker_ready() -> int:
    """Each worker's first task: it ran its initializer (its engine is built)."""
    assert _DETECT is not None, "init_detect_worker did not run"
    return os.getpid()


def detect_batch_in_worker(items: list[tuple]) -> list:
    """`detect_body` of each (body, side, source, strings): its result, or a WorkerFailure (one body's
    exception fails that body only)."""
    from scanner.pipeline.detection import detect_body  # (that module imports this one)

    assert _DETECT is not None, "init_detect_worker did not run"
    engine, key = _DETECT
    out: list = []
    for body, side, source, strings in items:
        try:
            out.append(detect_body(engine, key, body, side, source, strings))
        except Exception as exc:  # noqa: BLE001 - that body's awaiter raises it
            out.append(WorkerFailure.of(exc))
    return out


@dataclass(frozen=True, slots=True)
class WorkerFailure:
    """An exception in a worker as it may cross back: where its type is defined, never its text
    (which could quote a body or a secret)."""

    module: str
    qualname: str

    @classmethod
    def of(cls, exc: BaseException) -> "WorkerFailure":
        return cls(type(exc).__module__, type(exc).__qualname__)

    def exception(self) -> Exception:
        """The same type without arguments when this process can import and build it, else a
        RuntimeError naming the type."""
        try:
            kind: Any = importlib.import_module(self.module)
            for part in self.qualname.split("."):
                kind = getattr(kind, part)
            if isinstance(kind, type) and issubclass(kind, Exception):
                return kind()
        except Exception:  # noqa: BLE001 - not importable here, or it needs arguments
            pass
        return RuntimeError(f"{self.qualname} in a detection worker")
