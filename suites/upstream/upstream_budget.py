"""pytest plugin loaded into the upstream test runs (``-p upstream_budget``).

Stdlib and pytest only (it runs on the target's Python). It

- stops starting tests once ``UPSTREAM_BUDGET_S`` seconds have passed since
  collection ended (the remaining ones are not run and have no record);
- appends one JSON line per upstream test to ``UPSTREAM_CASES`` and flushes it
  at once, so a run killed by its grace timeout keeps what finished::

      {"kind": "start", "name": "numpy/fft/tests/test_helper.py::TestFFTShift::test_definition"}
      {"kind": "test", "name": "...", "status": "passed", "duration": 0.01, "message": ""}
      {"kind": "collect", "name": "numpy/x/tests/test_y.py", "status": "error", "message": "..."}

  ``status`` is the test's one outcome (passed, failed, error, skipped,
  xfailed, xpassed) decided by leapfrog's probe's own rule (``phase_status``
  and ``decide`` of ``leapfrog_probe``, next to it on ``PYTHONPATH``): the first
  phase that says something, a teardown error spoils a pass. ``name`` is the test's
  node id with its file given from the top of its package
  (``numpy/fft/tests/…``), whatever folder the package is installed in, so
  the same test has the same name on every target;
- writes a JSON summary of the session to ``UPSTREAM_SUMMARY`` at its end.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from typing import Any

import pytest
from leapfrog_probe import decide, phase_status

_START = time.monotonic()
_RUN_START = _START
_BUDGET = float(os.environ.get("UPSTREAM_BUDGET_S", "0") or 0)
_SKIPS: collections.Counter[str] = collections.Counter()
_STATE: dict[str, Any] = {"collected": 0, "started": 0, "stopped": "", "collect_s": 0.0}
#: Characters of a failure's report kept per test (its crash line first, then the end of the report).
MESSAGE_LIMIT = 3000
_CONFIG: dict[str, Any] = {}
#: pytest's node id -> the name recorded (file from the top of its package).
_NAMES: dict[str, str] = {}
#: Import folders before collection (pytest's default import mode adds test folders to sys.path).
_ROOTS = {os.path.realpath(p or os.curdir) for p in sys.path}
#: Per test being run: [status or None, duration, message].
_TESTS: dict[str, list[Any]] = {}


def _write(record: dict[str, Any]) -> None:
    out = _CONFIG.get("out")
    if out is not None:
        out.write(json.dumps(record, ensure_ascii=True) + "\n")
        out.flush()


def package_path(path: str) -> str:
    """``path`` from the folder above its top package: ``numpy/_core/tests/test_half.py``.

    Climbs to the folder on ``sys.path`` as it was before collection (pytest
    then adds test folders to it), through folders without ``__init__.py``
    (numpy's tests folders have none); the highest one with it is the top.
    """
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    top = ""
    while True:
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            top = folder
        parent = os.path.dirname(folder)
        if folder in _ROOTS or parent == folder:
            break
        folder = parent
    return os.path.relpath(path, os.path.dirname(top) if top else os.path.dirname(path)).replace(os.sep, "/")


def _name(nodeid: str, path: Any) -> str:
    if path is None:
        return nodeid
    rest = nodeid.split("::", 1)
    return package_path(str(path)) + ("::" + rest[1] if len(rest) == 2 else "")


def _crash(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", "") or str(getattr(report, "longreprtext", "") or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def _message(report: Any) -> str:
    """A skip's reason; a failure's crash line, then the end of its report (bounded)."""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])[:MESSAGE_LIMIT]
    text = str(getattr(report, "longreprtext", "") or "")
    if len(text) > MESSAGE_LIMIT:
        text = "[...]\n" + text[-MESSAGE_LIMIT:]
    crash = _crash(report)
    return f"{crash}\n\n{text}" if crash else text


def pytest_configure(config: Any) -> None:
    global _START
    _START = time.monotonic()
    _CONFIG["config"] = config
    path = os.environ.get("UPSTREAM_CASES")
    if path and "out" not in _CONFIG:
        _CONFIG["out"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the session, closed in unconfigure)


def pytest_unconfigure(config: Any) -> None:
    out = _CONFIG.pop("out", None)
    if out is not None:
        out.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        name = _name(report.nodeid, getattr(collector, "path", None) or getattr(collector, "fspath", None))
        text = str(getattr(report, "longreprtext", "") or "")
        if len(text) > MESSAGE_LIMIT:
            text = "[...]\n" + text[-MESSAGE_LIMIT:]
        _write({"kind": "collect", "name": name or "<collection>", "status": "error", "message": text})


def pytest_collection_finish(session: Any) -> None:
    global _RUN_START
    _STATE["collected"] = len(session.items)
    for item in session.items:
        _NAMES[item.nodeid] = _name(item.nodeid, getattr(item, "path", None) or getattr(item, "fspath", None))
    _RUN_START = time.monotonic()
    _STATE["collect_s"] = round(_RUN_START - _START, 3)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    if _BUDGET and time.monotonic() - _RUN_START > _BUDGET:
        item.session.shouldstop = f"upstream time budget of {_BUDGET:g} s spent"
        _STATE["stopped"] = item.session.shouldstop
        return True  # not run; pytest stops the session after this item
    _STATE["started"] += 1
    return None


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _TESTS[nodeid] = [None, 0.0, ""]
    _write({"kind": "start", "name": _NAMES.get(nodeid, nodeid)})


def pytest_runtest_logreport(report: Any) -> None:
    test = _TESTS.setdefault(report.nodeid, [None, 0.0, ""])
    test[1] += float(getattr(report, "duration", 0.0) or 0.0)
    was_xfail = hasattr(report, "wasxfail")
    status = phase_status(report)
    if report.when == "call" and was_xfail and not report.failed:
        test[2] = str(report.wasxfail)[:MESSAGE_LIMIT]
    if report.failed or (report.skipped and not was_xfail):
        test[2] = test[2] or _message(report)
    if status == "skipped" and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        _SKIPS[str(report.longrepr[2])[:160]] += 1
    test[0] = decide(test[0], status)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    status, duration, message = _TESTS.pop(nodeid, [None, 0.0, ""])
    _write(
        {
            "kind": "test",
            "name": _NAMES.get(nodeid, nodeid),
            "status": status or "error",
            "duration": round(duration, 6),
            "message": message,
        }
    )


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    path = os.environ.get("UPSTREAM_SUMMARY")
    if not path:
        return
    summary = {
        "collected": _STATE["collected"],
        "started": _STATE["started"],
        "not_run": max(0, _STATE["collected"] - _STATE["started"]),
        "stopped": _STATE["stopped"],
        "collect_s": _STATE["collect_s"],
        "run_s": round(time.monotonic() - _RUN_START, 3),
        "exitstatus": int(exitstatus),
        "skip_reasons": _SKIPS.most_common(8),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f)
