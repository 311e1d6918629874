"""Run the packages' own test suites (as shipped in the target) and record their counts.

One case per ``select_<name>`` in suite.toml ``[settings]``. Each runs
``python3 -m pytest <arguments>`` in a subprocess from an empty directory and
records passed/failed/skipped/xfailed/error counts, tests left unrun by the
time budget, and the wall time. A failing upstream test fails the case with
its id in the message. A selection that cannot run for a reason outside the
package (the package or its tests are not installed, a test dependency is
missing) is a skip with that reason.
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


def _child_env(budget: float, summary: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEAPFROG_", "PYTEST_"))}
    # The suite folder for -p upstream_budget, before whatever path the target's Python already uses.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env["UPSTREAM_BUDGET_S"] = str(budget)
    env["UPSTREAM_SUMMARY"] = str(summary)
    return env


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_upstream(name: str, tmp_path: Path, metrics: Metrics) -> None:
    args = shlex.split(SELECTIONS[name])
    modules = [m for m in _modules(args) if "/" not in m]
    _check_runnable(modules, metrics)
    budget = float(SETTINGS.get(f"budget_{name}", SETTINGS.get("budget_s", 60)))
    grace = float(SETTINGS.get("grace_s", 120))
    summary_path = tmp_path / "summary.json"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "upstream_budget", "-q", "-rN"]
    argv += ["--color=no", "--continue-on-collection-errors", "--rootdir", str(tmp_path), *args]
    metrics["budget_s"] = budget
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            cwd=tmp_path,
            env=_child_env(budget, summary_path),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=budget + grace,
        )
    except subprocess.TimeoutExpired:
        metrics["wall_s"] = round(time.monotonic() - start, 3)
        pytest.fail(
            f"{name}: still running after its {budget:g} s budget plus {grace:g} s grace (a test hangs?)", pytrace=False
        )
    metrics["wall_s"] = round(time.monotonic() - start, 3)
    output = proc.stdout + proc.stderr
    print(output[-20000:])  # kept by the probe as the case output

    packages = {m.split(".")[0] for m in modules}
    if not summary_path.exists():
        missing = _missing_dependencies([output], packages)
        if missing:
            pytest.skip(f"missing test dependencies {missing}: pytest could not start the selection")
        pytest.fail(
            f"{name}: pytest exited with {proc.returncode} before its session ended:\n{output[-3000:]}", pytrace=False
        )

    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    counts = summary["counts"]
    for key in ("passed", "failed", "skipped", "xfailed", "xpassed", "error"):
        metrics[key] = int(counts.get(key, 0))
    metrics["collected"] = int(summary["collected"])
    metrics["not_run"] = int(summary["not_run"])
    metrics["completed"] = not summary["stopped"]
    metrics["pytest_exit"] = proc.returncode
    metrics["collect_s"] = float(summary["collect_s"])
    metrics["run_s"] = float(summary["run_s"])
    if summary["skip_reasons"]:
        metrics["top_skip_reasons"] = "; ".join(f"{n}x {reason}" for reason, n in summary["skip_reasons"][:4])

    errors = summary["collection_errors"]
    missing = _missing_dependencies(errors, packages)
    if missing:  # every collection error is a test dependency the target lacks
        if metrics["collected"] == 0:
            pytest.skip(f"missing test dependencies {missing}: no test of the selection could be collected")
        metrics["missing_test_dependencies"] = ", ".join(missing)
        metrics["uncollected_modules"] = len(errors)
        metrics["error"] -= len(errors)
        errors = []
    if metrics["failed"] or metrics["error"]:
        pytest.fail(
            f"{name}: {metrics['failed']} failed and {metrics['error']} errors out of {metrics['collected']} "
            f"(passed {metrics['passed']}):\n" + "\n".join(summary["failures"] + errors),
            pytrace=False,
        )
    assert metrics["collected"] > 0, f"{name}: the selection collects no test"
    if metrics["passed"] == 0 and not metrics["completed"]:
        pytest.skip(f"{name}: the {budget:g} s budget was spent before any test finished (a slow target)")
    assert metrics["passed"] > 0, f"{name}: no test passed ({counts})"
