"""``--workers 2`` on the real riscv64 targets: the same cases, case for case, as one process.

On the chroot, the numpy suite through the CLI. Runtime: about 10 s (the numpy
cell takes 5 s with one worker and 4 s with two under qemu-user on a quiet
2-core machine; each run also starts the target).

On docker (the shared image imported into a live engine), tests/workers_body.py's
small suite: six short cases, one of which kills its own interpreter, run with
1 and 2 workers through the runner.  Runtime: 10.5-13.7 s (5 runs, load 1.1-2.1;
each run starts the container).
The ssh backend passes the same body in the unit tier (tests/unit/test_workers_ssh.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_project
from harness.images import CachedImage
from tests import workers_body
from tests.integration.conftest import ROOT, leapfrog

pytestmark = [pytest.mark.integration]


def numpy_cell(out: Path, workers: int) -> dict[str, Any]:
    done = leapfrog(
        "run", "-t", "debian-trixie-riscv64", "-s", "numpy", "--workers", str(workers), "-o", str(out), "--no-history"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["workers"] == workers
    return cell  # type: ignore[no-any-return]


@pytest.mark.chroot
def test_two_workers_give_the_numpy_cases_of_one(debian_image: CachedImage, tmp_path: Path) -> None:
    one = numpy_cell(tmp_path / "one", 1)
    two = numpy_cell(tmp_path / "two", 2)
    assert len(one["cases"]) > 100
    assert [(c["name"], c["status"]) for c in two["cases"]] == [(c["name"], c["status"]) for c in one["cases"]]
    assert two["verdict"] == one["verdict"]
    assert "worker 1/2, pass 1" in two["log"]
    assert "worker 2/2, pass 1" in two["log"]


@pytest.mark.docker
def test_two_workers_on_docker_give_the_cases_of_one_and_isolate_a_crash(
    debian_image: CachedImage,
    engine: Any,
    tmp_path: Path,
    write_suite: Any,
) -> None:
    cfg = load_project(ROOT).targets["debian-trixie-riscv64-docker"]
    suite_dir = write_suite(workers_body.NAME, workers_body.SUITE, toml=workers_body.TOML)
    seconds = workers_body.one_and_two_on(cfg, suite_dir, tmp_path)
    print(f"docker: 1 worker {seconds[1]:.1f} s, 2 workers {seconds[2]:.1f} s (each with the container's start)")
