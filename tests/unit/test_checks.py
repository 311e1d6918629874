"""The helpers suites import in the target: harness/probe/leapfrog_checks.py (numpy) and leapfrog_suite.py (stdlib)."""

from __future__ import annotations

import platform
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.probe import CHECKS_FILE, PROBE_DIR

sys.path.insert(0, str(CHECKS_FILE.parent))
import leapfrog_checks as checks
import leapfrog_suite as suite

SUITES = Path(__file__).resolve().parents[2] / "suites"


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
    assert suite.golden_meta(tmp_path) == {"numpy": "2.2.4"}
    monkeypatch.setenv("LEAPFROG_SETTINGS", '{"bench_repeats": 3}')
    assert suite.settings() == {"bench_repeats": 3}
    median, p90 = suite.timed(lambda: None, 5)
    assert 0 <= median <= p90
    host = platform.machine().lower()
    assert suite.machine() == {"amd64": "x86_64", "arm64": "aarch64"}.get(host, host)


def test_value_errors_nan_meets_nan_and_a_zero_golden_is_infinitely_relative() -> None:
    diff, rel = checks.value_errors(np.array([np.nan, np.nan, 1e-9, 2.2]), np.array([np.nan, 1.0, 0.0, 2.0]))
    assert diff[0] == 0
    assert rel[0] == 0
    assert np.isinf(diff[1])
    assert np.isinf(rel[1])
    assert diff[2] == pytest.approx(1e-9)
    assert np.isinf(rel[2])
    assert rel[3] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- the options of the comparisons

NEG_ZERO = np.array([-0.0])
POS_ZERO = np.array([0.0])
QUIET_NAN = np.array([np.nan])
OTHER_NAN = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)


def test_same_by_bits_tells_the_sign_of_zero_and_nan_payloads_apart() -> None:
    metrics: dict[str, Any] = {}
    with pytest.raises(pytest.fail.Exception, match="z: 1 of 1 values are not bit-identical"):
        checks.assert_same("z", NEG_ZERO, POS_ZERO, metrics=metrics)
    assert metrics["z.mismatches"] == 1
    assert metrics["z.max_abs_err"] == 0.0  # the values are equal: only the bits differ
    with pytest.raises(pytest.fail.Exception, match="n: 1 of 1 values are not bit-identical"):
        checks.assert_same("n", OTHER_NAN, QUIET_NAN, metrics=metrics)


def test_same_by_value_takes_minus_zero_for_zero_and_any_nan_for_nan() -> None:
    metrics: dict[str, Any] = {}
    checks.assert_same("z", NEG_ZERO, POS_ZERO, metrics=metrics, bits=False)
    checks.assert_same("n", OTHER_NAN, QUIET_NAN, metrics=metrics, bits=False)
    assert metrics == {"z.mismatches": 0, "z.max_abs_err": 0.0, "n.mismatches": 0, "n.max_abs_err": 0.0}
    with pytest.raises(pytest.fail.Exception, match=r"v: 1 of 2 values differ from the golden \(max_abs_err=0.5\); "
                       r"first at index \(1,\)"):
        checks.assert_same("v", np.array([1.0, 2.5]), np.array([1.0, 2.0]), metrics=metrics, bits=False)
    assert metrics["v.mismatches"] == 1
    assert metrics["v.max_abs_err"] == 0.5
    assert checks.count_mismatches(np.array([1.0, np.nan, -0.0]), np.array([1.5, np.nan, 0.0])) == (1, 0.5)


@pytest.mark.parametrize("bits", [True, False])
def test_same_refuses_another_dtype_either_way(bits: bool) -> None:
    golden_is = "golden is" if bits else "the golden is"
    with pytest.raises(pytest.fail.Exception, match=f"d: got float32\\(1,\\), {golden_is} float64\\(1,\\)"):
        checks.assert_same("d", POS_ZERO.astype(np.float32), POS_ZERO, metrics={}, bits=bits)
    with pytest.raises(pytest.fail.Exception, match="got int32"):
        checks.count_mismatches(np.array([1], dtype=np.int32), np.array([1], dtype=np.int64))


def test_close_compares_across_dtypes_unless_strict() -> None:
    metrics: dict[str, Any] = {}
    checks.assert_close("x", np.float32([1.0, 2.0]), np.float64([1.0, 2.0]), rtol=1e-6, atol=0, metrics=metrics)
    assert metrics["x.max_abs_err"] == 0.0
    with pytest.raises(pytest.fail.Exception, match=r"x: got float32\(2,\), the golden is float64\(2,\)"):
        checks.assert_close("x", np.float32([1.0, 2.0]), np.float64([1.0, 2.0]), rtol=1e-6, atol=0,
                            metrics=metrics, strict_dtype=True)
    with pytest.raises(pytest.fail.Exception, match=r"y: shape \(2,\) differs from the golden shape \(3,\)"):
        checks.assert_close("y", np.zeros(2), np.zeros(3), rtol=1e-6, atol=0, metrics=metrics)


def test_strict_close_uses_value_errors() -> None:
    """A zero golden: by default judged by atol alone (relative error 0); strict, infinitely relative."""
    loose: dict[str, Any] = {}
    strict: dict[str, Any] = {}
    a, g = np.array([1e-9, 1.0]), np.array([0.0, 1.0])
    checks.assert_close("z", a, g, rtol=0, atol=1e-6, metrics=loose)
    checks.assert_close("z", a, g, rtol=0, atol=1e-6, metrics=strict, strict_dtype=True)
    assert loose["z.max_rel_err"] == 0.0
    assert np.isinf(strict["z.max_rel_err"])
    checks.assert_close("i", np.array([np.inf]), np.array([np.inf]), rtol=1e-6, atol=0, metrics=loose)
    assert loose["i.max_abs_err"] == 0.0


class FakeTensor:
    """What the helpers use of a torch tensor: detach().cpu().numpy()."""

    def __init__(self, values: list[float]) -> None:
        self.values = np.array(values, dtype=np.float32)

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.values


def test_tensors_are_compared_as_arrays() -> None:
    metrics: dict[str, Any] = {}
    checks.assert_same("t", FakeTensor([1.0, -0.0]), np.float32([1.0, 0.0]), metrics=metrics, bits=False)
    checks.assert_close("c", FakeTensor([1.0]), np.float32([1.0]), rtol=0, atol=0, metrics=metrics, strict_dtype=True)
    assert metrics["t.mismatches"] == 0
    assert metrics["c.max_abs_err"] == 0.0


# ----------------------------------------------------------------------------- the golden writer


def test_the_writer_is_byte_for_byte_reproducible_and_keeps_the_arrays(tmp_path: Path) -> None:
    arrays = {"b": np.arange(6, dtype=np.int16).reshape(2, 3), "a": np.array([np.nan, -0.0]), "c": np.float32([1.5])}
    first = checks.save_golden(tmp_path / "one", "g", arrays)
    second = checks.save_golden(tmp_path / "two", "g", arrays)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        assert [i.filename for i in zf.infolist()] == ["a.npy", "b.npy", "c.npy"]
        assert {i.date_time for i in zf.infolist()} == {checks.ZIP_DATE}
    back = checks.load_golden(tmp_path / "one", "g")
    assert all(np.array_equal(back[k], v, equal_nan=True) and back[k].dtype == v.dtype for k, v in arrays.items())
    unsorted = checks.save_golden(tmp_path / "three", "g", arrays, sort=False)
    with zipfile.ZipFile(unsorted) as zf:
        assert [i.filename for i in zf.infolist()] == ["b.npy", "a.npy", "c.npy"]


def committed_goldens() -> list[Path]:
    return sorted(SUITES.glob("*/golden/*.npz")) + sorted(SUITES.glob("*/models/*.npz"))


@pytest.mark.parametrize("path", committed_goldens(), ids=lambda p: str(p.relative_to(SUITES)))
def test_the_writer_rewrites_every_committed_golden_byte_for_byte(path: Path, tmp_path: Path) -> None:
    """What each make_golden.py passes the writer (members in the file's order; serving's plain zip layout)."""
    arrays = checks.load_golden(path.parent, path.stem)
    zip64 = path.parts[-3] != "serving"
    again = checks.write_npz(tmp_path / path.name, arrays, zip64=zip64)
    assert again.read_bytes() == path.read_bytes()


def test_meta_is_sorted_json_with_one_newline(tmp_path: Path) -> None:
    meta = {"numpy": "2.2.4", "generator": "make_golden.py", **suite.generated_on()}
    suite.write_meta(tmp_path, meta)
    assert (tmp_path / "meta.json").read_text(encoding="utf-8") == (
        "{\n"
        '  "generator": "make_golden.py",\n'
        f'  "machine": "{platform.machine()}",\n'
        '  "numpy": "2.2.4",\n'
        f'  "python": "{platform.python_version()}"\n'
        "}\n"
    )
    suite.write_meta(tmp_path, {"b": 1, "a": [1]}, indent=1)
    assert (tmp_path / "meta.json").read_text(encoding="utf-8") == '{\n "a": [\n  1\n ],\n "b": 1\n}\n'
    assert suite.golden_meta(tmp_path) == {"a": [1], "b": 1}


def test_the_stdlib_part_imports_without_numpy() -> None:
    code = "import sys; sys.modules['numpy'] = None; import leapfrog_suite; print(leapfrog_suite.machine())"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROBE_DIR, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == suite.machine()
