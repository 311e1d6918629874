"""Run the packages' own test suites (as shipped in the target), each upstream test a case of its own.

One case per ``select_<name>`` in suite.toml ``[settings]``. Each runs
``python3 -m pytest <arguments>`` in a subprocess from an empty directory.
Every upstream test it ran is recorded as a child case (the probe's
``child_cases``) named ``<this case>::<upstream node id>``, the file given
from the top of its package, e.g.
``test_upstream.py::test_upstream[numpy_fft]::numpy/fft/tests/test_helper.py::TestFFTShift::test_definition``,
with its status (passed failed error skipped xfailed), duration and message
(the skip or xfail reason, the failure's report, bounded). pytest's rules
decide: a test marked xfail that passes is ``passed`` (its message starts
with ``XPASS:``) unless the mark is strict, which pytest fails. A module
that could not be collected is an ``error`` child named by its file, or a
``skipped`` one when a test dependency it imports is missing from the target.
A test still running when the selection is killed after its budget plus grace
is a ``timeout`` child.

Tests left unrun by the time budget are not cases: they are counted in the
``not_run`` metric. The selection's own case keeps the counts as metrics
(passed, failed, error, skipped, xfailed, timeout: each equal to the number
of its child cases of that status; xpass_not_strict, collected, not_run, wall
time) and
fails when an upstream test failed or errored. A selection that cannot run
for a reason outside the package (the package or its tests are not installed,
a test dependency is missing) is a skip with that reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
Metrics = dict[str, Any]


def _settings() -> dict[str, Any]:
    """``[settings]`` as the harness passes it, or read from suite.toml when run by hand."""
    raw = os.environ.get("LEAPFROG_SETTINGS")
    if raw:
        data: dict[str, Any] = json.loads(raw)
        return data
    import tomllib

    with open(HERE / "suite.toml", "rb") as f:
        return dict(tomllib.load(f).get("settings", {}))


SETTINGS = _settings()
SELECTIONS = {k.removeprefix("select_"): str(v) for k, v in SETTINGS.items() if k.startswith("select_")}


def _modules(args: list[str]) -> list[str]:
    """The dotted names given after --pyargs (positional arguments that are not option values)."""
    out: list[str] = []
    takes_value = {"-k", "-m", "-p", "-W", "-o", "--deselect", "--ignore", "-c", "--rootdir"}
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in takes_value:
            skip_next = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def _ships_tests(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if spec.submodule_search_locations:
        return any(any(Path(loc).rglob("test_*.py")) for loc in spec.submodule_search_locations)
    return Path(str(spec.origin)).name.startswith("test_")


def _version(package: str) -> str:
    from importlib import metadata

    dist = {"sklearn": "scikit-learn"}.get(package, package)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _check_runnable(modules: list[str], metrics: Metrics) -> None:
    if not modules:
        pytest.fail("the selection names no module after --pyargs")
    for package in sorted({m.split(".")[0] for m in modules}):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"package {package!r} is not installed on this target")
        metrics[f"{package}_version"] = _version(package)
    for module in modules:
        if not _ships_tests(module):
            pytest.skip(f"the installed {module.split('.')[0]} does not ship the tests of {module!r}")


def _missing_dependencies(texts: list[str], packages: set[str]) -> list[str]:
    """Modules that every text reports missing, if none belongs to the packages under test.

    Empty when any text fails for another reason, or when a module of the
    package itself is missing (a broken package, not a missing test dependency).
    """
    names: set[str] = set()
    for text in texts:
        found = re.findall(r"No module named '([^']+)'", text)
        if not found:
            return []
        names.update(found)
    if any(n.split(".")[0] in packages for n in names):
        return []
    return sorted(names)


def _child_env(budget: float, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAPFROG_", "PYTEST_"))}
    # The suite folder for -p upstream_budget, before whatever path the target's Python already uses.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env["UPSTREAM_BUDGET_S"] = str(budget)
    env["UPSTREAM_SUMMARY"] = str(folder / "summary.json")
    env["UPSTREAM_CASES"] = str(folder / "cases.jsonl")
    return env


#: The statuses of child cases, each counted in the metric of its name.
STATUSES = ("passed", "failed", "error", "skipped", "xfailed", "timeout")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The lines upstream_budget wrote (a line cut short by a kill is left out)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                out.append(rec)
    return out


def child_cases_of(records: list[dict[str, Any]], packages: set[str], killed: str = "") -> list[dict[str, Any]]:
    """One child case per upstream test that ran and per module that could not be collected.

    A collection error caused only by missing test dependencies is ``skipped``
    (the target lacks them); with ``killed`` (why the run was killed), a test
    started without an outcome is ``timeout``.
    """
    children: list[dict[str, Any]] = []
    finished = {r["name"] for r in records if r.get("kind") == "test"}
    for rec in records:
        kind, name = rec.get("kind"), rec["name"]
        if kind == "test":
            status, message = rec.get("status"), str(rec.get("message", ""))
            xpass = status == "xpassed"
            if xpass:  # pytest passes a test marked xfail (not strict) that passes
                status, message = "passed", f"XPASS: passed although marked xfail (not strict): {message}"
            elif status not in STATUSES:
                status = "error"
            duration = rec.get("duration", 0.0)
            children.append({"name": name, "status": status, "duration": duration, "message": message, "xpass": xpass})
        elif kind == "collect":
            text = str(rec.get("message", ""))
            missing = _missing_dependencies([text], packages)
            if missing:
                status, text = "skipped", f"missing test dependencies {missing}: the module was not collected\n\n{text}"
            else:
                status, text = "error", f"collection failed:\n{text}"
            children.append({"name": name, "status": status, "duration": 0.0, "message": text})
        elif kind == "start" and killed and name not in finished:
            children.append({"name": name, "status": "timeout", "duration": 0.0, "message": killed})
    return children


def _count(children: list[dict[str, Any]], metrics: Metrics) -> None:
    """The selection's counts: each one the number of its child cases of that status."""
    for status in STATUSES:
        metrics[status] = sum(1 for c in children if c["status"] == status)
    metrics["xpass_not_strict"] = sum(1 for c in children if c.get("xpass"))


def _failures(children: list[dict[str, Any]], limit: int = 40) -> str:
    bad = [c for c in children if c["status"] in ("failed", "error", "timeout")]
    lines = [f"{c['name']} [{c['status']}]: {(str(c['message']).strip().splitlines() or [''])[0][:300]}" for c in bad]
    more = [f"... and {len(lines) - limit} more"] if len(lines) > limit else []
    return "\n".join(lines[:limit] + more)


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_upstream(name: str, tmp_path: Path, metrics: Metrics, child_cases: list[dict[str, Any]]) -> None:
    args = shlex.split(SELECTIONS[name])
    modules = [m for m in _modules(args) if "/" not in m]
    _check_runnable(modules, metrics)
    packages = {m.split(".")[0] for m in modules}
    budget = float(SETTINGS.get(f"budget_{name}", SETTINGS.get("budget_s", 60)))
    grace = float(SETTINGS.get("grace_s", 120))
    work = tmp_path / "run"
    work.mkdir()
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "upstream_budget", "-q", "-rN"]
    argv += ["--color=no", "--continue-on-collection-errors", "--rootdir", str(work), *args]
    metrics["budget_s"] = budget
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            cwd=work,
            env=_child_env(budget, tmp_path),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=budget + grace,
        )
    except subprocess.TimeoutExpired:
        metrics["wall_s"] = round(time.monotonic() - start, 3)
        why = f"{name}: still running after its {budget:g} s budget plus {grace:g} s grace (a test hangs?)"
        child_cases.extend(child_cases_of(read_records(tmp_path / "cases.jsonl"), packages, killed=why))
        _count(child_cases, metrics)
        pytest.fail(why, pytrace=False)
    metrics["wall_s"] = round(time.monotonic() - start, 3)
    output = proc.stdout + proc.stderr
    print(output[-20000:])  # kept by the probe as the case output

    child_cases.extend(child_cases_of(read_records(tmp_path / "cases.jsonl"), packages))
    _count(child_cases, metrics)
    summary_path = tmp_path / "summary.json"
    if not summary_path.exists():
        missing = _missing_dependencies([output], packages)
        if missing:
            pytest.skip(f"missing test dependencies {missing}: pytest could not start the selection")
        pytest.fail(
            f"{name}: pytest exited with {proc.returncode} before its session ended:\n{output[-3000:]}", pytrace=False
        )

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    metrics["collected"] = int(summary["collected"])
    metrics["not_run"] = int(summary["not_run"])
    metrics["completed"] = not summary["stopped"]
    metrics["pytest_exit"] = proc.returncode
    metrics["collect_s"] = float(summary["collect_s"])
    metrics["run_s"] = float(summary["run_s"])
    if summary["skip_reasons"]:
        metrics["top_skip_reasons"] = "; ".join(f"{n}x {reason}" for reason, n in summary["skip_reasons"][:4])
    uncollected = [c for c in child_cases if c["status"] == "skipped" and "was not collected" in c["message"]]
    if uncollected:  # collection errors that are test dependencies the target lacks
        if metrics["collected"] == 0 and len(uncollected) == len(child_cases):
            missing = _missing_dependencies([c["message"] for c in uncollected], packages)
            pytest.skip(f"missing test dependencies {missing}: no test of the selection could be collected")
        metrics["uncollected_modules"] = len(uncollected)
    if metrics["failed"] or metrics["error"]:
        pytest.fail(
            f"{name}: {metrics['failed']} failed and {metrics['error']} errors out of {metrics['collected']} "
            f"(passed {metrics['passed']}):\n" + _failures(child_cases),
            pytrace=False,
        )
    assert metrics["collected"] > 0, f"{name}: the selection collects no test"
    if metrics["passed"] == 0 and not metrics["completed"]:
        pytest.skip(f"{name}: the {budget:g} s budget was spent before any test finished (a slow target)")
    assert metrics["passed"] > 0, f"{name}: no test passed ({_failures(child_cases)})"
