"""The image: the Dockerfile, the .dockerignore build context and what `pip install .` installs."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import tomllib

from tests.deploy import ROOT, SECRETISH
from tests.deploy.dockerfile import (dockerfile_instructions, dockerignore_rules, env_assignments, excluded, final_stage,
                                     image_env, image_uid)


def test_the_image_runs_as_a_fixed_non_root_user():
    uid = image_uid()
    assert uid != 0
    users = [a for i, a in final_stage() if i == "USER"]
    gid = users[-1].split(":")[1] if ":" in users[-1] else None
    assert gid is None or (gid.isdigit() and int(gid) != 0), "a non-root group too"
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", runs), f"the image creates no user with uid {uid}"


def test_the_image_bakes_in_no_secret():
    for stage, instr, args in dockerfile_instructions():
        if instr in ("ENV", "ARG"):
            for name in env_assignments(args):
                assert not SECRETISH.search(name), f"{instr} {name}: a credential or key baked into the image"
        if instr in ("COPY", "ADD"):
            assert not re.search(r"\.(key|pem|pfx|env|duckdb)\b", args), f"{instr} {args}: a key or database"
    assert not [a for _, i, a in dockerfile_instructions() if i == "ADD"], "ADD fetches and unpacks: use COPY"


def test_the_image_copies_only_the_package_sources():
    allowed = {"pyproject.toml", "README.md", "LICENSE", "scanner", "detectors"}
    for _, instr, args in dockerfile_instructions():
        if instr != "COPY" or "--from=" in args:
            continue
        srcs = [s for s in shlex.split(args) if not s.startswith("--")][:-1]
        for s in srcs:
            assert s.rstrip("/") in allowed, f"COPY {s}: the image needs only {sorted(allowed)}"


def test_the_entrypoint_is_flowleaks():
    entry = [a for i, a in final_stage() if i == "ENTRYPOINT"]
    assert entry, "no ENTRYPOINT"
    assert json.loads(entry[-1]) == ["flowleaks"], f"ENTRYPOINT {entry[-1]} (exec form, flowleaks alone)"


def test_data_and_cache_are_writable_by_the_image_user():
    uid, env = image_uid(), image_env()
    cache = env.get("XDG_CACHE_HOME")
    assert cache and cache.startswith("/"), "XDG_CACHE_HOME must point at a folder the user can write"
    volumes = [v for i, a in final_stage() if i == "VOLUME" for v in json.loads(a)]
    assert "/data" in volumes
    runs = [a for i, a in final_stage() if i == "RUN"]
    owned = [r for r in runs if re.search(rf"install -d -o {uid}\b", r)]
    assert owned and all(p in owned[0].split() for p in ("/data", cache)), \
        f"/data and {cache} must be created owned by uid {uid}"


def test_the_build_refuses_a_package_without_its_modules_or_rules():
    """The image is checked after install, from the installed copy: a package built without
    scanner/files or detectors/rules/*.toml fails the build rather than scanning with no rules."""
    runs = " ".join(a for i, a in final_stage() if i == "RUN")
    assert "import scanner.files" in runs and "catalogue.load()" in runs


def test_dockerignore_lets_in_only_the_package():
    rules = dockerignore_rules()
    for path in (".venv/bin/python", ".git/HEAD", "demo-output/demo.duckdb", "tenant.duckdb",
                 "scanner/stray.duckdb", "scanner/stray.duckdb.wal", "flowleaks.duckdb.key", "detectors/a.key",
                 "cassettes/sample-tenant.yaml", "tests/deploy/test_image.py", ".pytest_cache/v/x", ".hypothesis/x",
                 "build/lib/scanner/cli/main.py", "flowleaks.egg-info/PKG-INFO", "scanner/__pycache__/cli.cpython-311.pyc",
                 "deploy/kubernetes/cronjob.yaml", "benchmarks/crawl.py", "docs/decisions.md", ".env", "app.pem"):
        assert excluded(path, rules), f".dockerignore lets {path} into the build context"
    for path in ("pyproject.toml", "README.md", "LICENSE", "scanner/cli/main.py", "scanner/files/read.py",
                 "detectors/engine.py", "detectors/rules/microsoft.toml"):
        assert not excluded(path, rules), f".dockerignore keeps {path} (the build needs it) out"
    # and in this very repository, everything that would enter the context
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        rel = "" if rel == "." else rel + "/"
        dirnames[:] = [d for d in dirnames if not (excluded(rel + d, rules) and not any(
            neg and fnmatch.fnmatch(rel + d, pat.split("/")[0]) for neg, pat, _ in rules))]
        for f in filenames:
            path = rel + f
            if not excluded(path, rules):
                top = path.split("/")[0]
                assert top in ("pyproject.toml", "README.md", "LICENSE", "scanner", "detectors"), path


def test_the_package_build_includes_every_module_and_rule_file():
    """What `pip install .` in the image installs: every package folder and the rule catalogue. An
    explicit `packages = [...]` list leaves out subpackages (scanner/files), and data files need
    package-data (there is no MANIFEST.in); the editable install the tests use hides both."""
    from setuptools import find_packages

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("setuptools", {})
    packages = cfg.get("packages")
    if isinstance(packages, dict) or packages is None:
        find = (packages or {}).get("find", {})
        packages = find_packages(where=str(ROOT), include=find.get("include", ["*"]), exclude=find.get("exclude", ()))
    packages = set(packages)
    data = cfg.get("package-data", {})
    for top in ("scanner", "detectors"):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert name in packages, f"package {name} is not installed by pip install . (pyproject.toml)"
        for f in (ROOT / top).rglob("*"):
            if f.is_dir() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            owner = f.parent
            while not (owner / "__init__.py").exists():
                owner = owner.parent
            pkg = ".".join(owner.relative_to(ROOT).parts)
            rel = f.relative_to(owner).as_posix()
            globs = [*data.get(pkg, []), *data.get("*", []), *data.get("", [])]
            assert any(fnmatch.fnmatch(rel, g) for g in globs), \
                f"{f.relative_to(ROOT)} is not package data of {pkg}: pip install . leaves it out"
