"""``leapfrog run --project``: the example project on native and the riscv64 chroot, for real.

examples/numcast needs numpy, which the shared image already has as
python3-numpy (no image is built).  Its NaN-to-int64 test was written on
x86-64 and really fails on riscv64 (fcvt.l.d gives INT64_MAX where x86's
cvttsd2si gives INT64_MIN): triage must call it target-only; every other case
passes on both.  A second project asks for a distribution that exists
nowhere: its cells are not-run with the reason, and no target starts for them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, cache_env

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
RV = "debian-trixie-riscv64"
EXAMPLE = ROOT / "examples" / "numcast"
NOWHERE = "leapfrog-test-no-such-distribution"


def test_example_project_runs_on_native_and_riscv64_with_triage(private_cache: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*"))
    lacking = tmp_path / "lacking"
    (lacking / "tests").mkdir(parents=True)
    (lacking / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "lacking"\nversion = "1.0"\ndependencies = ["{NOWHERE}>=1"]\n'
        '[tool.setuptools]\npy-modules = ["lacking"]\n'
    )
    (lacking / "lacking.py").write_text("X = 1\n")
    (lacking / "tests" / "test_x.py").write_text("def test_x():\n    assert True\n")
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "run", "-t", f"native,{RV}"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "--project", str(EXAMPLE), "--project", str(lacking), "--out", str(out), "--no-history"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=cache_env(private_cache),
    )
    print(f"leapfrog run --project on native + {RV} took {time.monotonic() - started:.1f} s")
    assert done.returncode == 1, done.stderr[-3000:]  # target-only is in the default --fail-on
    assert "triage: 1 target-only" in done.stdout

    data = json.loads((out / "results.json").read_text())
    cells = {(c["target"], c["suite"]): c for c in data["cells"]}
    native = cells[("native", "project:numcast")]
    assert native["verdict"] == "compatible"
    assert sorted(c["name"] for c in native["cases"]) == [
        "tests/test_arrays.py::test_finite_values_truncate_toward_zero",
        "tests/test_arrays.py::test_nan_becomes_int64_min",
        "tests/test_text.py::test_parse_units",
        "tests/test_text.py::test_to_millis_rounds_half_to_even",
    ]
    rv = {c["name"].split("::")[1]: c for c in cells[(RV, "project:numcast")]["cases"]}
    bad = {n: c for n, c in rv.items() if c["status"] != "passed"}
    assert list(bad) == ["test_nan_becomes_int64_min"], {n: c["message"][:300] for n, c in bad.items()}
    assert "9223372036854775807 == -9223372036854775808" in bad["test_nan_becomes_int64_min"]["message"]
    assert bad["test_nan_becomes_int64_min"]["triage"]["class"] == "target-only"
    assert len(rv) == 4

    facts = {t["name"]: t["facts"] for t in data["targets"]}
    assert facts[RV]["packages"]["numcast"] == "0.1.0"  # the project's own wheel, installed in the target
    assert facts[RV]["packages"]["numpy"].startswith("2.")  # Debian's python3-numpy

    for target in ("native", RV):
        cell = cells[(target, "project:lacking")]
        assert cell["verdict"] == "not-run"
        assert f'"{NOWHERE}>=1" has nothing for this target: nothing' in cell["message"]
        assert cell["cases"] == []
    assert sorted(p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*")) == before  # built from a copy
