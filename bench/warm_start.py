"""Warm start: seconds from launching `leapfrog run` to the first case starting, image cached.

The suite's only case records `time.time()` as a metric the moment it starts; the
target shares the host clock (chroot, docker), so the difference is exact.

    python3 bench/warm_start.py [--reps 5] [--target debian-trixie-riscv64 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, median, report

CASE = "import time\n\ndef test_first(metrics):\n    metrics['t_start'] = time.time()\n"


def one(target: str, suites: Path, out: Path) -> tuple[float, float]:
    launched = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "--root",
            str(ROOT),
            "--suites-dir",
            str(suites),
            "run",
            "-t",
            target,
            "-s",
            "first",
            "--out",
            str(out),
            "--no-history",
        ],
        check=True,
        capture_output=True,
    )
    total = time.time() - launched
    data = json.loads((out / "results.json").read_text())
    t_start = data["cells"][0]["cases"][0]["metrics"]["t_start"]
    return t_start - launched, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--target", action="append", default=[])
    args = ap.parse_args()
    targets = args.target or ["debian-trixie-riscv64"]
    with tempfile.TemporaryDirectory() as tmp:
        suites = Path(tmp) / "suites"
        (suites / "first").mkdir(parents=True)
        (suites / "first" / "suite.toml").write_text('description = "one case"\n')
        (suites / "first" / "test_first.py").write_text(CASE)
        rows: dict[str, object] = {"reps": args.reps}
        for target in targets:
            one(target, suites, Path(tmp) / "warmup")  # make sure the image is cached
            firsts, totals = [], []
            for i in range(args.reps):
                first, total = one(target, suites, Path(tmp) / f"o{i}")
                firsts.append(first)
                totals.append(total)
            rows[f"{target}_first_case_s"] = round(median(firsts), 2)
            rows[f"{target}_whole_run_s"] = round(median(totals), 2)
            rows[f"{target}_first_case_all"] = [round(x, 2) for x in firsts]
        report("warm_start", rows)


if __name__ == "__main__":
    main()
