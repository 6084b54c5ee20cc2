"""Precision on run-history noise (issue 11), end to end: the installed CLI against a fake tenant whose
Graph, SharePoint, Dataverse and Blob bodies are full of random-looking identifiers (paging tokens,
drive ids, FileLocators, ETags, row versions, change keys, tracking ids), with AWS / Azurite
documentation examples as decoys, and with plants of every kind: pattern secrets, Key Vault values
(known values) and generated keys under neutral names that only the entropy stage can find."""
from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.e2e.conftest import cli_env, flowleaks, fp, plant_fingerprints, rows
from tests.fakeapi import FakeFlowApi, Tenant
from tests.fakeapi.templates import TEMPLATES

PATTERN, ENTROPY, KNOWN = "pattern", "entropy", "known value"
ENTROPY_KINDS = {"random_secret"}
KNOWN_KINDS = {"keyvault_secret"}


def family(kind: str) -> str:
    return ENTROPY if kind in ENTROPY_KINDS else KNOWN if kind in KNOWN_KINDS else PATTERN


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    # every flow template twice (the identifier-heavy ones included), five runs each
    return Tenant.generate(seed=23, environments=2, flows_per_env=len(TEMPLATES), runs_per_flow=5)


def sweep(api, db: Path, *extra: str):
    return flowleaks("sweep", "--as-admin", "--quiet", *extra, env=cli_env(api, db))


def findings(db: Path) -> list[tuple]:
    return rows(db, "SELECT environment, flow_id, run_id, action, repetition, side, fingerprint, rule_id, json_path "
                    "FROM findings WHERE detector <> 'posture'")


def scored(tenant: Tenant, db: Path) -> dict:
    """Recall per plant family at each plant's location, precision over every run finding."""
    scanned = set(rows(db, "SELECT environment, flow_id, run_id FROM runs"))
    at = defaultdict(set)
    for *loc, fingerprint, _, _ in findings(db):
        at[tuple(loc)].add(fingerprint)
    checked, hit = Counter(), Counter()
    for p in tenant.iter_plants():
        if p.secured or (p.environment, p.flow_id, p.run_id) not in scanned:
            continue
        checked[family(p.kind)] += 1
        hit[family(p.kind)] += bool(plant_fingerprints(p) & at[(p.environment, p.flow_id, p.run_id, p.action,
                                                                p.repetition, p.side)])
    planted = set().union(*(plant_fingerprints(p) for p in tenant.iter_plants()))
    reported = [f[6] for f in findings(db)]
    return {"checked": checked, "hit": hit, "reported": reported,
            "true": sum(1 for f in reported if f in planted),
            "recall": sum(hit.values()) / max(1, sum(checked.values()))}


def test_precision_and_recall_on_identifier_heavy_run_history(tenant, tmp_path):
    db = tmp_path / "p.duckdb"
    with FakeFlowApi(tenant) as api:
        result = sweep(api, db, "--known-vault", api.vault_url)
    assert result.code == 1, result.stderr
    assert rows(db, "SELECT complete FROM scans") == [(True,)]
    s = scored(tenant, db)
    # every family is really measured: pattern rules, Key Vault values, entropy-only secrets
    assert s["checked"][PATTERN] > 100 and s["checked"][KNOWN] > 10 and s["checked"][ENTROPY] > 10, s["checked"]
    assert s["recall"] >= 0.97, (s["hit"], s["checked"])
    for fam in (PATTERN, ENTROPY, KNOWN):
        assert s["hit"][fam] / s["checked"][fam] >= 0.95, (fam, s["hit"], s["checked"])
    precision = s["true"] / len(s["reported"])
    print(f"precision {precision:.3f} ({s['true']}/{len(s['reported'])}), recall {s['recall']:.3f}, "
          f"by family {dict(s['hit'])} of {dict(s['checked'])}")  # shown with pytest -s
    assert precision >= 0.95, precision
    # no look-alike the tenant registered as a decoy is reported, the documentation examples included
    decoys = {fp(d) for d in tenant.decoys()}
    assert fp("AKIAIOSFODNN7EXAMPLE") in decoys
    assert not decoys & set(s["reported"])
    # the noise was there and was filtered by name (each filter queryable in `filtered`)
    filtered = dict(rows(db, "SELECT filter, count(*) FROM filtered GROUP BY 1"))
    for name in ("odata-paging", "sharepoint-id", "blob-locator", "row-version", "tracking-id", "hash-key",
                 "etag", "documentation example", "low confidence"):
        assert filtered.get(name, 0) > 0, (name, filtered)


def test_one_row_per_secret_occurrence(tenant, tmp_path):
    """Same environment/flow/run/action/repetition/side/fingerprint: one row, whichever rules and json
    paths saw it. Without known values a Key Vault value is the Get secret output rule's, not a second
    `high-entropy` row (the vault values are half random base64: entropy sees them whole)."""
    for with_known in (True, False):
        db = tmp_path / f"dup-{with_known}.duckdb"
        with FakeFlowApi(tenant) as api:
            assert sweep(api, db, *(("--known-vault", api.vault_url) if with_known else ())).code == 1
        per_location = Counter(tuple(f[:7]) for f in findings(db))
        twice = [(loc[3], loc[5], n) for loc, n in per_location.items() if n > 1]
        assert twice == [], twice
        vault_fps = {fp(v) for v in tenant.vault_secrets.values()}
        rules = Counter(f[7] for f in findings(db) if f[6] in vault_fps and f[3] == "Get_secret")
        assert rules and "high-entropy" not in rules, rules
        assert set(rules) == ({"known-value"} if with_known else {"secret-source-output"}), rules


def test_min_confidence_low_brings_back_what_the_default_filters(tenant, tmp_path):
    default, low = tmp_path / "default.duckdb", tmp_path / "low.duckdb"
    with FakeFlowApi(tenant) as api:
        assert sweep(api, default).code == 1
        assert sweep(api, low, "--min-confidence", "low").code == 1
    hidden = rows(default, "SELECT count(*) FROM filtered WHERE filter = 'low confidence'")[0][0]
    assert hidden > 0  # the Dataverse rows' short legacy references
    assert rows(low, "SELECT count(*) FROM filtered WHERE filter = 'low confidence'") == [(0,)]
    assert rows(default, "SELECT count(*) FROM findings WHERE confidence = 'low'") == [(0,)]
    # each candidate the default hid is a finding now, and nothing else changed
    count = "SELECT count(*) FROM findings"
    assert rows(low, count + " WHERE confidence = 'low' AND detector = 'entropy'") == [(hidden,)]
    assert rows(low, count)[0][0] == rows(default, count)[0][0] + hidden
