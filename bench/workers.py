"""Workers: one riscv64 cell with --workers 1 against --workers N, and what one worker costs to start.

For each suite, the two settings run alternately (a whole `leapfrog run` each,
one suite on one target), `--reps` times; the figure is the cell's wall time
from results.json (start of the cell to its end: copying in, every pytest
process, reading back), with the run's own wall beside it.  Then, in one
started target, the start cost every worker pays again: the interpreter, `import
pytest` and the suite's heavy import, each timed `--reps` times.  The load
average is recorded before and after (other work on the machine skews both sides).

    python3 bench/workers.py [--reps 3] [--workers 2] [--suite numpy --suite torch] [--target debian-trixie-riscv64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import leapfrog, median, report
from harness.config import load_project
from harness.targets import make_target

#: What each worker imports before its first case, by suite (besides pytest).
HEAVY = {"numpy": "numpy", "torch": "torch", "onnxruntime": "onnxruntime", "sklearn": "sklearn"}


def cell_wall(out: Path) -> tuple[float, int, list[tuple[str, str]]]:
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    return float(cell["wall"]), int(cell.get("workers", 1)), [(c["name"], c["status"]) for c in cell["cases"]]


def start_costs(target_name: str, suites: list[str], reps: int) -> dict[str, float]:
    """Median seconds of a bare interpreter, `import pytest` and each suite's heavy import in the target."""
    target = make_target(load_project().targets[target_name], packages=[])
    target.start()
    try:
        py = target.config.python
        programs = {"python3 -c pass": "pass", "import pytest": "import pytest"}
        programs |= {f"import {HEAVY[s]}": f"import {HEAVY[s]}" for s in suites if s in HEAVY}
        out = {}
        for label, code in programs.items():
            times = []
            for _ in range(reps):
                done = target.run([py, "-c", code], timeout=600, env={"PYTHONDONTWRITEBYTECODE": "1"})
                times.append(done.wall)
            out[label] = round(median(times), 2)
        return out
    finally:
        target.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--suite", action="append", dest="suites")
    ap.add_argument("--target", default="debian-trixie-riscv64")
    args = ap.parse_args()
    suites = args.suites or ["numpy", "torch"]
    load_before = os.getloadavg()
    rows: dict[str, object] = {"target": args.target, "workers": args.workers, "reps": args.reps}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in suites:
            base = ["run", "-t", args.target, "-s", suite, "--no-history"]
            leapfrog(*base, "--out", f"{tmp}/{suite}-warm")  # the image and the page cache warm
            one: list[float] = []
            many: list[float] = []
            runs: list[float] = []
            same = True
            used = 0
            for i in range(args.reps):
                for setting, into in (("1", one), (args.workers, many)):
                    out = Path(tmp) / f"{suite}-{setting}-{i}"
                    start = time.monotonic()
                    leapfrog(*base, "--workers", setting, "--out", str(out))
                    runs.append(time.monotonic() - start)
                    wall, workers, cases = cell_wall(out)
                    into.append(wall)
                    if setting != "1":
                        used = workers
                        same = same and cases == cell_wall(Path(tmp) / f"{suite}-1-{i}")[2]
            rows[suite] = {
                "workers_used": used,
                "one_s": round(median(one), 2),
                "many_s": round(median(many), 2),
                "ratio": round(median(many) / median(one), 3),
                "one_all": [round(x, 2) for x in one],
                "many_all": [round(x, 2) for x in many],
                "same_cases_and_statuses": same,
            }
    rows["start_cost_s"] = start_costs(args.target, suites, args.reps)
    rows["load_before"] = [round(x, 2) for x in load_before]
    rows["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report("workers", rows)


if __name__ == "__main__":
    main()
