"""The layout's rules (docs/architecture.md), read from the code's own imports and calls.

Each rule is an invariant of the design, not a style preference:
- click only in scanner/cli/: the rest of the scanner is usable (and testable) without a command line,
  and no module can print or exit behind the CLI's back;
- detectors import nothing of HTTP, DuckDB or the scanner: they see strings and return redacted hits,
  so a detector cannot leak a secret to a request or a table;
- only scanner/store/ opens DuckDB or runs SQL against the scan database: one place owns the schema,
  its versions and every write;
- only scanner/net/ sends requests (scanner/replay/cassette.py wraps a transport to record it, and
  sends nothing itself);
- no source file is longer than about 500 lines;
- the packages depend on each other in one direction (LAYERS below).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("scanner", "detectors") for p in (ROOT / d).rglob("*.py"))
PROJECT = sorted(p for d in ("scanner", "detectors", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))
MAX_LINES = 500


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def imports(path: Path) -> set[str]:
    """Every module name the file imports (absolute; `from . import x` resolved against its package)."""
    tree = ast.parse(path.read_text())
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = list(path.relative_to(ROOT).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def in_package(path: Path, package: str) -> bool:
    return rel(path).startswith(package.replace(".", "/") + "/")


def uses(path: Path, top: str) -> bool:
    return any(m == top or m.startswith(top + ".") for m in imports(path))


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_click_only_in_the_cli(path: Path) -> None:
    assert in_package(path, "scanner.cli") or not uses(path, "click"), f"{rel(path)} imports click"


@pytest.mark.parametrize("path", [p for p in SOURCES if in_package(p, "detectors")], ids=rel)
def test_detectors_import_nothing_of_http_duckdb_or_the_scanner(path: Path) -> None:
    bad = [top for top in ("httpx", "httpcore", "duckdb", "scanner") if uses(path, top)]
    assert not bad, f"{rel(path)} imports {bad}"


def _sql_calls(path: Path) -> list[int]:
    """Lines that call .execute/.executemany/.sql/.query on anything (the DuckDB connection API)."""
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("execute", "executemany", "sql", "query", "read_csv", "read_parquet")]


def _connection_uses(path: Path) -> list[int]:
    """Lines that reach for a Store's connection (`something.con`): outside the store, callers ask the
    Store (or, in the crawl, the writer thread) and never hold the connection itself."""
    tree = ast.parse(path.read_text())
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "con"]


@pytest.mark.parametrize("path", [p for p in SOURCES if not in_package(p, "scanner.store")], ids=rel)
def test_only_the_store_opens_duckdb_or_runs_sql(path: Path) -> None:
    assert not uses(path, "duckdb"), f"{rel(path)} imports duckdb"
    assert not _sql_calls(path), f"{rel(path)} runs SQL at lines {_sql_calls(path)}"
    if in_package(path, "scanner") or in_package(path, "detectors"):
        assert not _connection_uses(path), f"{rel(path)} uses a Store's connection at lines {_connection_uses(path)}"


SENDS_NOTHING_BUT_WRAPS = {"scanner/replay/cassette.py"}


@pytest.mark.parametrize("path", [p for p in SOURCES if not in_package(p, "scanner.net")], ids=rel)
def test_only_net_speaks_http(path: Path) -> None:
    if rel(path) in SENDS_NOTHING_BUT_WRAPS:
        return
    bad = [top for top in ("httpx", "httpcore", "urllib.request", "requests", "aiohttp") if uses(path, top)]
    assert not bad, f"{rel(path)} imports {bad}"


FOUNDATION = {"scanner.errors", "scanner.redact", "scanner.private", "scanner.keys", "scanner.logs",
              "scanner.skip_reasons"}
# What each package may import of the project (docs/architecture.md, "Packages"): down the list only.
MAY_IMPORT: dict[str, set[str]] = {
    "detectors": set(),
    **{m: FOUNDATION for m in FOUNDATION},
    "scanner.net": FOUNDATION,
    "scanner.store": FOUNDATION,
    "scanner.posture": FOUNDATION | {"detectors"},
    "scanner.replay": FOUNDATION | {"detectors"},
    "scanner.api": FOUNDATION | {"scanner.net"},
    "scanner.settings": FOUNDATION | {"scanner.net", "detectors"},
    "scanner.pipeline": FOUNDATION | {"scanner.api", "scanner.net", "scanner.store", "scanner.posture",
                                      "scanner.settings", "detectors"},
    "scanner.files": FOUNDATION | {"scanner.pipeline", "scanner.store", "scanner.posture", "scanner.settings",
                                   "scanner.net", "scanner.api", "detectors"},
    "scanner.report": FOUNDATION | {"scanner.store", "scanner.posture", "scanner.files", "scanner.pipeline",
                                    "detectors"},
}


def package_of(module: str) -> str | None:
    """`scanner.net.http` → `scanner.net`; `scanner.keys` → `scanner.keys`; `detectors.x` → `detectors`."""
    parts = module.split(".")
    if parts[0] == "detectors":
        return "detectors"
    if parts[0] != "scanner" or len(parts) < 2:
        return None
    if (ROOT / "scanner" / parts[1]).is_dir() or (ROOT / "scanner" / f"{parts[1]}.py").is_file():
        return f"scanner.{parts[1]}"
    return None  # a name imported from scanner/__init__.py (__version__)


def own_package(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return "detectors" if parts[0] == "detectors" else f"scanner.{parts[1]}"


@pytest.mark.parametrize("path", [p for p in SOURCES if not in_package(p, "scanner.cli")
                                  and rel(p) != "scanner/__init__.py"], ids=rel)
def test_packages_depend_one_way(path: Path) -> None:
    mine = own_package(path)
    allowed = MAY_IMPORT[mine] | {mine}
    bad = sorted({m for m in imports(path) if (package_of(m) or mine) not in allowed})
    assert not bad, f"{rel(path)} ({mine}) imports {bad}; it may import {sorted(MAY_IMPORT[mine])}"


def test_the_layers_have_no_cycle() -> None:
    """MAY_IMPORT itself runs one way (a package listed as allowed never allows its importer back)."""
    for a, deps in MAY_IMPORT.items():
        for b in deps:
            if b != a and b not in FOUNDATION | {a}:
                assert a not in MAY_IMPORT.get(b, set()), f"{a} and {b} may import each other"


@pytest.mark.parametrize("path", PROJECT, ids=rel)
def test_no_file_is_longer_than_about_500_lines(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{rel(path)} has {n} lines"


def test_the_rules_can_fail() -> None:
    """The readers above see what they look for (a rule that cannot see an import proves nothing)."""
    sample = ROOT / "scanner" / "cli" / "main.py"
    assert uses(sample, "click")
    store = ROOT / "scanner" / "store" / "database.py"
    assert uses(store, "duckdb") and _sql_calls(store) and _connection_uses(store)
    assert package_of("scanner.net.http") == "scanner.net" and package_of("scanner.keys") == "scanner.keys"
    assert package_of("detectors.engine") == "detectors" and package_of("scanner.__version__") is None
    assert any(package_of(m) == "scanner.net" for m in imports(ROOT / "scanner" / "pipeline" / "sweep.py"))
