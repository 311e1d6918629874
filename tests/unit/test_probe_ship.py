"""The probe folder a cell ships: its files under their names in the target, with bytecode the host compiled.

Run for real on the host's Python: it loads the probe from the ``.pyc`` the
host made, and compiles from source when the source next to it changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import probe_ship
from harness.cell import CellRunner
from harness.config import TargetConfig, load_suite
from harness.plan import make_plan
from harness.probe import FACTS_FILES, PLUGIN_FILE
from harness.runner import RunOptions
from harness.targets.native import NativeTarget

TAG = sys.implementation.cache_tag


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEAPFROG_CACHE", str(cache))
    return cache


def loaded_from(folder: Path, module: str) -> str:
    """Where the host's Python took ``module``'s code from, importing it from ``folder`` as the target does."""
    env = {**os.environ, "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-v", "-c", f"import {module}"], env=env, capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("# code object from") and module in x]
    return line.removeprefix("# code object from ").strip("'")  # a .pyc's path is quoted, a source's not


def test_the_probe_is_loaded_from_bytecode_the_host_made(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe_ship.stage(probe, facts=True)
    assert {p.name for p in probe.glob("*.py")} == set(probe_ship.probe_files(facts=True))
    assert (probe / "leapfrog_facts.py").read_bytes() == FACTS_FILES["leapfrog_facts.py"].read_bytes()
    for module in ("leapfrog_probe", "leapfrog_session", "leapfrog_facts", "leapfrog_vector_facts"):
        assert loaded_from(probe, module) == str(probe / "__pycache__" / f"{module}.{TAG}.pyc")
    assert not (tmp_path / "probe2").exists()
    probe_ship.stage(tmp_path / "probe2", facts=False)
    assert not list((tmp_path / "probe2").glob("leapfrog_*facts*"))


def test_bytecode_of_another_source_is_not_used(tmp_path: Path) -> None:
    """Checked-hash bytecode: the target's Python compiles the source it has when the .pyc is not of it."""
    probe = tmp_path / "probe"
    probe_ship.stage(probe, facts=False)
    with (probe / "leapfrog_probe.py").open("a") as f:
        f.write("\nCHANGED = True\n")
    assert loaded_from(probe, "leapfrog_probe") == str(probe / "leapfrog_probe.py")


def test_compiled_files_are_cached_by_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_cache: Path) -> None:
    probe_ship.stage(tmp_path / "first", facts=False)
    assert len(list(own_cache.glob(f"probe-pyc/{TAG}-*/*.pyc"))) == len(probe_ship.probe_files(facts=False))

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again although cached")

    monkeypatch.setattr(subprocess, "run", no_compiling)
    probe_ship.stage(tmp_path / "second", facts=False)
    assert (tmp_path / "second" / "__pycache__" / f"leapfrog_probe.{TAG}.pyc").is_file()
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "leapfrog_probe.py").write_text(PLUGIN_FILE.read_text() + "\nCHANGED = True\n")
    with pytest.raises(AssertionError, match="compiled again"):
        probe_ship.compiled(probe_ship.interpreters()[0], [changed / "leapfrog_probe.py"])


def fake_native(cache: Path, name: str, *, stale: bool = False) -> None:
    """A native copy (harness.images.native_copy) whose python3.99 is the host's Python behind a stand-in loader."""
    root = cache / "native" / name / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/x86_64-linux-gnu").mkdir(parents=True)
    loader = root / "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    loader.write_text(f'#!/bin/sh\nshift 3\nexec {sys.executable} "$@"\n')  # drops --library-path DIR PROGRAM
    loader.chmod(0o755)
    (root / "usr/bin/python3.99").write_text("")
    (root / "usr/bin/python3").symlink_to("python3.99")
    meta = {"versions": {"libpython3.99-minimal": "3.99.1-1"}, **({"stale": True} if stale else {})}
    (cache / "native" / name / "native.json").write_text(json.dumps(meta))


def test_each_native_interpreter_compiles_under_its_own_tag(tmp_path: Path, own_cache: Path) -> None:
    fake_native(own_cache, "a-stale-one", stale=True)
    assert [i.tag for i in probe_ship.interpreters()] == [TAG]
    fake_native(own_cache, "trixie-amd64-0123")
    assert [i.tag for i in probe_ship.interpreters()] == [TAG, "cpython-399"]
    probe_ship.stage(tmp_path / "probe", facts=False)
    assert (tmp_path / "probe" / "__pycache__" / "leapfrog_probe.cpython-399.pyc").is_file()


def test_an_interpreter_that_fails_leaves_the_source_alone(tmp_path: Path) -> None:
    broken = probe_ship.Interpreter("cpython-398", "broken", ("/nonexistent/python3.98",))
    (tmp_path / "leapfrog_probe.py").write_text(PLUGIN_FILE.read_text())
    assert probe_ship.compiled(broken, [tmp_path / "leapfrog_probe.py"]) == {}


def test_a_cell_ships_the_probe_with_its_bytecode(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("tiny", {"test_t.py": "def test_t(): pass\n"})
    (cell,) = make_plan([native_config], [load_suite(folder)]).cells
    runner = CellRunner(NativeTarget(native_config), cell, RunOptions(out=tmp_path / "out"), lambda *_: None)
    runner.want_facts = ["pytest"]
    base = tmp_path / "base"
    base.mkdir()
    runner.prepare(str(base))
    shipped = {p.name for p in (base / "probe").iterdir()}
    assert set(FACTS_FILES) | {"leapfrog_probe.py", "leapfrog_session.py", "__pycache__"} <= shipped
    pyc = base / "probe" / "__pycache__" / f"leapfrog_probe.{TAG}.pyc"
    assert loaded_from(base / "probe", "leapfrog_probe") == str(pyc)


def test_in_a_pytest_run_the_plugin_body_comes_from_the_bytecode(tmp_path: Path) -> None:
    """pytest compiles a ``-p`` plugin from source to rewrite its asserts: the plugin is a shim, its body is not."""
    probe = tmp_path / "probe"
    probe_ship.stage(probe, facts=False)
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_a.py").write_text("def test_a(metrics):\n    metrics['x'] = 1\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(probe),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LEAPFROG_RESULTS": str(tmp_path / "results.jsonl"),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    argv = [sys.executable, "-v", "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q"]
    done = subprocess.run([*argv, str(tmp_path / "suite")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert f"# code object from '{probe}/__pycache__/leapfrog_hooks.{TAG}.pyc'" in done.stderr
    (case,) = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines() if '"case"' in x]
    assert case["metrics"] == {"x": 1}  # the fixtures and hooks reached pytest through the shim
