"""Overhead: a suite of N trivial cases run by `leapfrog run` vs the same suite run bare.

Bare means what a user would type without leapfrog:
  chroot: `chroot ROOTFS python3 -m pytest -q -p no:cacheprovider SUITE` (qemu-user through binfmt), run in
          a chroot target started once for the whole bench (its own overlay: the cached image is not written)
  docker: `docker run --rm --platform linux/riscv64 IMAGE python3 -m pytest ...` (same image)
Both sides alternate in one process so machine noise hits them alike; medians are reported.
`--compare-to DIR` adds a third side in the same alternation: the leapfrog of another checkout (a git
worktree of an earlier commit), for before/after figures taken in one run.
Leapfrog's side runs with its modules byte-compiled first (each checkout's harness/, .pyc files beside the
sources, as a pip-installed leapfrog has them): with PYTHONDONTWRITEBYTECODE set, a checkout would otherwise
compile its ~65 modules at every start (~70 ms) and measure a cost no user pays.

    python3 bench/overhead.py [--cases 300] [--reps 3] [--docker] [--compare-to DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import compile_harness, leapfrog, median, report, timed
from harness.config import load_project
from harness.targets import make_target


def make_suite(folder: Path, n: int) -> Path:
    suite = folder / "trivial"
    suite.mkdir(parents=True)
    (suite / "suite.toml").write_text('description = "N trivial cases"\n')
    body = f"import pytest\n\n@pytest.mark.parametrize('i', range({n}))\ndef test_trivial(i):\n    assert i >= 0\n"
    (suite / "test_trivial.py").write_text(body)
    return suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--docker", action="store_true", help="also measure the docker target")
    ap.add_argument("--compare-to", type=Path, help="another leapfrog checkout, measured alongside")
    args = ap.parse_args()
    compile_harness()
    if args.compare_to:
        compile_harness(args.compare_to)
    target = make_target(load_project().targets["debian-trixie-riscv64"], packages=[])
    target.start()
    with tempfile.TemporaryDirectory() as tmp:
        suites = Path(tmp) / "suites"
        suite = make_suite(suites, args.cases)
        target.put(suite, "/tmp/leapfrog-bench-trivial")
        bare_argv = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/tmp/leapfrog-bench-trivial"]

        def bare_chroot() -> None:
            done = target.run(bare_argv, timeout=600)
            if done.exit_code != 0:
                raise SystemExit(f"bare pytest failed ({done.exit_code}):\n{done.stderr[-2000:]}")

        def other() -> float:
            start = time.monotonic()
            cli = [sys.executable, "-m", "harness.cli", "--root", str(args.compare_to), "--suites-dir", str(suites)]
            subprocess.run(
                [*cli, "run", "-t", "debian-trixie-riscv64", "-s", "trivial", "--out", f"{tmp}/other", "--no-history"],
                cwd=args.compare_to,
                check=True,
                capture_output=True,
            )
            return time.monotonic() - start

        bare, lf, before = [], [], []
        for _ in range(args.reps):
            bare.append(timed(bare_chroot))
            if args.compare_to:
                before.append(other())
            lf.append(
                leapfrog(
                    "--suites-dir",
                    str(suites),
                    "run",
                    "-t",
                    "debian-trixie-riscv64",
                    "-s",
                    "trivial",
                    "--out",
                    str(Path(tmp) / "out"),
                    "--no-history",
                )
            )
        target.stop()
        rows: dict[str, object] = {
            "cases": args.cases,
            "reps": args.reps,
            "chroot_bare_s": round(median(bare), 2),
            "chroot_leapfrog_s": round(median(lf), 2),
            "chroot_ratio": round(median(lf) / median(bare), 3),
            "chroot_bare_all": [round(x, 2) for x in bare],
            "chroot_leapfrog_all": [round(x, 2) for x in lf],
        }
        if before:
            rows.update(
                {
                    "compare_to": str(args.compare_to),
                    "chroot_other_s": round(median(before), 2),
                    "chroot_other_ratio": round(median(before) / median(bare), 3),
                    "chroot_other_all": [round(x, 2) for x in before],
                }
            )
        if args.docker:
            cfg = load_project().targets["debian-trixie-riscv64-docker"]
            tag = make_target(cfg).prepare_image()
            dbare, dlf = [], []

            def bare_docker() -> None:
                subprocess.run(
                    [
                        "docker",
                        "run",
                        "--rm",
                        "--network",
                        "none",
                        "--platform",
                        "linux/riscv64",
                        "-v",
                        f"{suite}:/suite:ro",
                        tag,
                        "python3",
                        "-m",
                        "pytest",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        "/suite",
                    ],
                    check=True,
                    capture_output=True,
                )

            for _ in range(args.reps):
                dbare.append(timed(bare_docker))
                dlf.append(
                    leapfrog(
                        "--suites-dir",
                        str(suites),
                        "run",
                        "-t",
                        "debian-trixie-riscv64-docker",
                        "-s",
                        "trivial",
                        "--out",
                        str(Path(tmp) / "dout"),
                        "--no-history",
                    )
                )
            rows.update(
                {
                    "docker_bare_s": round(median(dbare), 2),
                    "docker_leapfrog_s": round(median(dlf), 2),
                    "docker_ratio": round(median(dlf) / median(dbare), 3),
                }
            )
        report("overhead", rows)


if __name__ == "__main__":
    main()
