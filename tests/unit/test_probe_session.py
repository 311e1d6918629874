"""The probe takes the target's facts beside the cases, not before them (a forked child; leapfrog_session.py).

Run for real: pytest with the probe on the host's Python, a stand-in
``leapfrog_facts`` that takes a second and says when it finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.probe import PROBE_DIR

SLOW_FACTS = """
import os, time

def collect(packages):
    time.sleep(1.5)
    return {"arch": "stand-in", "packages": {p: "1" for p in packages}, "extra": {"pid": str(os.getpid()),
            "finished": repr(time.time())}}
"""

FAILING_FACTS = """
def collect(packages):
    raise RuntimeError("no facts here")
"""

SUITE = """
import os, time

def test_first(metrics):
    metrics["started"] = time.time()
    metrics["pid"] = os.getpid()

def test_forges():
    with open(os.environ["LEAPFROG_RESULTS"], "a") as f:
        f.write('{"event": "facts", "facts": {"arch": "forged"}}\\n')
"""


def run_probe(tmp_path: Path, facts_module: str) -> list[dict[str, Any]]:
    stand_in = tmp_path / "stand_in"
    stand_in.mkdir()
    (stand_in / "leapfrog_facts.py").write_text(facts_module)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_s.py").write_text(SUITE)
    results = tmp_path / "results.jsonl"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q", str(suite)],
        env={
            **os.environ,
            "PYTHONPATH": f"{PROBE_DIR}{os.pathsep}{stand_in}",
            "LEAPFROG_RESULTS": str(results),
            "LEAPFROG_FACTS": "numpy,pytest",
        },
        cwd=suite,
        capture_output=True,
        check=False,
        timeout=120,
    )
    return [json.loads(line) for line in results.read_text().splitlines()]


def test_the_cases_start_while_a_forked_child_takes_the_facts(tmp_path: Path) -> None:
    records = run_probe(tmp_path, SLOW_FACTS)
    events = [r["event"] for r in records]
    assert events[-2:] == ["facts", "end"]  # last, after what the suite wrote: a forged line never wins
    facts = records[-2]["facts"]
    (first,) = [r for r in records if r.get("name") == "test_s.py::test_first"]
    assert first["metrics"]["started"] < float(facts["extra"]["finished"])  # did not wait for the facts
    assert facts["extra"]["pid"] != str(first["metrics"]["pid"])  # taken in a child, not in pytest's process
    assert facts["packages"] == {"numpy": "1", "pytest": "1"}


def test_facts_that_fail_in_the_child_are_a_facts_error(tmp_path: Path) -> None:
    records = run_probe(tmp_path, FAILING_FACTS)
    (error,) = [r for r in records if r["event"] == "facts-error"]
    assert "no facts here" in error["error"]
    assert records[-1]["event"] == "end"
