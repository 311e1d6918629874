"""``--case-timeout auto`` on real targets: native (the baseline) and the riscv64 qemu-user chroot.

Two runs of ``suites/autotimeout`` share one history database.  The first,
with a fixed ``--case-timeout 2``, times out the CPU loop under qemu-user and
records the slowdown measured on the reference case.  The second, with
``--case-timeout auto``, runs the baseline first and gives the loop its
baseline duration × that recorded slowdown × 3: the loop passes, and
results.json records both timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness import autotimeout
from tests.integration.conftest import ROOT, cache_env

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
SUITES = Path(__file__).parent / "suites"
RV = "debian-trixie-riscv64"
LOOP = "test_autotimeout.py::test_cpu_loop"


def leapfrog_run(cache: Path, out: Path, db: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    argv = [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--suites-dir", str(SUITES), "run"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "-t", f"{RV},native", "-s", "autotimeout", "--out", str(out), "--db", str(db), *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=cache_env(cache),
    )
    print(f"leapfrog run {' '.join(options)} took {time.monotonic() - started:.1f} s")
    data = json.loads((out / "results.json").read_text())
    cases = {(c["target"], k["name"]): k for c in data["cells"] for k in c["cases"]}
    return done, cases


def test_auto_timeout_turns_a_fixed_timeout_into_a_pass(private_cache: Path, tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    done, fixed = leapfrog_run(private_cache, tmp_path / "fixed", db, "--case-timeout", "2")
    assert done.returncode == 1, done.stderr[-3000:]
    assert fixed[(RV, LOOP)]["status"] == "timeout", fixed[(RV, LOOP)]["message"]
    assert "case exceeded 2 s" in fixed[(RV, LOOP)]["message"]
    assert "timeout" not in fixed[(RV, LOOP)]  # a fixed timeout is not recorded per case

    done, auto = leapfrog_run(private_cache, tmp_path / "auto", db, "--case-timeout", "auto")
    assert done.returncode == 0, done.stderr[-3000:]
    # The baseline ran first (listed second on the command line), its timeouts fixed.
    assert done.stderr.index("native / autotimeout: running") < done.stderr.index(f"{RV} / autotimeout: running")
    assert "timeout" not in auto[("native", LOOP)]
    loop = auto[(RV, LOOP)]
    assert loop["status"] == "passed", loop["message"]
    t = loop["timeout"]
    base = auto[("native", LOOP)]["duration"]
    print(f"baseline {base:.2f} s, riscv64 {loop['duration']:.2f} s, {t['note']}")
    assert t["source"] == "auto"
    assert t["baseline"] == "native"
    assert t["baseline_duration"] == base
    assert t["slowdown_from"] == "history"  # the fixed run's reference case, recorded in db
    assert t["slowdown"] > 3
    assert t["margin"] == autotimeout.MARGIN
    assert t["seconds"] == autotimeout.bounded(base, t["slowdown"], cap=300)[0]
    assert t["seconds"] > loop["duration"] > 2  # the fixed 2 s was not enough; the auto timeout was
    # The note gives both timings: the baseline's and this target's.
    assert f"{base:.3g} s on native" in t["note"]
    assert f"ran {loop['duration']:.3g} s here" in t["note"]
    html = (tmp_path / "auto" / "index.html").read_text(encoding="utf-8")
    assert f"ran {loop['duration']:.3g} s here" in html
