"""Shared helpers for the benchmark scripts (run them as root from the repo root)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def leapfrog(*args: str, env: dict[str, str] | None = None, check: bool = True) -> float:
    """Run the leapfrog CLI; return its wall time in seconds."""
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--root", str(ROOT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    wall = time.monotonic() - start
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"leapfrog {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def compile_harness(checkout: Path = ROOT) -> None:
    """Write the .pyc files of ``checkout``'s harness package, as a pip install of leapfrog has them.

    With PYTHONDONTWRITEBYTECODE set (as in the project's shells), a checkout
    has none and every leapfrog start compiles its ~65 modules again (~70 ms),
    which no installed leapfrog pays.  Python reads .pyc files whatever that
    variable says; a module edited later is compiled from source as usual.
    """
    import compileall

    if not compileall.compile_dir(str(checkout / "harness"), quiet=1):
        raise SystemExit(f"could not byte-compile {checkout / 'harness'}; fix the syntax error compileall printed.")


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def report(name: str, rows: dict[str, object]) -> None:
    """Print a result line and append it to bench/results.jsonl (ignored by git)."""
    line = {"bench": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **rows}
    print(json.dumps(line, indent=1))
    with (ROOT / "bench" / "results.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
