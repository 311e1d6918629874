"""The probe's bytecode, compiled on the host by a native interpreter, is what the riscv64 target's Python loads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from harness import probe_ship
from harness.config import load_project
from harness.images import CachedImage
from harness.targets import make_target
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chroot]


def test_the_riscv64_target_loads_the_probe_compiled_natively(debian_image: CachedImage) -> None:
    target = make_target(load_project(ROOT).targets["debian-trixie-riscv64"], packages=[])
    target.start()
    try:
        tag = target.run(["python3", "-c", "import sys; print(sys.implementation.cache_tag)"], timeout=120)
        assert tag.ok, tag.stderr
        if tag.stdout.strip() not in {i.tag for i in probe_ship.interpreters()}:
            pytest.skip(f"no native interpreter of {tag.stdout.strip()} is cached (an image build fetches one)")
        base = target.make_temp_dir()
        with tempfile.TemporaryDirectory() as tmp:
            probe_ship.stage(Path(tmp) / "probe", facts=True)
            target.put(Path(tmp) / "probe", f"{base}/probe")
        env = {"PYTHONPATH": f"{base}/probe", "PYTHONDONTWRITEBYTECODE": "1"}
        code = "import leapfrog_facts; print(leapfrog_facts.collect([])['arch'])"
        done = target.run(["python3", "-v", "-c", code], timeout=300, env=env)
        assert done.ok, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "riscv64"
        # pytest compiles the -p plugin itself from source (to rewrite its asserts): it is a shim, its body is not.
        suite = ["-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q", f"{base}/probe/leapfrog_suite.py"]
        run = target.run(["python3", "-v", "-m", "pytest", *suite], timeout=300, env=env)
        assert run.exit_code == 5, run.stdout[-2000:]  # no tests collected: the plugin loaded, nothing failed
        for module in ("leapfrog_hooks", "leapfrog_facts", "leapfrog_vector_facts"):
            pyc = f"{base}/probe/__pycache__/{module}.{tag.stdout.strip()}.pyc"
            assert f"# code object from '{pyc}'" in done.stderr + run.stderr, module
    finally:
        target.stop()
