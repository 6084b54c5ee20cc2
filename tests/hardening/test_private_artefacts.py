"""Private artefacts and what never leaves the process (issue 6.6, issue 9).

The database, its key file, the summary JSON, exports, cassettes and the token cache are mode 0600
(checked with the child's umask at 022, so a 0644 default would show); a sweep that dies on a payload
full of planted secrets prints none of them and not the token; the access token is never in any output
or in the database file's bytes.

Private *during* the run, not only after it: a sweep, a `record` and the exports are watched while
they run (their folders polled every ~20 ms), so a file born world-readable and tightened later - the
WAL DuckDB creates at its first write, its spill folder, a cassette - fails, as does a WAL never seen.
"""
from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scanner import private
from scanner.net.auth import write_token_cache
from scanner.replay.cassette import Cassette, Interaction
from scanner.store.database import Store
from scanner.keys import fingerprint_key
from tests.fakeapi import FakeFlowApi, Faults, Tenant
from tests.hardening.helpers import FLOWLEAKS, NOW, ROOT, SINCE, UNTIL, db_rows, flowleaks, sweep_args

TOKEN = "tok-HARDENING-9f8e7d6c5b4a-never-printed"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def tenant():
    return Tenant.generate(33, environments=1, flows_per_env=3, runs_per_flow=2, now=NOW)


@pytest.fixture(scope="module")
def runs(tenant, tmp_path_factory):
    """One normal sweep (key file, no FLOWLEAKS_FINGERPRINT_KEY), its exports, one failing sweep."""
    d = tmp_path_factory.mktemp("artefacts")
    out: dict = {"dir": d}
    with FakeFlowApi(tenant, token=TOKEN) as api:
        env = api.env_vars()
        with ThreadPoolExecutor(2) as pool:  # two independent sweeps side by side
            ok = pool.submit(flowleaks, sweep_args(d / "scan.duckdb", "--summary-json", str(d / "summary.json")),
                             env, extra_env={"FLOWLEAKS_FINGERPRINT_KEY": None})
            failed = pool.submit(flowleaks, sweep_args(d / "failed.duckdb"), env, fail_after=3)
            out["sweep"], out["failed"] = ok.result(), failed.result()
            jobs = {fmt: (d / f"findings.{fmt}", pool.submit(flowleaks, [
                "export", "--format", fmt, "--out", str(d / f"findings.{fmt}"), "--db", str(d / "scan.duckdb")]))
                for fmt in ("jsonl", "csv", "sarif", "parquet")}
            out["exports"] = {fmt: (path, job.result()) for fmt, (path, job) in jobs.items()}
        out["content_auth"] = list(api.content_auth_headers_seen)
    return out


def test_sweep_itself_worked(runs):
    assert runs["sweep"].returncode == 1, runs["sweep"].stderr[-2000:]
    assert runs["failed"].returncode == 4, runs["failed"].stderr[-2000:]
    assert runs["content_auth"] == []


def test_database_key_file_and_summary_are_0600(runs):
    d = runs["dir"]
    for name in ("scan.duckdb", "scan.duckdb.key", "summary.json", "failed.duckdb"):
        assert mode(d / name) == 0o600, name
    # the WAL is gone once the sweep closes its database: test_watched_sweep checks it while it exists


def test_exports_are_0600(runs):
    for fmt, (path, p) in runs["exports"].items():
        assert p.returncode == 0, (fmt, p.stderr)
        assert path.stat().st_size > 0 and mode(path) == 0o600, fmt


def test_write_token_cache_creates_and_tightens(tmp_path):
    new = tmp_path / "cache" / "msal-token-cache.json"
    write_token_cache(new, '{"AccessToken": {}}')
    assert mode(new) == 0o600
    old = tmp_path / "loose.json"
    old.write_text("x")
    os.chmod(old, 0o644)
    write_token_cache(old, '{"RefreshToken": {}}')
    assert mode(old) == 0o600 and old.read_text() == '{"RefreshToken": {}}'


def _all_output(runs) -> str:
    texts = [runs["sweep"].stdout, runs["sweep"].stderr, runs["failed"].stdout, runs["failed"].stderr]
    texts += [p.stdout + p.stderr for _, p in runs["exports"].values()]
    texts.append((runs["dir"] / "summary.json").read_text())
    for fmt, (path, _) in runs["exports"].items():
        texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def _secrets(tenant) -> set[str]:
    # long enough to be unmistakable in a report (a 6-char value could be an id fragment)
    return {p.secret for p in tenant.planted if len(p.secret) >= 10}


def test_failing_sweep_prints_no_secret_and_no_token(runs, tenant):
    failed = runs["failed"].stdout + runs["failed"].stderr
    assert "stopped by an unexpected error: RuntimeError" in failed
    assert TOKEN not in failed and "boom" not in failed
    leaked = [s for s in _secrets(tenant) if s in failed]
    assert leaked == []
    (error,), = db_rows(runs["dir"] / "failed.duckdb", "SELECT error FROM scans")
    assert TOKEN not in error and not [s for s in _secrets(tenant) if s in error]


def test_token_and_secrets_never_in_outputs_or_database_bytes(runs, tenant):
    text = _all_output(runs)
    assert TOKEN not in text
    assert [s for s in _secrets(tenant) if s in text] == []
    for db in runs["dir"].glob("*.duckdb*"):
        data = db.read_bytes()
        assert TOKEN.encode() not in data, db.name
        assert [s for s in _secrets(tenant) if s.encode() in data] == [], db.name
    # and the findings are really there, as previews
    rows = db_rows(runs["dir"] / "scan.duckdb", "SELECT preview, secret_length FROM findings WHERE detector <> 'posture'")
    assert rows and all("…(" in p for p, _ in rows)


# -- private while running (issue 9) ----------------------------------------------------------------

LOOSE = 0o077          # any group/other bit
POLL_S = 0.02
LATENCY_MS = 40        # per request on the fake: the sweep and the record run a few seconds each


class FolderWatch:
    """Every path under `root` (not `root` itself) with every mode it was seen with."""

    def __init__(self, root: Path):
        self.root = root
        self.modes: dict[str, set[int]] = defaultdict(set)

    def snapshot(self) -> None:
        for folder, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                try:
                    self.modes[os.path.relpath(path, self.root)].add(stat.S_IMODE(os.lstat(path).st_mode))
                except FileNotFoundError:
                    pass  # came and went between the listing and the lstat

    def loose(self) -> dict[str, list[str]]:
        return {p: sorted(oct(m) for m in ms) for p, ms in self.modes.items() if any(m & LOOSE for m in ms)}

    def named(self, suffix: str) -> dict[str, set[int]]:
        return {p: ms for p, ms in self.modes.items() if p.endswith(suffix)}


def spawn(args: list[str], api_env: dict[str, str], log: Path, **extra_env: str | None) -> subprocess.Popen:
    """The installed CLI, like helpers.flowleaks (umask 022, no stray FLOWLEAKS_*), but not waited for."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLEAKS_")}
    env.update(api_env)
    env.update(extra_env)
    env = {k: v for k, v in env.items() if v is not None}
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([str(FLOWLEAKS), *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.umask(0o022))


def watch(procs: list[subprocess.Popen], watches: list[FolderWatch], timeout: float = 60) -> list[int]:
    """Poll every folder until every process has exited (one last look after); their exit codes."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        for w in watches:
            w.snapshot()
        time.sleep(POLL_S)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for w in watches:
        w.snapshot()
    return [p.returncode for p in procs]


def private_folder(path: Path) -> Path:
    path.mkdir(mode=0o700)  # what a user would give a scan: the watch reports only what appears inside
    return path


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """A sweep and a `record` side by side against a slow fake, then the four exports of the sweep."""
    root, logs = tmp_path_factory.mktemp("watched"), tmp_path_factory.mktemp("watched-logs")
    sweep_dir, record_tmp, record_out, export_dir = (
        private_folder(root / n) for n in ("sweep", "record-tmp", "record-out", "export"))
    db = sweep_dir / "scan.duckdb"
    out = {"sweep": FolderWatch(sweep_dir), "record_tmp": FolderWatch(record_tmp),
           "record_out": FolderWatch(record_out), "export": FolderWatch(export_dir), "logs": logs,
           "cassette": record_out / "out" / "repro.yaml"}
    tenant = Tenant.generate(34, environments=1, flows_per_env=4, runs_per_flow=3, now=NOW)
    with FakeFlowApi(tenant, token=TOKEN, faults=Faults(latency_ms=LATENCY_MS)) as api:
        env = api.env_vars()
        started = time.monotonic()
        sweep = spawn(sweep_args(db, "--summary-json", str(sweep_dir / "summary.json")), env, logs / "sweep.log",
                      FLOWLEAKS_FINGERPRINT_KEY=None)  # so the key file is created too
        record = spawn(["record", "--as-admin", "--out", str(out["cassette"]), "--since", SINCE, "--until", UNTIL],
                       env, logs / "record.log", FLOWLEAKS_FINGERPRINT_KEY=None, TMPDIR=str(record_tmp))
        out["sweep_rc"], out["record_rc"] = watch([sweep, record], [out["sweep"], out["record_tmp"],
                                                                    out["record_out"]])
        out["duration"] = time.monotonic() - started
    exports = [spawn(["export", "--format", fmt, "--out", str(export_dir / f"findings.{fmt}"), "--db", str(db)],
                     {}, logs / f"export-{fmt}.log") for fmt in ("jsonl", "csv", "sarif", "parquet")]
    out["export_rcs"] = watch(exports, [out["export"]])
    return out


def _log(watched, name: str) -> str:
    return (watched["logs"] / f"{name}.log").read_text()[-2000:]


def test_watched_sweep_never_shows_a_loose_file_and_its_wal_is_0600_while_it_exists(watched):
    assert watched["sweep_rc"] == 1, _log(watched, "sweep")
    w = watched["sweep"]
    assert w.loose() == {}
    # the WAL exists only while the sweep runs: it must have been seen, and only ever 0600
    assert w.named(".wal") == {"scan.duckdb.wal": {0o600}}, (watched["duration"], dict(w.modes))
    assert w.modes["scan.duckdb.tmp"] == {0o700}  # DuckDB's spill folder: ours, beside the database
    for name in ("scan.duckdb", "scan.duckdb.key", "summary.json"):
        assert w.modes[name] == {0o600}, name


def test_watched_record_keeps_its_database_and_cassette_private(watched):
    assert watched["record_rc"] == 0, _log(watched, "record")
    assert watched["record_tmp"].loose() == {} and watched["record_out"].loose() == {}
    assert [ms for ms in watched["record_tmp"].named("record.duckdb.wal").values()] == [{0o600}]
    assert watched["record_out"].modes["out/repro.yaml"] == {0o600}
    assert "interactions" in watched["cassette"].read_text()


def test_watched_exports_never_show_a_loose_file(watched):
    assert watched["export_rcs"] == [0, 0, 0, 0], [_log(watched, f"export-{f}") for f in ("csv", "parquet")]
    w = watched["export"]
    assert w.loose() == {}
    assert {p for p, ms in w.modes.items() if ms == {0o600}} >= {
        "findings.jsonl", "findings.csv", "findings.sarif", "findings.parquet"}


# -- the pieces, in this process (umask 022: a default file would be 0644) --------------------------

@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_open_private_creates_0600_tightens_an_existing_file_and_refuses_symlinks(tmp_path, loose_umask):
    new = tmp_path / "new.json"
    private.write_private_text(new, "{}")
    assert mode(new) == 0o600
    old = tmp_path / "old.json"
    old.write_text("old contents")
    os.chmod(old, 0o644)
    private.write_private_bytes(old, b"new")
    assert mode(old) == 0o600 and old.read_bytes() == b"new"
    target = tmp_path / "elsewhere"
    target.write_text("theirs")
    os.chmod(target, 0o644)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        private.write_private_text(tmp_path / "link", "ours")
    assert target.read_text() == "theirs" and mode(target) == 0o644
    with pytest.raises(FileExistsError):
        private.write_private_text(new, "again", exclusive=True)


def test_private_dir_creates_or_tightens_and_refuses_a_symlink(tmp_path, loose_umask):
    assert mode(private.private_dir(tmp_path / "fresh")) == 0o700
    (tmp_path / "loose").mkdir(mode=0o755)
    assert mode(private.private_dir(tmp_path / "loose")) == 0o700
    (tmp_path / "link").symlink_to(tmp_path / "loose")
    with pytest.raises(NotADirectoryError):
        private.private_dir(tmp_path / "link")


def test_private_umask_is_held_until_the_last_holder_leaves(loose_umask):
    def current() -> int:
        m = os.umask(0o022)
        os.umask(m)
        return m

    with private.private_umask():
        with private.private_umask():
            assert current() == 0o077
        assert current() == 0o077  # an inner holder leaving must not loosen it for the outer one
    assert current() == 0o022


def test_a_wal_created_after_a_checkpoint_is_born_0600(tmp_path, loose_umask):
    """DuckDB deletes the WAL at a checkpoint and creates a new one at the next write, with whatever
    umask the process has then: the store keeps it private for the whole life of the connection."""
    db = tmp_path / "f.duckdb"
    store = Store(db)
    try:
        store.con.execute("CHECKPOINT")
        assert not Path(f"{db}.wal").exists()
        store.begin_scan("sweep", {})
        assert mode(Path(f"{db}.wal")) == 0o600
    finally:
        store.close()
    assert not Path(f"{db}.tmp").exists()  # our empty spill folder does not outlive the store


def test_duckdb_spill_files_are_private(tmp_path, loose_umask):
    """A query bigger than the memory limit spills into the store's temp folder: 0700, files 0600."""
    db = tmp_path / "spill.duckdb"
    store = Store(db)
    watch_tmp, seen, done = FolderWatch(Path(f"{db}.tmp")), [], threading.Event()

    def poll() -> None:
        while not done.is_set():
            watch_tmp.snapshot()
            time.sleep(0.005)

    try:
        assert mode(Path(f"{db}.tmp")) == 0o700
        store.con.execute("SET memory_limit = '32MB'; SET threads = 2; SET preserve_insertion_order = false")
        store.con.execute("CREATE TEMP TABLE big AS SELECT md5(range::VARCHAR) y FROM range(1000000)")
        poller = threading.Thread(target=poll)
        poller.start()
        try:
            seen = store.con.execute("SELECT y, count(*) c FROM big GROUP BY y ORDER BY c DESC, y LIMIT 1").fetchall()
        finally:
            done.set()
            poller.join()
    finally:
        store.close()
    assert seen
    spilled = watch_tmp.named(".tmp")
    assert spilled, "the query did not spill: the test proves nothing"
    assert watch_tmp.loose() == {}


def test_key_file_and_cassette_are_created_0600(tmp_path, loose_umask, monkeypatch):
    monkeypatch.delenv("FLOWLEAKS_FINGERPRINT_KEY", raising=False)
    key = fingerprint_key(tmp_path / "k.duckdb")
    assert mode(tmp_path / "k.duckdb.key") == 0o600 and fingerprint_key(tmp_path / "k.duckdb") == key
    cassette = tmp_path / "c.yaml"
    cassette.write_text("old")
    os.chmod(cassette, 0o644)
    Cassette([Interaction("GET", "http://127.0.0.1/x", 200, {}, "{}")]).save(cassette)
    assert mode(cassette) == 0o600 and "interactions" in cassette.read_text()
    Cassette([]).save(tmp_path / "new" / "c.yaml")
    assert mode(tmp_path / "new" / "c.yaml") == 0o600


def test_copy_export_over_a_loose_file_is_0600(tmp_path, loose_umask):
    """DuckDB's COPY writes its own file (through a tmp_ file when the target exists): the export
    still ends 0600, and the old 0644 file is not what remains."""
    import duckdb

    from scanner.store.export import copy_findings

    db = tmp_path / "e.duckdb"
    Store(db).close()
    out = tmp_path / "findings.csv"
    out.write_text("old export")
    os.chmod(out, 0o644)
    con = duckdb.connect(str(db), read_only=True)  # as `flowleaks export` opens it: no store, no umask held
    try:
        assert copy_findings(con, "csv", str(out)) == 0
    finally:
        con.close()
    assert mode(out) == 0o600 and "finding_id" in out.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("tmp_")] == []
