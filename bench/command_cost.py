"""The cost of one trivial command in a started target, with a working folder: ``run(["true"], cwd="/tmp")``.

What a cell pays per command beyond the program itself (entering the root, the
folder, the emulator's start).  Each side starts the target once in a child
process of its own checkout, runs one warm-up, then times ``--calls`` calls;
with ``--compare-to DIR`` (another leapfrog checkout, e.g. a git worktree of an
older commit) the two sides alternate ``--reps`` times, so both see the same
machine load.  Run as root from the repo root::

    python3 bench/command_cost.py [--target debian-trixie-riscv64-rva23] [--calls 5] [--reps 5] [--compare-to DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, compile_harness, median, report

CHILD = """
import json, sys, time
from pathlib import Path
from harness.config import load_project
from harness.targets import make_target

root, name, calls = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
target = make_target(load_project(root).targets[name])
target.start()
try:
    target.run(["true"], timeout=120, cwd="/tmp")  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        done = target.run(["true"], timeout=120, cwd="/tmp")
        times.append(time.perf_counter() - start)
        if not done.ok:
            raise SystemExit(f"run true failed: {done.exit_code} {done.stderr[-500:]}")
finally:
    target.stop()
print(json.dumps(times))
"""


def batch(checkout: Path, target: str, calls: int) -> list[float]:
    """``calls`` timed commands in a target started by ``checkout``'s leapfrog (seconds each)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), target, str(calls)],
        cwd=checkout,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: {done.stderr[-3000:]}")
    times: list[float] = json.loads(done.stdout.splitlines()[-1])
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="debian-trixie-riscv64-rva23")
    ap.add_argument("--calls", type=int, default=5, help="timed commands per started target")
    ap.add_argument("--reps", type=int, default=5, help="started targets per side")
    ap.add_argument("--compare-to", type=Path, help="another leapfrog checkout, measured alongside")
    args = ap.parse_args()
    sides = {"now": ROOT, **({"other": args.compare_to.resolve()} if args.compare_to else {})}
    for checkout in sides.values():
        compile_harness(checkout)
    times: dict[str, list[float]] = {side: [] for side in sides}
    load = [os.getloadavg()[0]]
    for rep in range(args.reps):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for side in order:
            times[side] += batch(sides[side], args.target, args.calls)
    load.append(os.getloadavg()[0])
    rows: dict[str, object] = {"target": args.target, "calls": args.calls, "reps": args.reps, "load": load}
    for side, xs in times.items():
        rows[f"{side}_median_ms"] = round(1000 * median(xs), 1)
        rows[f"{side}_all_ms"] = [round(1000 * x, 1) for x in xs]
    if args.compare_to:
        rows["compare_to"] = str(args.compare_to)
        rows["now_over_other"] = round(median(times["now"]) / median(times["other"]), 3)
    report("command_cost", rows)


if __name__ == "__main__":
    main()
