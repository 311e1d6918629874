"""The probe plugin, run for real by pytest in a subprocess on the host."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from harness.config import TargetConfig, load_suite
from harness.known_issues import KnownIssue
from harness.known_issues import apply as apply_known_issues
from harness.known_issues import load as load_known_issues
from harness.model import CaseResult, CellResult, Run, Status, verdict_for
from harness.plan import make_plan
from harness.probe import PROBE_DIR
from harness.probe_lines import parse_probe_lines
from harness.runner import Runner, RunOptions

SUITE = """
import os, sys, time, pytest

def test_pass(metrics):
    metrics["answer"] = 42
    metrics["ratio"] = 0.5
    metrics["nan"] = float("nan")
    metrics["obj"] = object
    print("out <b>")

def test_fail():
    assert 1 + 1 == 3, "math is broken"

@pytest.mark.skip(reason="not here")
def test_skip(): pass

@pytest.mark.xfail(reason="known bug #1")
def test_xfail(): assert False

@pytest.mark.xfail(reason="fixed?")
def test_xpass(): pass

@pytest.fixture
def broken(): raise RuntimeError("setup broke")

def test_setup_error(broken): pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(bad_teardown): pass

def test_slow(): time.sleep(5)

def test_big_output(): print("x" * 200_000)
"""


def run_probe(tmp_path: Path, body: str, **env: str) -> list[dict[str, object]]:
    (tmp_path / "test_s.py").write_text(body)
    results = tmp_path / "results.jsonl"
    full = {
        **os.environ,
        "PYTHONPATH": str(PROBE_DIR),
        "LEAPFROG_RESULTS": str(results),
        "LEAPFROG_OUTPUT_LIMIT": "1000",
        **env,
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), str(tmp_path)],
        env=full, cwd=tmp_path, capture_output=True, check=False, timeout=60,
    )
    return [json.loads(line) for line in results.read_text().splitlines()]


def test_outcomes_metrics_and_bounds(tmp_path: Path) -> None:
    records = run_probe(tmp_path, SUITE, LEAPFROG_CASE_TIMEOUT="1")
    cases = {r["name"].split("::")[1]: r for r in records if r["event"] == "case"}  # type: ignore[union-attr]
    status = {k: v["status"] for k, v in cases.items()}
    assert status == {
        "test_pass": "passed", "test_fail": "failed", "test_skip": "skipped", "test_xfail": "xfailed",
        "test_xpass": "xpassed", "test_setup_error": "error", "test_teardown_error": "error",
        "test_slow": "timeout", "test_big_output": "passed",
    }
    assert cases["test_pass"]["metrics"] == {"answer": 42, "ratio": 0.5, "nan": "nan", "obj": "<class 'object'>"}
    assert "out <b>" in str(cases["test_pass"]["output"])
    assert str(cases["test_fail"]["message"]).startswith("AssertionError: math is broken")
    assert cases["test_skip"]["message"] == "Skipped: not here"
    assert cases["test_xfail"]["message"] == "known bug #1"
    assert "setup broke" in str(cases["test_setup_error"]["message"])
    assert "teardown broke" in str(cases["test_teardown_error"]["message"])
    assert float(cases["test_slow"]["duration"]) < 4  # type: ignore[arg-type]
    big = str(cases["test_big_output"]["output"])
    assert "truncated by leapfrog" in big
    assert len(big) < 2000
    (collected,) = [r["names"] for r in records if r["event"] == "collected"]
    assert len(collected) == 9  # type: ignore[arg-type]
    assert records[-1] == {"event": "end", "exitstatus": 1}


def test_done_file_deselects(tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    done.write_text("test_s.py::test_a\n")
    records = run_probe(tmp_path, "def test_a(): pass\ndef test_b(): pass\n", LEAPFROG_DONE=str(done))
    assert [r["name"] for r in records if r["event"] == "case"] == ["test_s.py::test_b"]


def test_crash_leaves_start_without_case(tmp_path: Path) -> None:
    records = run_probe(tmp_path, "import os\ndef test_a(): pass\ndef test_b(): os._exit(9)\ndef test_c(): pass\n")
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert [c.name for c in out.cases] == ["test_s.py::test_a"]
    assert out.started == ["test_s.py::test_b"]
    assert not out.ended


def test_collection_error_is_reported(tmp_path: Path) -> None:
    records = run_probe(tmp_path, "import no_such_module_here\ndef test_a(): pass\n")
    cases = [r for r in records if r["event"] == "case"]
    assert len(cases) == 1
    assert cases[0]["status"] == "error"
    assert "no_such_module_here" in str(cases[0]["message"])


def test_parse_is_defensive() -> None:
    lines = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"event": "case", "name": "a", "status": "bogus", "duration": "x", "metrics": {"k": [1]}}),
        json.dumps({"event": "case", "name": "b", "status": "passed", "message": "m" * 100_000}),
        "x" * (2 << 20),
    ]
    out = parse_probe_lines(lines)
    a, b = out.cases
    assert a.status.value == "error"
    assert a.duration == 0.0
    assert a.metrics == {"k": "[1]"}
    assert len(b.message) < 20_000
    assert "truncated" in b.message


def test_hard_timeout_ends_a_case_stuck_in_native_code(tmp_path: Path) -> None:
    body = """
import signal, time
def test_stuck():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # the soft timeout cannot fire
    time.sleep(60)
def test_after():
    pass
"""
    start = time.monotonic()
    records = run_probe(tmp_path, body, LEAPFROG_CASE_TIMEOUT="1", LEAPFROG_HARD_GRACE="1")
    assert time.monotonic() - start < 30
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert out.cases == []
    assert out.started == ["test_s.py::test_stuck"]  # the runner marks it timeout and resumes


def test_watchdog_thread_never_takes_a_signal_a_case_waits_for(tmp_path: Path) -> None:
    """A case blocks SIGUSR2 and sigwaits for it: the probe's own thread must not catch it."""
    body = """
import os, signal, threading
def test_sigwait():
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert signal.sigwait({signal.SIGUSR2}) == signal.SIGUSR2
        os.kill(os.getpid(), signal.SIGUSR2)  # blocked here and not waited for: stays pending
        assert signal.SIGUSR2 in signal.sigpending()
        assert signal.sigtimedwait({signal.SIGUSR2}, 5).si_signo == signal.SIGUSR2
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
"""
    records = run_probe(tmp_path, body, LEAPFROG_CASE_TIMEOUT="30")
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert [(c.name, c.status.value) for c in out.cases] == [("test_s.py::test_sigwait", "passed")]


# ------------------------------------------------------------------ child cases


CHILDREN = """
import pytest

def test_parent(child_cases, metrics):
    metrics["own"] = 1
    child_cases.append({"name": "pkg/tests/test_a.py::test_ok", "status": "passed", "duration": 0.5, "message": ""})
    child_cases.append(
        {"name": "pkg/tests/test_a.py::test_bad", "status": "failed", "duration": float("nan"), "message": "m" * 9000}
    )
    child_cases.append({"name": "pkg/tests/test_a.py::test_odd", "status": "exploded", "duration": True})
    child_cases.append({"name": "pkg/tests/test_a.py::test_ok", "status": "passed"})  # twice: dropped
    child_cases.append({"name": "   ", "status": "passed"})  # no name: dropped
    child_cases.append("not a dict")  # dropped
    child_cases.append({"name": "x" * 5000, "status": "skipped", "message": "Skipped: long"})
    child_cases.append({"name": "pkg/t.py::test_two\\nlines", "status": "xfailed", "message": "known"})
    pytest.fail("the parent fails after recording its children")

def test_next():
    pass
"""


def test_child_cases_are_recorded_before_their_case_bounded_and_validated(tmp_path: Path) -> None:
    records = run_probe(tmp_path, CHILDREN)
    out = parse_probe_lines([json.dumps(r) for r in records])
    names = [c.name for c in out.cases]
    parent = "test_s.py::test_parent"
    assert names[-2:] == [parent, "test_s.py::test_next"]
    children = {c.name: c for c in out.cases[:-2]}
    assert all(n.startswith(parent + "::") for n in children)
    ok, bad, odd = (children[f"{parent}::pkg/tests/test_a.py::{t}"] for t in ("test_ok", "test_bad", "test_odd"))
    assert (ok.status.value, ok.duration) == ("passed", 0.5)
    assert (bad.status.value, bad.duration) == ("failed", 0.0)  # NaN seconds dropped
    assert "truncated by leapfrog" in bad.message
    assert len(bad.message) < 4300
    assert (odd.status.value, odd.duration) == ("error", 0.0)  # unknown status; a bool is no duration
    assert children[f"{parent}::pkg/t.py::test_two lines"].status.value == "xfailed"
    (long,) = [n for n in children if "xxx" in n]
    assert len(long) <= 900
    assert long.rsplit("#", 1)[1].isalnum()
    assert len(children) == 5
    own = out.cases[-2]
    assert own.status.value == "failed"
    assert own.metrics == {"own": 1, "child_cases_dropped": 3}


def test_child_cases_past_the_cap_are_counted_not_recorded(tmp_path: Path) -> None:
    body = """
def test_many(child_cases):
    child_cases.extend({"name": f"t{i}", "status": "passed"} for i in range(7))
"""
    records = run_probe(tmp_path, body, LEAPFROG_MAX_CHILD_CASES="3")
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert [c.name for c in out.cases] == [
        "test_s.py::test_many::t0", "test_s.py::test_many::t1", "test_s.py::test_many::t2", "test_s.py::test_many",
    ]
    assert out.cases[-1].metrics == {"child_cases_dropped": 4}


# ------------------------------------------------------------------ the upstream suite's child cases

UPSTREAM = Path(__file__).resolve().parents[2] / "suites" / "upstream"

FAKE_TESTS = """
import time, pytest

def test_pass(): pass

def test_fail(): assert 1 == 2, "upstream bug"

@pytest.mark.skip(reason="not on this platform")
def test_skip(): pass

@pytest.mark.xfail(reason="known upstream")
def test_xfail(): assert False

@pytest.mark.xfail(reason="may pass")
def test_xpass(): pass

@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpass_strict(): pass

@pytest.fixture
def broken(): raise RuntimeError("setup broke")

def test_setup_error(broken): pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(bad_teardown): pass

@pytest.mark.parametrize("n", [1, 2])
def test_param(n): pass
"""


def run_upstream(tmp_path: Path, tests: dict[str, str], **settings: object) -> list[CaseResult]:
    """The real upstream suite under the probe, its one selection ``--pyargs fakepkg``.

    ``tests`` are files under fakepkg/tests (a package), or under fakepkg/ when their name has a slash.
    """
    pkg = tmp_path / "site" / "fakepkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tests" / "__init__.py").write_text("")
    for name, body in tests.items():
        path = pkg / name if "/" in name else pkg / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    results = tmp_path / "results.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROBE_DIR), str(tmp_path / "site")]),
        "LEAPFROG_RESULTS": str(results),
        "LEAPFROG_SETTINGS": json.dumps({"select_fake": "--pyargs fakepkg", **settings}),
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q",
         "--basetemp", str(tmp_path / "basetemp"), "--rootdir", str(UPSTREAM), str(UPSTREAM)],
        env=env, cwd=tmp_path, capture_output=True, check=False, timeout=120,
    )
    return parse_probe_lines(results.read_text().splitlines()).cases


def counts_and_children(cases: list[CaseResult]) -> tuple[CaseResult, dict[str, CaseResult]]:
    """The selection's case and its child cases by upstream test name; they all come before it."""
    *children, parent = cases
    assert parent.name == "test_upstream.py::test_upstream[fake]"
    prefix = parent.name + "::"
    assert all(c.name.startswith(prefix) for c in children)
    return parent, {c.name.removeprefix(prefix): c for c in children}


def assert_totals_are_the_counts(parent: CaseResult, children: dict[str, CaseResult]) -> None:
    for status in ("passed", "failed", "error", "skipped", "xfailed", "timeout"):
        assert parent.metrics[status] == sum(1 for c in children.values() if c.status.value == status), status
    assert not any(c.status.value in ("xpassed", "crashed") for c in children.values())


def test_upstream_tests_are_child_cases_whose_totals_are_the_counts(tmp_path: Path) -> None:
    files = {
        "test_a.py": FAKE_TESTS,
        "test_broken.py": "import fakepkg.not_a_module_of_it\n",  # the package itself is broken: an error
        "test_needs_dep.py": "import a_test_dependency_not_installed\n",  # the target lacks it: skipped
        "core/__init__.py": "",
        "core/tests/test_no_init.py": "def test_c(): pass\n",  # a tests folder without __init__.py, as numpy's
    }
    parent, children = counts_and_children(run_upstream(tmp_path, files))
    a = "fakepkg/tests/test_a.py::"
    assert {n: c.status.value for n, c in children.items()} == {
        f"{a}test_pass": "passed", f"{a}test_fail": "failed", f"{a}test_skip": "skipped",
        f"{a}test_xfail": "xfailed", f"{a}test_xpass": "passed", f"{a}test_xpass_strict": "failed",
        f"{a}test_setup_error": "error", f"{a}test_teardown_error": "error",
        f"{a}test_param[1]": "passed", f"{a}test_param[2]": "passed",
        "fakepkg/tests/test_broken.py": "error", "fakepkg/tests/test_needs_dep.py": "skipped",
        "fakepkg/core/tests/test_no_init.py::test_c": "passed",
    }
    assert_totals_are_the_counts(parent, children)
    m = parent.metrics
    assert (m["collected"], m["not_run"], m["xpass_not_strict"], m["uncollected_modules"]) == (11, 0, 1, 1)
    assert children[f"{a}test_skip"].message == "Skipped: not on this platform"
    assert children[f"{a}test_xfail"].message == "known upstream"
    assert children[f"{a}test_xpass"].message.startswith("XPASS: passed although marked xfail (not strict): may pass")
    assert children[f"{a}test_fail"].message.startswith("AssertionError: upstream bug")
    assert "teardown broke" in children[f"{a}test_teardown_error"].message
    assert "not_a_module_of_it" in children["fakepkg/tests/test_broken.py"].message
    assert "a_test_dependency_not_installed" in children["fakepkg/tests/test_needs_dep.py"].message
    assert children[f"{a}test_pass"].duration > 0
    assert parent.status.value == "failed"
    assert f"{a}test_fail [failed]: AssertionError: upstream bug" in parent.message


def test_upstream_tests_left_unrun_by_the_budget_are_counted_not_cases(tmp_path: Path) -> None:
    body = "import time\nimport pytest\n@pytest.mark.parametrize('i', range(8))\ndef test_slow(i): time.sleep(0.3)\n"
    parent, children = counts_and_children(run_upstream(tmp_path, {"test_slow.py": body}, budget_s=0.5))
    m = parent.metrics
    assert m["collected"] == 8
    assert 0 < m["not_run"] < 8
    assert len(children) == m["passed"] == 8 - m["not_run"]
    assert m["completed"] is False
    assert parent.status.value == "passed"


def test_an_upstream_test_still_running_when_the_selection_is_killed_is_a_timeout(tmp_path: Path) -> None:
    body = "import time\ndef test_quick(): pass\ndef test_hangs(): time.sleep(120)\ndef test_never(): pass\n"
    parent, children = counts_and_children(run_upstream(tmp_path, {"test_h.py": body}, budget_s=1, grace_s=4))
    h = "fakepkg/tests/test_h.py::"
    assert {n: c.status.value for n, c in children.items()} == {f"{h}test_quick": "passed", f"{h}test_hangs": "timeout"}
    assert "still running after its 1 s budget plus 4 s grace" in children[f"{h}test_hangs"].message
    assert parent.status.value == "failed"
    assert_totals_are_the_counts(parent, children)


def test_reruns_run_the_case_of_failed_child_cases(  # type: ignore[no-untyped-def]
    tmp_path: Path, write_suite, native_config: TargetConfig
) -> None:
    """A failed child case is not a pytest node: its case runs again, and only children that failed can be flaky."""
    body = f"""
from pathlib import Path
def test_selection(child_cases):
    marker = Path({str(tmp_path / "seen")!r})
    first = not marker.exists()
    marker.write_text("x")
    child_cases.append({{"name": "t_steady", "status": "passed"}})
    child_cases.append({{"name": "t_flaky", "status": "failed" if first else "passed", "message": "boom"}})
    child_cases.append({{"name": "t_broken", "status": "failed", "message": "always"}})
    assert False, "an upstream test failed"
"""
    plan = make_plan([native_config], [load_suite(write_suite("children", {"test_c.py": body}))])
    run = Runner(plan, RunOptions(out=tmp_path / "out", reruns=1)).execute()
    (cell,) = run.cells
    got = {c.name.removeprefix("test_c.py::test_selection"): c for c in cell.cases}
    assert {n: (c.status.value, c.flaky) for n, c in got.items()} == {
        "::t_steady": ("passed", False),
        "::t_flaky": ("passed", True),
        "::t_broken": ("failed", False),
        "": ("failed", False),
    }
    assert "boom" in got["::t_flaky"].message


SELECTION = "test_upstream.py::test_upstream[numpy_fft]"
IDENTITY = f"{SELECTION}::numpy/fft/tests/test_pocketfft.py::TestFFT1D::test_identity"
ROUNDTRIP = f"{SELECTION}::numpy/fft/tests/test_pocketfft.py::TestFFT1D::test_roundtrip[float32]"


def upstream_run(run_id: str, statuses: dict[str, Status]) -> Run:
    cases = [CaseResult(name, status, 0.01) for name, status in statuses.items()]
    return Run(run_id=run_id, started=run_id, cells=[CellResult("rv", "upstream", verdict_for(cases), cases)])


def test_known_issues_and_compare_work_per_upstream_test(tmp_path: Path) -> None:
    """fnmatch patterns and `leapfrog compare` on child case names (fnmatch reads ``[numpy_fft]`` as a set)."""
    pattern = "*::numpy/fft/tests/test_pocketfft.py::TestFFT1D::test_roundtrip*"
    issue = load_known_issues_text(tmp_path, f'case = "{pattern}"')
    assert issue.matches("rv", "upstream", ROUNDTRIP, None)
    assert not issue.matches("rv", "upstream", IDENTITY, None)
    escaped = load_known_issues_text(tmp_path, 'case = "test_upstream.py::test_upstream[[]numpy_fft]::*identity"')
    assert escaped.matches("rv", "upstream", IDENTITY, None)
    assert not dataclasses.replace(escaped, case=f"{SELECTION}::*").matches("rv", "upstream", IDENTITY, None)

    before = upstream_run("A", {SELECTION: Status.PASSED, IDENTITY: Status.PASSED, ROUNDTRIP: Status.PASSED})
    after = upstream_run("B", {SELECTION: Status.FAILED, IDENTITY: Status.FAILED, ROUNDTRIP: Status.FAILED})
    assert apply_known_issues([issue], after.cells[0], None) == 1
    for r in (before, after):
        (tmp_path / r.run_id).mkdir()
        (tmp_path / r.run_id / "results.json").write_text(json.dumps(r.to_dict()))
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "A"), str(tmp_path / "B")])
    assert res.exit_code == 1
    print(res.output)
    lines = [line for line in res.output.splitlines() if "new-failure" in line]
    assert any("test_identity" in line for line in lines)
    assert not any("test_roundtrip" in line for line in lines)  # a known issue is no new failure


def load_known_issues_text(tmp_path: Path, case_line: str) -> KnownIssue:
    path = tmp_path / "known-issues.toml"
    path.write_text(f'[[issue]]\n{case_line}\nsuite = "upstream"\nreason = "r"\n')
    (issue,) = load_known_issues(path)
    return issue


def test_the_probe_loads_only_what_the_pass_uses(tmp_path: Path) -> None:
    """A first pass of one process imports neither hashlib (libcrypto: some 25 ms under qemu-user) nor the session
    module (worker shares, resume, facts); a worker's pass, or a pass that resumes after a crash, does."""
    body = """
import json, os, sys
def test_loaded(metrics):
    names = ("hashlib", "_hashlib", "leapfrog_session", "leapfrog_facts")
    metrics["loaded"] = ",".join(m for m in names if m in sys.modules)
"""

    def loaded(**env: str) -> str:
        (tmp_path / "results.jsonl").unlink(missing_ok=True)
        records = run_probe(tmp_path, body, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **env)
        (case,) = [r for r in records if r["event"] == "case"]
        return str(case["metrics"]["loaded"])  # type: ignore[index]

    assert loaded(LEAPFROG_DONE=str(tmp_path / "done.txt")) == ""  # the runner's first pass: no done file yet
    (tmp_path / "done.txt").write_text("test_s.py::test_other\n")
    assert loaded(LEAPFROG_DONE=str(tmp_path / "done.txt")) == "leapfrog_session"
    assert loaded(LEAPFROG_WORKER="0/1") == "hashlib,_hashlib,leapfrog_session"
