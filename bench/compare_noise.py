"""How many "regressions" `leapfrog compare` reports between runs of the same commit.

Runs the same suite N times in a row on one target (recording each run in a
private history database), then compares every consecutive pair twice: with
today's rules (ratio, absolute floor, history spread) and with the ratio alone
(`--min-change 0 --min-median-change 0 --history 0 --min-history 1`, which is
how compare judged before).  Nothing changed between the runs, so every
regression counted is noise.  ``--retime-slow N`` passes the same option to
every run (cases slower than their history are timed again; harness/retime.py).

    python3 bench/compare_noise.py [--runs 10] [--suite platform] [--target native] [--retime-slow 2]
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, leapfrog, report

RATIO_ONLY = ["--min-change", "0", "--min-median-change", "0", "--history", "0", "--min-history", "1"]


def regressions(a: Path, b: Path, db: Path, extra: list[str]) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "compare", str(a), str(b), "--db", str(db), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"(\d+) regression\(s\)", done.stdout)
    return int(found.group(1)) if found else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--suite", default="platform")
    ap.add_argument("--target", default="native")
    ap.add_argument("--retime-slow", type=int, default=0, help="passed to every leapfrog run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.sqlite"
        outs = []
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            retime = ["--retime-slow", str(args.retime_slow)]
            leapfrog("run", "-t", args.target, "-s", args.suite, "--out", str(out), "--db", str(db), *retime)
            outs.append(out)
        pairs = list(itertools.pairwise(outs))
        new = [regressions(a, b, db, []) for a, b in pairs]
        old = [regressions(a, b, db, RATIO_ONLY) for a, b in pairs]
    report(
        "compare_noise",
        {
            "suite": args.suite,
            "target": args.target,
            "retime_slow": args.retime_slow,
            "pairs": len(pairs),
            "ratio_only": {"per_pair": old, "total": sum(old), "pairs_with_any": sum(1 for n in old if n)},
            "rules": {"per_pair": new, "total": sum(new), "pairs_with_any": sum(1 for n in new if n)},
        },
    )


if __name__ == "__main__":
    main()
