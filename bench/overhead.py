"""Overhead: a suite of N trivial cases run by `leapfrog run` vs the same suite run bare.

Bare means what a user would type without leapfrog:
  chroot: `chroot ROOTFS python3 -m pytest -q -p no:cacheprovider SUITE` (qemu-user through binfmt)
  docker: `docker run --rm --platform linux/riscv64 IMAGE python3 -m pytest ...` (same image)
Both sides alternate in one process so machine noise hits them alike; medians are reported.

    python3 bench/overhead.py [--cases 300] [--reps 3] [--docker]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import leapfrog, median, report, timed
from harness.config import ImageSpec
from harness.images import ensure_image


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
    args = ap.parse_args()
    rootfs = ensure_image(ImageSpec(), []).rootfs
    with tempfile.TemporaryDirectory() as tmp:
        suites = Path(tmp) / "suites"
        suite = make_suite(suites, args.cases)
        inside = rootfs / "tmp" / "leapfrog-bench-trivial"
        shutil.rmtree(inside, ignore_errors=True)
        shutil.copytree(suite, inside)

        def bare_chroot() -> None:
            subprocess.run(
                [
                    "chroot",
                    str(rootfs),
                    "python3",
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "/tmp/leapfrog-bench-trivial",
                ],
                check=True,
                capture_output=True,
            )

        bare, lf = [], []
        for _ in range(args.reps):
            bare.append(timed(bare_chroot))
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
        shutil.rmtree(inside, ignore_errors=True)
        rows: dict[str, object] = {
            "cases": args.cases,
            "reps": args.reps,
            "chroot_bare_s": round(median(bare), 2),
            "chroot_leapfrog_s": round(median(lf), 2),
            "chroot_ratio": round(median(lf) / median(bare), 3),
            "chroot_bare_all": [round(x, 2) for x in bare],
            "chroot_leapfrog_all": [round(x, 2) for x in lf],
        }
        if args.docker:
            from harness.config import load_project
            from harness.targets import make_target

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
