"""``--workers 2`` on the real riscv64 chroot: the numpy suite gives the same cases, case for case, as one process.

Runtime: about 10 s (the numpy cell takes 5 s with one worker and 4 s with two
under qemu-user on a quiet 2-core machine; each run also starts the target).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.images import CachedImage
from tests.integration.conftest import leapfrog

pytestmark = [pytest.mark.integration, pytest.mark.chroot]


def numpy_cell(out: Path, workers: int) -> dict[str, Any]:
    done = leapfrog(
        "run", "-t", "debian-trixie-riscv64", "-s", "numpy", "--workers", str(workers), "-o", str(out), "--no-history"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["workers"] == workers
    return cell  # type: ignore[no-any-return]


def test_two_workers_give_the_numpy_cases_of_one(debian_image: CachedImage, tmp_path: Path) -> None:
    one = numpy_cell(tmp_path / "one", 1)
    two = numpy_cell(tmp_path / "two", 2)
    assert len(one["cases"]) > 100
    assert [(c["name"], c["status"]) for c in two["cases"]] == [(c["name"], c["status"]) for c in one["cases"]]
    assert two["verdict"] == one["verdict"]
    assert "worker 1/2, pass 1" in two["log"]
    assert "worker 2/2, pass 1" in two["log"]
