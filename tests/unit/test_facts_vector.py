"""vector_facts.py: numpy's BLAS and SIMD, the BLAS loaded at run time, threadpoolctl, in a forked child.

The show_config dictionaries are the ones numpy 2.2.4 (Debian trixie riscv64,
reference BLAS) and numpy 2.4 (a PyPI wheel with scipy-openblas) returned.
"""

from __future__ import annotations

import ctypes.util
import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import harness.probe.vector_facts as vector_mod
from harness.probe import FACTS_FILES

DEBIAN_RISCV64 = {
    "Build Dependencies": {
        "blas": {"name": "blas", "found": True, "version": "3.12.1", "openblas configuration": "unknown"},
        "lapack": {"name": "lapack", "found": True, "version": "3.12.1"},
    },
    "SIMD Extensions": {"baseline": [], "found": ["RVV"], "not found": []},
}
WHEEL_X86 = {
    "Build Dependencies": {
        "blas": {
            "name": "scipy-openblas",
            "version": "0.3.31.188.0",
            "openblas configuration": "OpenBLAS 0.3.31.188.0  USE64BITINT DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64",  # noqa: E501
        }
    },
    "SIMD Extensions": {"baseline": ["X86_V2"], "found": ["X86_V3", "X86_V4"], "not found": ["AVX512_SPR"]},
}
MAPS = """\
7f0000000000-7f0000001000 r-xp 00000000 08:01 1234 /usr/lib/riscv64-linux-gnu/libc.so.6
7f0000001000-7f0000002000 r-xp 00000000 08:01 1235 /usr/lib/riscv64-linux-gnu/openblas-pthread/libblas.so.3
7f0000002000-7f0000003000 r--p 00001000 08:01 1235 /usr/lib/riscv64-linux-gnu/openblas-pthread/libblas.so.3
7f0000003000-7f0000004000 r-xp 00000000 08:01 1236 /usr/lib/riscv64-linux-gnu/liblapack.so.3
7f0000004000-7f0000005000 rw-p 00000000 00:00 0
7f0000005000-7f0000006000 r-xp 00000000 08:01 1237 /opt/numpy.libs/libscipy_openblas64_-32a4b2a6.so
7f0000006000-7f0000007000 r-xp 00000000 08:01 1238 /usr/lib/libblis.so.4 (deleted)
"""


def test_numpy_build_reads_blas_and_simd_of_show_config() -> None:
    assert vector_mod.numpy_build(DEBIAN_RISCV64) == {"numpy_blas": "blas 3.12.1", "numpy_simd": "found RVV"}
    wheel = vector_mod.numpy_build(WHEEL_X86)
    assert wheel["numpy_blas"] == (
        "scipy-openblas 0.3.31.188.0 (OpenBLAS 0.3.31.188.0 USE64BITINT DYNAMIC_ARCH NO_AFFINITY Haswell"
        " MAX_THREADS=64)"
    )
    assert wheel["numpy_simd"] == "baseline X86_V2; found X86_V3 X86_V4; not found AVX512_SPR"
    assert vector_mod.numpy_build(None) == {}
    assert vector_mod.numpy_build({"Build Dependencies": "nonsense", "SIMD Extensions": {}}) == {"numpy_simd": "none"}


def test_numpy_build_bounds_what_it_keeps() -> None:
    huge = {"Build Dependencies": {"blas": {"name": "x" * 10_000, "version": "1\n2"}}}
    text = vector_mod.numpy_build(huge)["numpy_blas"]
    assert len(text) == vector_mod.MAX_VECTOR_TEXT
    assert "\n" not in vector_mod.numpy_build({"Build Dependencies": {"blas": {"name": "a\nb"}}})["numpy_blas"]


def test_blas_libraries_are_the_blas_named_files_of_the_maps_once_each() -> None:
    assert vector_mod.blas_libraries(MAPS) == [
        "/usr/lib/riscv64-linux-gnu/openblas-pthread/libblas.so.3",
        "/opt/numpy.libs/libscipy_openblas64_-32a4b2a6.so",
        "/usr/lib/libblis.so.4 (deleted)",
    ]
    assert vector_mod.blas_libraries("") == []


def test_threadpool_text_names_api_architecture_and_threads() -> None:
    info = [
        {"user_api": "blas", "internal_api": "openblas", "num_threads": 4, "version": "0.3.29",
         "threading_layer": "pthreads", "architecture": "RISCV64_ZVL128B"},
        {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2, "version": None},
        "not a pool",
    ]  # fmt: skip
    assert vector_mod.threadpool_text(info) == (
        "blas openblas 0.3.29 RISCV64_ZVL128B pthreads 4 threads; openmp openmp 2 threads"
    )
    assert vector_mod.threadpool_text([]) == "no thread pools loaded"
    assert vector_mod.threadpool_text("nonsense") == "no thread pools loaded"


def test_a_library_without_openblas_entry_points_is_not_openblas() -> None:
    libc = ctypes.util.find_library("c")
    assert libc is not None
    assert vector_mod.openblas_runtime(libc) == ""
    assert vector_mod.openblas_runtime("/nonexistent/libopenblas.so.0") == ""


def test_vector_facts_of_this_host_name_its_blas() -> None:
    """The host's numpy, imported in the child: the keys are there and the parent never imported numpy."""
    pytest.importorskip("numpy")
    facts = vector_mod.vector_facts()
    assert "vector_facts_error" not in facts, facts
    assert facts["numpy_blas"]
    assert facts["numpy_simd"]
    assert facts["blas_library"]
    if "openblas" in facts["blas_library"].lower():
        assert facts["blas_runtime"].startswith("OpenBLAS "), facts
        assert "; core " in facts["blas_runtime"]


def test_a_child_killed_by_a_signal_is_a_fact_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")

    def illegal_instruction() -> dict[str, str]:
        faulthandler.disable()  # no traceback printed by the child
        os.kill(os.getpid(), signal.SIGILL)  # as a vector instruction on a CPU without V would raise
        return {}

    monkeypatch.setattr(vector_mod, "vector_stack", illegal_instruction)
    assert vector_mod.vector_facts() == {"vector_facts_error": "importing numpy was killed by signal 4"}


def test_a_child_that_raises_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")

    def broken() -> dict[str, str]:
        raise ImportError("libblas.so.3: cannot open shared object file")

    monkeypatch.setattr(vector_mod, "vector_stack", broken)
    assert vector_mod.vector_facts() == {
        "vector_facts_error": "numpy could not be imported: ImportError: libblas.so.3: cannot open shared object file"
    }


def test_a_child_that_hangs_is_killed_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("numpy")
    monkeypatch.setattr(vector_mod, "vector_stack", lambda: time.sleep(60))
    start = time.monotonic()
    facts = vector_mod.vector_facts(timeout=0.5)
    assert time.monotonic() - start < 10
    assert facts == {"vector_facts_error": "importing numpy took more than 0.5 s; the child was killed"}


def test_without_numpy_there_are_no_vector_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert vector_mod.vector_facts() == {}


def test_facts_run_in_the_target_as_shipped_there(tmp_path: Path) -> None:
    """facts.py, put in a folder under its target name with the vector facts next to it, runs as a script
    (Target.facts) and as the module the probe's forked child imports; alone it cannot."""
    for name, path in FACTS_FILES.items():
        shutil.copy(path, tmp_path / name)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    script = subprocess.run([sys.executable, str(tmp_path / "leapfrog_facts.py"), "pytest"], capture_output=True,
                            text=True, env=env, check=False, timeout=300)  # fmt: skip
    assert script.returncode == 0, script.stderr
    facts = json.loads(script.stdout.splitlines()[-1])
    assert facts["packages"]["pytest"]
    assert ("numpy_blas" in facts["extra"]) == _has_numpy()  # the vector facts came from the shipped module
    code = "import json, leapfrog_facts; print(json.dumps(leapfrog_facts.collect([])))"
    module = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False,
                            env={**env, "PYTHONPATH": str(tmp_path)}, timeout=300)  # fmt: skip
    assert module.returncode == 0, module.stderr
    assert json.loads(module.stdout)["arch"] == facts["arch"]
    (tmp_path / "leapfrog_vector_facts.py").unlink()
    alone = subprocess.run([sys.executable, str(tmp_path / "leapfrog_facts.py")], capture_output=True, text=True,
                           env=env, check=False, timeout=300)  # fmt: skip
    assert "leapfrog_vector_facts" in alone.stderr


def _has_numpy() -> bool:
    import importlib.util

    return importlib.util.find_spec("numpy") is not None
