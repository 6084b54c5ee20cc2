"""The crawl's detect stage (scanner/pipeline/detection.py `Detector`) with real worker processes: the
pool gives exactly what the in-process thread gives, in batches (fewer round trips than bodies); one
body's failure is its own; a killed worker is a clear error, never a hang; a small crawl never starts
a process; closing twice, during start-up or after a failure, is fine.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import threading
import time

import pytest

from detectors.registry import RULES
from scanner.errors import ExpectedError
from scanner.pipeline.detection import BATCH_BODIES, IN_FLIGHT_PER_WORKER, Detector, DetectorFailed
from scanner.pipeline.sweep import KnownSources, build_engine
from scanner.pipeline.worker_engine import WorkerFailure

KEY = b"detector-test-fingerprint-key-0123456789"
KNOWN = "Zq8-known-vault-value-w3Lx9Pv2"            # loaded as a known value: found only by its hash
VAULT_SECRET = "correct horse battery staple!"     # a Key Vault output: found as the source's output
TYPED = "Winter2024!"                              # typed into the action: its literal path comes back
STRINGS = [("$.inputs.body.password", f"password={TYPED}", None)]
BAD_STRINGS = [("only", "two")]                    # literal_path cannot unpack it: that body raises


def bodies() -> list[tuple]:
    """(body, side, source, strings): every rule's positive examples, a known value, a secret source's
    output, a value typed into the action, non-JSON text and bytes, and plain decoys."""
    out = []
    for rule in RULES:
        for e in rule.positive if rule.kind != "known_value" else ():
            body = e.body if isinstance(e.body, str) else json.dumps(e.body)
            out.append((body.encode(), e.side, None, []))
    out += [(json.dumps({"log": f"step3 ok conn={KNOWN};retry=0"}).encode(), "action_outputs", None, []),
            (json.dumps({"statusCode": 200, "body": {"value": VAULT_SECRET}}).encode(), "action_outputs",
             "keyvault", []),
            (json.dumps({"body": {"user": "svc", "password": TYPED}}).encode(), "action_inputs", None, STRINGS),
            (b"plain text, not JSON: ghp_" + b"a1B2c3D4" * 4 + b"e5F6", "action_outputs", None, []),
            (b"\xff\xfe not utf-8 \x00", "action_outputs", None, [])]
    out += [(json.dumps({"value": [{"ID": i, "Title": f"Invoice {i}"}]}).encode(), "action_outputs", None, [])
            for i in range(150)]
    return out


@pytest.fixture(scope="module")
def engine():
    engine, _ = build_engine(KEY, KnownSources(stdin_lines=iter([KNOWN])))
    with engine.session():
        yield engine


async def detect_all(d: Detector, items: list[tuple]) -> list:
    return await asyncio.gather(*(d.detect(*item) for item in items), return_exceptions=True)


async def started_pool(engine, jobs: int = 2) -> Detector:
    d = Detector(engine, KEY, jobs, pool_after=0)
    d.start()
    assert await asyncio.wait_for(d.pool_up(), 60), "the pool did not come up"
    return d


def test_the_pool_gives_what_the_thread_gives_in_fewer_round_trips(engine):
    items = bodies()

    async def main():
        here = Detector(engine, KEY, jobs=1)
        here.start()
        pool = await started_pool(engine)
        try:
            return await detect_all(here, items), await detect_all(pool, items), here, pool
        finally:
            await here.aclose()
            await pool.aclose()

    by_thread, by_pool, here, pool = asyncio.run(main())
    assert not here.pool_started and here.batches_sent == 0
    assert by_pool == by_thread
    assert not [r for r in by_pool if isinstance(r, BaseException)]
    rules = {h.rule_id for result, _ in by_pool for h in result.hits}
    assert {"known-value", "secret-source-output", "github-token"} <= rules, rules  # real secrets found
    assert sum(len(result.hits) for result, _ in by_pool) > 30
    assert "$.inputs.body.password" in [lit for _, literals in by_pool for lit in literals]
    # every body went to the workers, in batches: one round trip per batch, not per body
    assert pool.batches_here == 0 and pool.bodies == len(items)
    assert 1 < pool.batches_sent <= -(-len(items) // BATCH_BODIES) + 2 < len(items) // 10
    assert pool.peak_in_flight <= IN_FLIGHT_PER_WORKER * pool.jobs


def test_a_failing_body_fails_only_its_own_awaiter(engine):
    good = bodies()[:40]
    bad = (json.dumps({"body": {"password": TYPED}}).encode(), "action_inputs", None, BAD_STRINGS)
    items = good[:20] + [bad] + good[20:]

    async def main(d: Detector):
        try:
            return await detect_all(d, items), d.batches_sent
        finally:
            await d.aclose()

    async def in_pool():
        return await main(await started_pool(engine))

    by_thread, _ = asyncio.run(main(Detector(engine, KEY, jobs=1)))
    by_pool, batches = asyncio.run(in_pool())
    assert batches == 1  # the failing body travelled with the others
    for results in (by_thread, by_pool):
        assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [20]
        assert type(results[20]) is ValueError
        assert results[:20] + results[21:] == by_thread[:20] + by_thread[21:]
    assert by_thread[20].args  # in process: the exception as raised
    assert by_pool[20].args == ()  # from a worker: its type only, never its text


def test_a_worker_exception_crosses_as_its_type_only():
    class Local(Exception):  # not importable by name: a RuntimeError that names it
        pass

    for exc, kind in ((KeyError(f"body held {TYPED}"), KeyError), (Local(f"body held {TYPED}"), RuntimeError),
                      (UnicodeDecodeError("utf-8", TYPED.encode(), 0, 1, "bad"), RuntimeError)):
        back = WorkerFailure.of(exc).exception()
        assert type(back) is kind and TYPED not in repr(back) + str(back.args), (exc, back)
    assert "Local" in str(WorkerFailure.of(Local("x")).exception())


def test_a_killed_worker_is_a_clear_error_not_a_hang(engine):
    items = bodies() * 4

    async def main():
        d = await started_pool(engine)
        tasks = [asyncio.ensure_future(d.detect(*item)) for item in items]
        while d.batches_sent == 0:
            await asyncio.sleep(0.001)
        for pid in d.worker_pids:
            os.kill(pid, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        with pytest.raises(DetectorFailed):  # and so does every later body, at once
            await asyncio.wait_for(d.detect(*items[0]), 5)
        t0 = time.monotonic()
        await asyncio.wait_for(d.aclose(), 30)
        await asyncio.wait_for(d.aclose(), 5)
        return results, time.monotonic() - t0

    results, closing = asyncio.run(main())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed and all(isinstance(r, DetectorFailed) for r in failed), {type(r) for r in failed}
    why = str(failed[0])
    assert isinstance(failed[0], ExpectedError) and "worker process died" in why and "--jobs 1" in why
    assert closing < 20
    assert not multiprocessing.active_children()


def test_a_small_crawl_never_starts_a_process_and_record_never_does(engine):
    items = bodies()  # ~200 small bodies: far below POOL_AFTER
    seen: list[str] = []

    async def main():
        small = Detector(engine, KEY, jobs=2)
        small.start()
        # `record` scrubs each secret it is told: in process, whatever the threshold
        recording = Detector(engine, KEY, jobs=2, secret_sink=seen.append, pool_after=0)
        recording.start()
        try:
            await detect_all(small, items)
            await detect_all(recording, items)
            thread = await small.run_here(lambda: threading.current_thread().name)
            return small, recording, thread, multiprocessing.active_children()
        finally:
            await small.aclose()
            await recording.aclose()

    small, recording, thread, children = asyncio.run(main())
    assert not children
    for d in (small, recording):
        assert not d.pool_started and d.batches_sent == 0 and d.batches_here >= 1 and not d.worker_pids
    assert KNOWN in seen and VAULT_SECRET in seen
    assert thread.startswith("detect")


def test_the_pool_starts_past_the_threshold_and_closes_twice_while_it_starts(engine):
    items = bodies()[:60]

    async def main():
        d = Detector(engine, KEY, jobs=2, pool_after=50)
        d.start()
        await detect_all(d, items[:49])
        before = d.pool_started
        results = await detect_all(d, items[49:])
        after = d.pool_started
        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(d.aclose(), d.aclose()), 60)  # while the workers start
        await d.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await d.detect(*items[0])
        return before, after, results, time.monotonic() - t0, d

    before, after, results, closing, d = asyncio.run(main())
    assert not before and after
    assert not [r for r in results if isinstance(r, BaseException)]
    assert d.batches_sent == 0  # the bodies before the workers were up went to the thread
    assert closing < 30 and not multiprocessing.active_children()


def test_detect_waits_when_the_queue_is_full(engine):
    """Backpressure: bodies accepted and not yet detected stay bounded, however many callers."""
    items = bodies() * 5
    queued: list[int] = []

    async def main():
        d = Detector(engine, KEY, jobs=1)
        finished = asyncio.Event()

        async def watch():
            while not finished.is_set():
                queued.append(d.queued)
                await asyncio.sleep(0)

        async def one(item):
            await d.detect(*item)
            queued.append(d.queued)

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.gather(*(one(item) for item in items))
        finally:
            finished.set()
            await watcher
            await d.aclose()
        return d

    d = asyncio.run(main())
    assert d.bodies == len(items) and d.queued == 0
    # the batches in flight on the thread, and the next one being filled
    assert 0 < max(queued) <= (IN_FLIGHT_PER_WORKER + 1) * BATCH_BODIES < len(items) / 2
