"""What the API lists, hides or loses must never make a scan say less than the truth: foreign
nextLinks, actions without links, expired links, and runs that age out (issue 9, items 4, 6, 7)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.e2e.conftest import cli_env, flowleaks, rows
from tests.fakeapi import FakeFlowApi, Faults, Tenant


def sweep(api, db, *extra):
    return flowleaks("sweep", "--as-admin", "--quiet", *extra, env=cli_env(api, db))


def complete(db) -> bool:
    return rows(db, "SELECT complete FROM scans ORDER BY started_at DESC LIMIT 1")[0][0]


def skipped(db, reason: str) -> int:
    return rows(db, "SELECT count(*) FROM skipped WHERE reason = ?", [reason])[0][0]


@pytest.fixture(scope="module")
def paged_tenant() -> Tenant:
    # 300 runs over 25 days: all inside the default window, in many small pages
    return Tenant.generate(seed=23, environments=1, flows_per_env=10, runs_per_flow=30, history_days=25)


PAGES = dict(runs_page_size=3, flows_page_size=3, actions_page_size=4, repetitions_page_size=2)


# -- item 7: a foreign nextLink --------------------------------------------------------------------------

def test_foreign_next_links_lose_no_run_and_no_request_reaches_the_other_host(paged_tenant, tmp_path):
    db = tmp_path / "rehomed.duckdb"
    with FakeFlowApi(paged_tenant, faults=Faults(foreign_next_link_rate=0.05), **PAGES) as api:
        result = sweep(api, db)
        foreign = list(api.foreign_requests)
    assert result.code == 1, result.stderr
    assert rows(db, "SELECT count(*) FROM runs")[0][0] == 300
    assert foreign == []  # not even a request without a token: the path is read from home
    assert skipped(db, "nextLink rehomed") > 0  # the hijacks happened, and are on record
    assert complete(db) is True


def test_a_foreign_next_link_to_another_path_is_refused_and_the_scan_is_incomplete(paged_tenant, tmp_path):
    db = tmp_path / "refused.duckdb"
    faults = Faults(foreign_next_link_rate=0.05, foreign_next_link_path=True)
    with FakeFlowApi(paged_tenant, faults=faults, **PAGES) as api:
        result = sweep(api, db)
        foreign = list(api.foreign_requests)
    assert foreign == []
    assert skipped(db, "nextLink refused") > 0
    assert complete(db) is False
    assert result.code == 1  # findings outrank incompleteness; the scan row says incomplete


# -- item 6: missing links ---------------------------------------------------------------------------

def test_skipped_actions_are_not_run_cost_no_extra_request_and_leave_the_scan_complete(tenant, tmp_path):
    db = tmp_path / "skipped.duckdb"
    with FakeFlowApi(tenant, faults=Faults(skipped_action_rate=0.3)) as api:
        result = sweep(api, db)
        by_kind = dict(api.stats.by_kind)
    assert result.code == 1, result.stderr
    assert skipped(db, "not run") > 0
    assert skipped(db, "no link") == 0 and skipped(db, "secured") > 0
    assert complete(db) is True
    runs = rows(db, "SELECT count(*) FROM runs")[0][0]
    assert by_kind.get("run") == runs and by_kind.get("actions", 0) == 0  # one API read per run


def test_an_action_that_ran_without_links_is_a_blocking_no_link(tenant, tmp_path):
    db = tmp_path / "nolink.duckdb"
    with FakeFlowApi(tenant, faults=Faults(drop_links_rate=0.1)) as api:
        sweep(api, db)
    assert skipped(db, "no link") > 0
    assert complete(db) is False


def test_an_expired_link_missing_from_the_re_read_run_is_expired_not_secured(tenant, tmp_path):
    db = tmp_path / "expired.duckdb"
    reference = tmp_path / "reference.duckdb"
    with FakeFlowApi(tenant) as api:
        sweep(api, reference)
    with FakeFlowApi(tenant, faults=Faults(expire_links_once=True, links_vanish_on_reread=True)) as api:
        sweep(api, db)
    assert skipped(db, "expired") > 0
    # the vanished links are not passed off as secured content
    assert skipped(db, "secured") == skipped(reference, "secured")
    assert complete(db) is False


# -- item 4: findings are resolved by the API's answer, never by the clock ----------------------------------

@pytest.fixture(scope="module")
def old_tenant() -> Tenant:
    # runs over 38 days: some started more than 30 days ago and the fake still serves them
    return Tenant.generate(seed=29, environments=1, flows_per_env=10, runs_per_flow=6, history_days=38,
                           running_fraction=0)


OLD = "SELECT count(*) FROM findings WHERE run_start < now()::TIMESTAMP - INTERVAL 30 DAY AND status = ?"


def test_a_31_day_old_run_the_api_still_serves_keeps_its_findings_open(old_tenant, tmp_path):
    db = tmp_path / "old.duckdb"
    with FakeFlowApi(old_tenant) as api:
        assert sweep(api, db, "--days", "40").code == 1
    assert rows(db, OLD, ["open"])[0][0] > 0
    assert rows(db, OLD, ["resolved"])[0][0] == 0


def test_a_run_no_longer_listed_by_a_complete_scan_of_its_window_is_resolved(old_tenant, tmp_path):
    db = tmp_path / "aged.duckdb"
    with FakeFlowApi(old_tenant) as api:
        assert sweep(api, db, "--days", "40").code == 1
        old_open = rows(db, OLD, ["open"])[0][0]
        recent_open = rows(db, "SELECT count(*) FROM findings WHERE status = 'open' AND run_id IS NOT NULL")[0][0] \
            - old_open
        api.age_out_runs_before(old_tenant.now - timedelta(days=30))
        assert sweep(api, db, "--days", "40").code == 1
    assert old_open > 0
    assert rows(db, OLD, ["open"])[0][0] == 0 and rows(db, OLD, ["resolved"])[0][0] == old_open
    assert rows(db, "SELECT count(*) FROM findings WHERE status = 'open' AND run_id IS NOT NULL")[0][0] == recent_open


def test_a_nightly_scan_resolves_runs_that_now_answer_404(old_tenant, tmp_path):
    """The nightly window does not reach back to old runs: reading them (404) is the evidence."""
    db = tmp_path / "probe.duckdb"
    with FakeFlowApi(old_tenant) as api:
        assert sweep(api, db, "--days", "40").code == 1
        old_open = rows(db, OLD, ["open"])[0][0]
        api.age_out_runs_before(old_tenant.now - timedelta(days=30))
        flowleaks("scan", "--as-admin", "--quiet", env=cli_env(api, db))
    assert old_open > 0
    assert rows(db, OLD, ["open"])[0][0] == 0 and rows(db, OLD, ["resolved"])[0][0] == old_open
