"""The golden-comparison helpers suites import in the target (harness/probe/leapfrog_checks.py)."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.probe import CHECKS_FILE

sys.path.insert(0, str(CHECKS_FILE.parent))
import leapfrog_checks as checks


def test_close_values_pass_and_record_their_errors() -> None:
    metrics: dict[str, Any] = {}
    checks.assert_close("x", np.array([1.0, 2.0 + 1e-9, np.nan, np.inf]), np.array([1.0, 2.0, np.nan, np.inf]),
                        rtol=1e-6, atol=0.0, metrics=metrics)
    assert metrics["x.max_abs_err"] == pytest.approx(1e-9, rel=1e-3)
    assert metrics["x.max_rel_err"] == pytest.approx(5e-10, rel=1e-3)


def test_a_wrong_value_fails_with_the_numbers() -> None:
    metrics: dict[str, Any] = {}
    with pytest.raises(pytest.fail.Exception, match=r"x: 1 of 3 values outside tolerance .* worst at index \(2,\)"):
        checks.assert_close("x", [1.0, 2.0, 3.5], [1.0, 2.0, 3.0], rtol=1e-6, atol=1e-9, metrics=metrics)
    assert metrics["x.max_abs_err"] == 0.5
    with pytest.raises(pytest.fail.Exception, match="y: 1 of 1 values outside tolerance"):
        checks.assert_close("y", [np.nan], [1.0], rtol=1e-6, atol=1e-9, metrics=metrics)


def test_same_is_bit_for_bit_nan_payloads_included() -> None:
    metrics: dict[str, Any] = {}
    quiet = np.array([np.nan], dtype=np.float64)
    other = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)  # another NaN payload
    checks.assert_same("n", quiet, quiet.copy(), metrics=metrics)
    assert metrics["n.mismatches"] == 0
    with pytest.raises(pytest.fail.Exception, match="not bit-identical"):
        checks.assert_same("n", other, quiet, metrics=metrics)
    with pytest.raises(pytest.fail.Exception, match="golden is float64"):
        checks.assert_same("d", quiet.astype(np.float32), quiet, metrics=metrics)


def test_golden_files_settings_and_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez(tmp_path / "g.npz", a=np.arange(3))
    (tmp_path / "meta.json").write_text('{"numpy": "2.2.4"}')
    assert checks.load_golden(tmp_path, "g")["a"].tolist() == [0, 1, 2]
    assert checks.golden_meta(tmp_path) == {"numpy": "2.2.4"}
    monkeypatch.setenv("LEAPFROG_SETTINGS", '{"bench_repeats": 3}')
    assert checks.settings() == {"bench_repeats": 3}
    median, p90 = checks.timed(lambda: None, 5)
    assert 0 <= median <= p90
    host = platform.machine().lower()
    assert checks.machine() == {"amd64": "x86_64", "arm64": "aarch64"}.get(host, host)


def test_value_errors_nan_meets_nan_and_a_zero_golden_is_infinitely_relative() -> None:
    diff, rel = checks.value_errors(np.array([np.nan, np.nan, 1e-9, 2.2]), np.array([np.nan, 1.0, 0.0, 2.0]))
    assert diff[0] == 0
    assert rel[0] == 0
    assert np.isinf(diff[1])
    assert np.isinf(rel[1])
    assert diff[2] == pytest.approx(1e-9)
    assert np.isinf(rel[2])
    assert rel[3] == pytest.approx(0.1)
