"""Shared by the benchmarks: run the real CLI against the in-process fake and measure it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class Measured:
    code: int
    wall_s: float
    peak_rss_mb: float
    cpu_s: float        # the CLI's CPU time, user + system; wait4 counts its reaped worker processes too
    summary: dict
    stderr: str


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> Measured:
    """Run `flowleaks ARGS` as its own process; wall time and that process's peak RSS (wait4)."""
    summary = Path(tempfile.mkstemp(suffix=".json")[1])
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "scanner.cli", *args, "--quiet", "--summary-json", str(summary)],
                            env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, text=True)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    data = json.loads(summary.read_text()) if summary.stat().st_size else {}
    summary.unlink()
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(proc.returncode, wall, usage.ru_maxrss / 1024, cpu, data, stderr)
