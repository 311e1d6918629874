"""One rule turns a test's phase reports into its outcome: the probe's, which the upstream plugin imports."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.probe import PROBE_DIR

UPSTREAM = Path(__file__).resolve().parents[2] / "suites" / "upstream"
sys.path[:0] = [str(PROBE_DIR), str(UPSTREAM)]
leapfrog_probe = importlib.import_module("leapfrog_probe")
upstream_budget = importlib.import_module("upstream_budget")


def report(when: str, outcome: str, *, xfail: bool = False) -> SimpleNamespace:
    r = SimpleNamespace(when=when, passed=outcome == "passed", skipped=outcome == "skipped", failed=outcome == "failed")
    if xfail:
        r.wasxfail = "expected"
    return r


def test_the_upstream_plugin_uses_the_probes_rule() -> None:
    assert upstream_budget.phase_status is leapfrog_probe.phase_status
    assert upstream_budget.decide is leapfrog_probe.decide


@pytest.mark.parametrize(
    ("when", "outcome", "xfail", "status"),
    [
        ("call", "passed", False, "passed"),
        ("call", "passed", True, "xpassed"),
        ("call", "skipped", True, "xfailed"),
        ("call", "skipped", False, "skipped"),
        ("call", "failed", False, "failed"),
        ("setup", "failed", False, "error"),
        ("teardown", "failed", False, "error"),
        ("setup", "skipped", False, "skipped"),
        ("setup", "skipped", True, "xfailed"),
        ("setup", "passed", False, None),
        ("teardown", "passed", False, None),
    ],
)
def test_each_phase_says_its_status(when: str, outcome: str, xfail: bool, status: str | None) -> None:
    assert leapfrog_probe.phase_status(report(when, outcome, xfail=xfail)) == status


def test_the_first_phase_decides_a_teardown_error_spoils_a_pass_and_a_timeout_wins() -> None:
    decide = leapfrog_probe.decide
    assert decide(None, None) is None
    assert decide(None, "skipped") == "skipped"
    assert decide("skipped", "error") == "skipped"
    assert decide("passed", "error") == "error"
    assert decide("xpassed", "error") == "error"
    assert decide("failed", "error") == "failed"
    assert decide("passed", None) == "passed"
    assert decide("failed", "timeout") == "timeout"
