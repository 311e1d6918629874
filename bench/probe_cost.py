"""What the probe costs inside the target: the same trivial suite, run in one started chroot target.

Variants, interleaved in each repetition so machine noise hits them alike:

  plain            python3 -m pytest -q SUITE (what a user types)
  probe            the same with leapfrog's probe plugin loaded, writing nothing
  probe_results    the probe streaming one JSON line per case (LEAPFROG_RESULTS)
  probe_full       as leapfrog runs it: results, per-case timeouts (SIGALRM + watchdog),
                   facts, and the suite folder as working directory

Together with bench/overhead.py this splits leapfrog's overhead into the part
inside the target (this script) and the fixed cost of leapfrog's own process.

    python3 bench/probe_cost.py [--cases 300] [--reps 5] [--target debian-trixie-riscv64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, report, timed
from bench.overhead import make_suite
from harness import probe_ship
from harness.config import load_project
from harness.targets import make_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--target", default="debian-trixie-riscv64")
    args = ap.parse_args()
    target = make_target(load_project().targets[args.target], packages=[])
    target.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            suite = make_suite(Path(tmp), args.cases)
            target.put(suite, "/tmp/bench-suite")
            probe_ship.stage(Path(tmp) / "probe", facts=True)  # as a cell ships it, bytecode included
            target.put(Path(tmp) / "probe", "/tmp/bench-probe")
        py = target.config.python
        plain = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "/tmp/bench-suite"]
        probe = [py, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q", "-rN", "--color=no"]
        probe += ["--rootdir", "/tmp/bench-suite", "/tmp/bench-suite"]
        base = {"PYTHONPATH": "/tmp/bench-probe", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        results = {**base, "LEAPFROG_RESULTS": "/tmp/bench-results.jsonl"}
        full = {**results, "LEAPFROG_CASE_TIMEOUT": "300", "LEAPFROG_FACTS": ""}
        variants: dict[str, tuple[list[str], dict[str, str], str | None]] = {
            "plain": (plain, {}, None),
            "probe": (probe, base, None),
            "probe_results": (probe, results, None),
            "probe_full": (probe, full, "/tmp/bench-suite"),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.reps):
            for name, (argv, env, cwd) in variants.items():

                def once(argv: list[str] = argv, env: dict[str, str] = env, cwd: str | None = cwd) -> None:
                    done = target.run(argv, timeout=600, env=env, cwd=cwd)
                    if done.exit_code != 0:
                        raise SystemExit(f"{argv}: exit {done.exit_code}\n{done.stderr[-2000:]}")

                times[name].append(timed(once))
        rows: dict[str, object] = {"target": args.target, "cases": args.cases, "reps": args.reps}
        for name, xs in times.items():
            rows[f"{name}_s"] = round(median(xs), 2)
            rows[f"{name}_all"] = [round(x, 2) for x in xs]
        rows["probe_full_over_plain"] = round(median(times["probe_full"]) / median(times["plain"]), 3)
        report("probe_cost", rows)
    finally:
        target.stop()


if __name__ == "__main__":
    main()
