"""The installed `flowleaks` console script, run as a subprocess the way users and CI run it.

Its entry point, scanner.cli:main, owns the exit status: `python -m scanner.cli` skips the entry
point and click's CliRunner hides what reaches the process, so neither can catch a dropped code.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def installed_cli() -> str:
    beside = Path(sys.executable).parent / "flowleaks"  # the venv running pytest
    found = str(beside) if beside.is_file() else shutil.which("flowleaks")
    if not found:
        pytest.fail("the flowleaks console script is not installed (pip install -e .)")
    return found


def flowleaks(*args: object, env: dict[str, str] | None = None, stdin: str | None = None,
              timeout: float = 180, cwd: Path = ROOT) -> CliResult:
    p = subprocess.run([installed_cli(), *map(str, args)], env={**os.environ, **(env or {})}, cwd=cwd,
                       capture_output=True, text=True, input=stdin, timeout=timeout)
    return CliResult(p.returncode, p.stdout, p.stderr)
