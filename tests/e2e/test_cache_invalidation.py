"""The nightly scan's content cache (md5 + size -> redacted result) must never make a nightly scan find
less than a fresh scan: a new known value, another fingerprint key or another rule set invalidates it."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from tests.e2e.conftest import cli_env, flowleaks, fp, rows
from tests.fakeapi import FakeFlowApi
from tests.fakeapi.model import to_ticks


def _strings(node, out: set[str]) -> None:
    if isinstance(node, str):
        out.add(node)
    elif isinstance(node, dict):
        for v in node.values():
            _strings(v, out)
    elif isinstance(node, list):
        for v in node:
            _strings(v, out)


def static_value(tenant, horizon: int) -> str:
    """A string that appears only in bodies seen both before and after `horizon` (so a nightly scan
    after the horizon meets it only in bodies whose md5 it has already scanned), in visible content."""
    seen_before: set[str] = set()
    seen_after: set[str] = set()
    by_md5: dict[str, set[str]] = {}
    where: dict[str, set[str]] = defaultdict(set)  # string -> md5s of the bodies holding it
    for _, detail in tenant.iter_details():
        old = detail.header.start <= horizon
        for step in (detail.trigger, *detail.actions.values()):
            holders = ([(r.inputs, r.outputs) for r in step.repetitions] if step.repetitions is not None
                       else [(step.inputs, step.outputs)])
            for inputs, outputs in holders:
                for side, body in (("inputs", inputs), ("outputs", outputs)):
                    if body is None:
                        continue
                    if side in step.secure:
                        where_secure = set()
                        _strings(body.value, where_secure)
                        for s in where_secure:
                            where[s].add("secured")
                        continue
                    (seen_before if old else seen_after).add(body.md5)
                    if body.md5 not in by_md5:
                        by_md5[body.md5] = set()
                        _strings(body.value, by_md5[body.md5])
                    for s in by_md5[body.md5]:
                        where[s].add(body.md5)
    static = seen_before & seen_after
    candidates = sorted(s for s, md5s in where.items()
                        if len(s) >= 12 and " " not in s and md5s <= static and md5s)
    assert candidates, "the tenant has no static body shared by old and new runs"
    return candidates[0]


def test_nightly_scan_with_a_new_known_value_finds_it_in_bodies_it_already_scanned(tenant, tmp_path):
    db = tmp_path / "nightly.duckdb"
    horizon = tenant.now - timedelta(days=3)
    value = static_value(tenant, to_ticks(horizon))
    with FakeFlowApi(tenant) as api:
        api.show_runs_until(horizon)
        first = flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db))
        assert first.code == 1, first.stderr
        assert rows(db, "SELECT count(*) FROM findings WHERE fingerprint = ?", [fp(value)])[0][0] == 0

        api.show_runs_until(None)  # new runs arrive, carrying the same static bodies
        second = flowleaks("scan", "--as-admin", "--quiet", "--known-values-stdin", env=cli_env(api, db),
                           stdin=value + "\n")
        assert second.code == 1, second.stderr
    found = rows(db, "SELECT DISTINCT detector, r.start_time > ? FROM findings f JOIN runs r USING "
                     "(environment, flow_id, run_id) WHERE f.fingerprint = ?", [horizon.replace(tzinfo=None),
                                                                                 fp(value)])
    assert ("known_value", True) in found, found
    assert rows(db, "SELECT count(DISTINCT engine_version) FROM content_results")[0][0] == 2


def test_cached_results_are_keyed_by_the_fingerprint_key(tenant, tmp_path):
    """Another FLOWLEAKS_FINGERPRINT_KEY: cached fingerprints (made with the old key) are not reused."""
    db = tmp_path / "keys.duckdb"
    horizon = tenant.now - timedelta(days=3)
    with FakeFlowApi(tenant) as api:
        api.show_runs_until(horizon)
        assert flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db)).code == 1
        api.show_runs_until(None)
        env = {**cli_env(api, db), "FLOWLEAKS_FINGERPRINT_KEY": "another-key"}
        assert flowleaks("scan", "--as-admin", "--quiet", env=env).code == 1
    import hashlib
    import hmac

    # every finding of the second scan's runs carries a fingerprint made with the second key
    new_fps = {r[0] for r in rows(db, "SELECT f.fingerprint FROM findings f JOIN runs r USING "
                                      "(environment, flow_id, run_id) WHERE r.start_time > ?",
                                  [horizon.replace(tzinfo=None)])}
    secrets = tenant.secrets(visible_only=True)
    old_key = {fp(s) for s in secrets}
    new_key = {hmac.new(b"another-key", s.encode(), hashlib.sha256).hexdigest() for s in secrets}
    assert new_fps & new_key
    assert not new_fps & old_key
