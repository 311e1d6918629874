"""pytest plugin loaded into the upstream test runs (``-p upstream_budget``).

Stdlib and pytest only. It counts outcomes the way pytest's own summary does,
stops starting tests once ``UPSTREAM_BUDGET_S`` seconds have passed since
collection ended (the remaining ones are counted as not run), and writes a
JSON summary to ``UPSTREAM_SUMMARY`` at the end of the session.
"""

from __future__ import annotations

import collections
import json
import os
import time
from typing import Any

import pytest

_START = time.monotonic()
_RUN_START = _START
_BUDGET = float(os.environ.get("UPSTREAM_BUDGET_S", "0") or 0)
_COUNTS: collections.Counter[str] = collections.Counter()
_SKIPS: collections.Counter[str] = collections.Counter()
_FAILURES: list[str] = []
_COLLECTION_ERRORS: list[str] = []
_STATE: dict[str, Any] = {"collected": 0, "started": 0, "stopped": "", "collect_s": 0.0}
_KEEP = 40  # failure lines kept in the summary
_CONFIG: dict[str, Any] = {}


def _crash(report: Any) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = getattr(crash, "message", "") or str(getattr(report, "longreprtext", "") or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else "")[:300]


def pytest_configure(config: Any) -> None:
    global _START
    _START = time.monotonic()
    _CONFIG["config"] = config


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _COUNTS["error"] += 1
        text = str(getattr(report, "longreprtext", "") or "")
        last = [line for line in text.splitlines() if line.strip()][-3:]
        _COLLECTION_ERRORS.append(f"{report.nodeid}: {' | '.join(last)[:400]}")


def pytest_collection_finish(session: Any) -> None:
    global _RUN_START
    _STATE["collected"] = len(session.items)
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


def pytest_runtest_logreport(report: Any) -> None:
    config = _CONFIG.get("config")
    if config is None:
        return
    category = config.hook.pytest_report_teststatus(report=report, config=config)[0]
    if not category:
        return
    _COUNTS[category] += 1
    if category in ("failed", "error"):
        if len(_FAILURES) < _KEEP:
            _FAILURES.append(f"{report.nodeid} [{report.when}]: {_crash(report)}")
    elif category == "skipped" and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        _SKIPS[str(report.longrepr[2])[:160]] += 1


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    path = os.environ.get("UPSTREAM_SUMMARY")
    if not path:
        return
    summary = {
        "counts": dict(_COUNTS),
        "collected": _STATE["collected"],
        "started": _STATE["started"],
        "not_run": max(0, _STATE["collected"] - _STATE["started"]),
        "stopped": _STATE["stopped"],
        "collect_s": _STATE["collect_s"],
        "run_s": round(time.monotonic() - _RUN_START, 3),
        "exitstatus": int(exitstatus),
        "failures": _FAILURES,
        "collection_errors": _COLLECTION_ERRORS[:_KEEP],
        "skip_reasons": _SKIPS.most_common(8),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f)
