"""``--workers`` on a backend: one cell run with 1 and with 2 workers, asserted the same way on every backend.

A test module gives :func:`one_and_two` a function that runs the suite of
:data:`SUITE` (written by the ``write_suite`` fixture) on its target with a
number of workers.  The unit tier runs it on ssh against a loopback SSH server
(tests/unit/test_workers_ssh.py); the integration tier on docker with the
shared riscv64 image (tests/integration/test_workers.py).  The chroot target
has its own test on the numpy suite.

The suite's six cases each sleep a little and record the process that ran
them (its pid and ``LEAPFROG_WORKER``) and whether every worker of the cell had
loaded the suite while it ran; one kills its own interpreter with SIGKILL.
Asserted: the same case ids and statuses with 1 and 2 workers; two workers
really ran, in two processes at once; the crash is that case's alone (its
message names SIGKILL), and the cases dealt to its worker after it still run,
in a new process of that worker, as with one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.config import TargetConfig, load_suite
from harness.model import CellResult, Status
from harness.plan import make_plan
from harness.probe.leapfrog_session import worker_lanes
from harness.runner import Runner, RunOptions

NAME = "workers"

#: The suite: six cases; ``test_case[3]`` dies of SIGKILL.
SUITE = {
    "test_w.py": """
import os
import signal
import time

import pytest

WORKER = os.environ.get("LEAPFROG_WORKER", "")  # "K/N" under N workers
HERE = os.path.dirname(os.environ["LEAPFROG_RESULTS"])  # the cell's folder, shared by its workers


def _loaded(k, n):
    return os.path.join(HERE, "loaded-%d-of-%d" % (k, n))


if WORKER:
    open(_loaded(*map(int, WORKER.split("/"))), "w").close()


GAVE_UP = []


def all_loaded():
    \"\"\"Whether every worker of the cell has loaded this module while this one runs (waiting 30 s, once).\"\"\"
    if not WORKER:
        return True
    n = int(WORKER.split("/")[1])
    deadline = time.monotonic() + (0 if GAVE_UP else 30)
    while not all(os.path.exists(_loaded(k, n)) for k in range(n)):
        if time.monotonic() >= deadline:
            GAVE_UP.append(True)
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("n", range(6))
def test_case(n, metrics):
    metrics["pid"] = os.getpid()
    metrics["worker"] = WORKER
    metrics["all_loaded"] = all_loaded()
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
"""
}
TOML = 'description = "workers on a backend"\ncase_timeout = 120\ntimeout = 600\n'
CRASHING = "test_w.py::test_case[3]"
NAMES = [f"test_w.py::test_case[{n}]" for n in range(6)]

#: Runs the suite with that many workers on the backend; returns its one cell.
RunCell = Callable[[int], CellResult]


def one_and_two_on(cfg: TargetConfig, suite_dir: Path, out: Path) -> dict[int, float]:
    """:func:`one_and_two` for the suite written at ``suite_dir``, run on ``cfg`` by a Runner into ``out``."""
    suite = load_suite(suite_dir)

    def run_cell(workers: int) -> CellResult:
        run = Runner(make_plan([cfg], [suite]), RunOptions(out=out / f"w{workers}", workers=workers)).execute()
        (cell,) = run.cells
        return cell

    return one_and_two(run_cell)


def one_and_two(run_cell: RunCell) -> dict[int, float]:
    """Run the suite with 1 and with 2 workers, assert what ``--workers`` promises; return each run's seconds."""
    seconds: dict[int, float] = {}
    cells: dict[int, CellResult] = {}
    for workers in (1, 2):
        begin = time.monotonic()
        cells[workers] = run_cell(workers)
        seconds[workers] = time.monotonic() - begin
        assert cells[workers].workers == workers, cells[workers].message
    one, two = cells[1], cells[2]
    ids = [(c.name, c.status) for c in one.cases]
    assert ids == [(n, Status.CRASHED if n == CRASHING else Status.PASSED) for n in NAMES], (one.message, one.log)
    assert [(c.name, c.status) for c in two.cases] == ids, (two.message, two.log)
    assert two.verdict == one.verdict
    for cell in (one, two):
        (died,) = [c for c in cell.cases if c.status is Status.CRASHED]
        assert died.message == "the Python process died during this case (SIGKILL)"
    two_ran_at_once(two)
    the_crash_stays_in_its_share(two)
    return seconds


def two_ran_at_once(cell: CellResult) -> None:
    """Two workers, each its own processes, running at the same time.

    Each case waits until every worker has loaded the suite: a worker that saw
    the other's mark while it ran overlapped it in time.  (Not the cases' own
    timestamps: they are short next to the jitter of pytest's start under
    emulation on a loaded machine.)
    """
    lanes: dict[str, set[int]] = {}
    for c in cell.cases:
        if c.status is Status.PASSED:
            assert c.metrics["all_loaded"] is True, f"{c.name} ran while the other worker had not started"
            lanes.setdefault(str(c.metrics["worker"]), set()).add(int(c.metrics["pid"]))
    assert sorted(lanes) == ["0/2", "1/2"], lanes
    assert not lanes["0/2"] & lanes["1/2"], lanes


def the_crash_stays_in_its_share(cell: CellResult) -> None:
    """The crashing case's worker ran its share before the crash in one process and after it in another;
    the other worker's share ran in one process, untouched."""
    share = dict(zip(NAMES, worker_lanes(NAMES, 2, {}), strict=True))
    mine = share[CRASHING]
    runs = {c.name: c.metrics for c in cell.cases if c.status is Status.PASSED}
    for name, lane in share.items():
        if name != CRASHING:
            assert runs[name]["worker"] == f"{lane}/2", (name, runs[name])
    before = {runs[n]["pid"] for n in NAMES[: NAMES.index(CRASHING)] if share[n] == mine}
    after = {runs[n]["pid"] for n in NAMES[NAMES.index(CRASHING) + 1 :] if share[n] == mine}
    others = {runs[n]["pid"] for n in NAMES if share[n] != mine}
    assert len(before) == 1, before  # one process before the crash...
    assert len(after) == 1, after  # ...and one after it (the worker's pass 2)
    assert before != after
    assert len(others) == 1, others
    assert f"worker {mine + 1}/2, pass 2" in cell.log
    assert f"worker {2 - mine}/2, pass 2" not in cell.log
