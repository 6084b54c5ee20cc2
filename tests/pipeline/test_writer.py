"""The crawl's one writer (scanner/pipeline/writer.py): during a scan, every DuckDB call comes from the
writer thread, none from the event loop; a failed write surfaces in the crawl; the queue is bounded.

The thread test runs the installed CLI against the loopback fake with the Store's connection wrapped
in a proxy that records, for each call (execute, fetchall, sql, close…), the thread that made it.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from scanner.pipeline.writer import MAX_PENDING, THREAD_NAME, StoreWriter
from scanner.store.database import Batch, Store
from tests.e2e.conftest import KEY, rows
from tests.fakeapi import FakeFlowApi, Tenant

ROOT = Path(__file__).resolve().parents[2]

# The CLI with every read-write Store connection recorded: (thread name, thread id, method, in the
# crawl, SQL head). Read-only stores (the summary, after the scan) are not the crawl's.
RECORD = r'''
import json, os, sys, threading
import scanner.store.database as database
import scanner.pipeline.crawl as crawl

CALLS, IN_CRAWL = [], [False]

class Recorded:
    def __init__(self, con):
        object.__setattr__(self, "_con", con)
    def __getattr__(self, name):
        attr = getattr(self._con, name)
        if not callable(attr):
            return attr
        def call(*a, **k):
            sql = a[0][:120] if a and isinstance(a[0], str) else ""
            t = threading.current_thread()
            CALLS.append((t.name, t.ident, name, IN_CRAWL[0], sql))
            out = attr(*a, **k)
            return self if out is self._con else out  # execute() returns the connection: keep recording
        return call

_connect = database.Store._connect
def recorded_connect(self):
    con = _connect(self)
    return con if self.read_only else Recorded(con)
database.Store._connect = recorded_connect

_run = crawl.Crawl.run
async def run(self):
    IN_CRAWL[0] = True
    try:
        return await _run(self)
    finally:
        IN_CRAWL[0] = False
crawl.Crawl.run = run

from scanner.cli.main import main
sys.argv = ["flowleaks"] + sys.argv[1:]
try:
    main()
finally:
    with open(os.environ["RECORD_TO"], "w") as f:
        json.dump({"main": threading.main_thread().ident, "calls": CALLS}, f)
'''


def recorded(api: FakeFlowApi, db: Path, out: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLOWLEAKS_")}, **api.env_vars(),
           "FLOWLEAKS_FINGERPRINT_KEY": KEY, "FLOWLEAKS_DB": str(db), "RECORD_TO": str(out)}
    p = subprocess.run([sys.executable, "-c", RECORD, *args, "--as-admin", "--quiet", "--jobs", "1"], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    return p, json.loads(out.read_text())


def test_every_database_call_of_a_scan_comes_from_the_writer_thread(tmp_path):
    tenant = Tenant.generate(seed=5, environments=2, flows_per_env=5, runs_per_flow=10)
    db = tmp_path / "w.duckdb"
    with FakeFlowApi(tenant) as api:
        # a sweep, then two nightly scans: watermarks, unchanged flows, content reuse all read
        runs = [recorded(api, db, tmp_path / f"{kind}{i}.json", kind) for i, kind in enumerate(("sweep", "scan", "scan"))]
    for p, _ in runs:
        assert p.returncode == 1, p.stderr[-2000:]  # complete, with findings
    for p, rec in runs:
        calls = rec["calls"]
        crawl_calls = [c for c in calls if c[3]]
        threads = {(name, ident) for name, ident, *_ in calls}
        assert len(threads) == 1, threads  # one thread opened, used and closed the store
        (name, ident), = threads
        assert name.startswith(THREAD_NAME) and ident != rec["main"], name  # not the loop's thread
        assert len(calls) > 100 and len(crawl_calls) > 50, (len(calls), len(crawl_calls))
        methods = Counter(c[2] for c in calls)
        print(f"{len(calls)} calls on {name}, {len(crawl_calls)} during the crawl, 0 elsewhere: {dict(methods)}")
    # the crawl's reads go through the writer too: watermarks, stored flows, cached content results
    heads = {c[4].split(" FROM ")[-1].split()[0] for _, rec in runs for c in rec["calls"]
             if c[4].startswith("SELECT") and " FROM " in c[4]}
    assert {"watermarks", "flows", "content_results", "suppressions"} <= heads, heads
    assert rows(db, "SELECT count(*) FROM scans WHERE status = 'complete'")[0][0] == 3
    assert rows(db, "SELECT sum(content_reused) FROM scans")[0][0] > 0


# -- the writer on its own ----------------------------------------------------------------------------

def test_calls_run_in_order_on_one_thread_that_opens_and_closes_the_store(tmp_path):
    db = StoreWriter.open(str(tmp_path / "o.duckdb"))
    try:
        seen = []

        async def crawl() -> list:
            for i in range(10):
                await db.write(lambda s, i=i: seen.append((i, threading.get_ident())))
            return await db.run(lambda s: list(seen))

        got = asyncio.run(crawl())
        assert [i for i, _ in got] == list(range(10))  # a read sees every write queued before it
        assert {t for _, t in got} == {db.thread_id} and db.thread_id != threading.get_ident()
    finally:
        db.close()


def test_a_failed_write_surfaces_and_stops_the_writes_queued_after_it(tmp_path):
    db = StoreWriter.open(str(tmp_path / "f.duckdb"))
    scan = db.call(Store.begin_scan, "sweep", {})
    bad = Batch.empty()
    bad.runs.append(("too", "short"))  # a row of the wrong width: the transaction fails
    good = Batch.empty()
    good.watermarks.append(("env", "flow", "2024-01-01T00:00:00.0000000", [], scan))

    async def crawl() -> None:
        await db.write(Store.write_batch, bad)
        await db.write(Store.write_batch, good)  # queued behind the failure: must not commit
        await asyncio.sleep(0.2)
        await db.run(Store.watermark, "env", "flow")  # the next call raises the failure

    try:
        with pytest.raises(Exception) as caught:
            asyncio.run(crawl())
        assert "WriterFailed" not in type(caught.value).__name__
        assert db.call(Store.watermark, "env", "flow") == (None, [])  # nothing committed past it
        assert db.call(Store.query, "SELECT count(*) FROM runs") == [(0,)]

        async def end():
            return await db.drain()
        assert asyncio.run(end()) is caught.value  # the crawl's end sees it too
    finally:
        db.close()


def test_queued_writes_are_bounded(tmp_path):
    db = StoreWriter.open(str(tmp_path / "b.duckdb"))
    gate = threading.Event()
    most = [0]

    async def crawl() -> None:
        await db.write(lambda s: gate.wait(5))
        for _ in range(10):
            asyncio.get_running_loop().call_later(0.05, gate.set)
            await db.write(lambda s: time.sleep(0.001))
            most[0] = max(most[0], db.pending)
        assert await db.drain() is None

    try:
        asyncio.run(crawl())
        assert most[0] <= MAX_PENDING + 1 and db.pending == 0
    finally:
        db.close()
