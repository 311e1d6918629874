"""Parallel matrix: two riscv64 targets with --jobs 2 vs --jobs 1 (same suite, same image).

python3 bench/parallel.py [--reps 3] [--suite platform]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import leapfrog, median, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--suite", default="platform")
    args = ap.parse_args()
    targets = "debian-trixie-riscv64,debian-trixie-riscv64-rvv"
    j1, j2 = [], []
    with tempfile.TemporaryDirectory() as tmp:
        leapfrog("run", "-t", targets, "-s", args.suite, "--out", f"{tmp}/warm", "--no-history")
        for i in range(args.reps):
            j1.append(
                leapfrog("run", "-t", targets, "-s", args.suite, "-j", "1", "--out", f"{tmp}/a{i}", "--no-history")
            )
            j2.append(
                leapfrog("run", "-t", targets, "-s", args.suite, "-j", "2", "--out", f"{tmp}/b{i}", "--no-history")
            )
    report(
        "parallel",
        {
            "suite": args.suite,
            "targets": targets,
            "reps": args.reps,
            "jobs1_s": round(median(j1), 2),
            "jobs2_s": round(median(j2), 2),
            "ratio_jobs2_over_jobs1": round(median(j2) / median(j1), 3),
            "jobs1_all": [round(x, 2) for x in j1],
            "jobs2_all": [round(x, 2) for x in j2],
        },
    )


if __name__ == "__main__":
    main()
