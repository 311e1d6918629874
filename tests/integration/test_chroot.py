"""The walking skeleton for real: the platform suite on native and riscv64 chroots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import junitparser
import pytest

from harness.config import load_project
from harness.images import CachedImage
from harness.targets import make_target
from harness.targets.chroot import mounts_under, pids_rooted_at, runs_dir
from tests.integration.conftest import ROOT, leapfrog, runs_in_a_folder_without_env

pytestmark = [pytest.mark.integration, pytest.mark.chroot]


@pytest.fixture(scope="module")
def platform_report(debian_image: CachedImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = leapfrog(
        "run",
        "--target",
        "native,debian-trixie-riscv64,debian-trixie-riscv64-rvv",
        "--suite",
        "platform",
        "--out",
        str(out),
        "--jobs",
        "2",
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_results_json(platform_report: Path) -> None:
    data = json.loads((platform_report / "results.json").read_text())
    targets = {t["name"]: t for t in data["targets"]}
    assert targets["debian-trixie-riscv64"]["facts"]["arch"] == "riscv64"
    assert targets["debian-trixie-riscv64"]["facts"]["isa"].startswith("rv64")
    assert "v" in targets["debian-trixie-riscv64-rvv"]["facts"]["extensions"]
    assert "v" not in targets["debian-trixie-riscv64"]["facts"]["extensions"]
    assert targets["native"]["facts"]["arch"] == "x86_64"
    cells = {c["target"]: c for c in data["cells"]}
    names = {t: sorted(c["name"] for c in cells[t]["cases"]) for t in cells}
    assert len(names["debian-trixie-riscv64"]) >= 25
    assert names["debian-trixie-riscv64"] == names["native"] == names["debian-trixie-riscv64-rvv"]
    for cell in cells.values():
        assert cell["verdict"] == "compatible", cell["message"]
        assert all(c["status"] in ("passed", "skipped", "xfailed") for c in cell["cases"])


def test_junit_per_target(platform_report: Path) -> None:
    for name in ("native", "debian-trixie-riscv64", "debian-trixie-riscv64-rvv"):
        xml = junitparser.JUnitXml.fromfile(str(platform_report / f"junit-{name}.xml"))
        (suite,) = list(xml)
        assert suite.tests >= 25
        assert suite.failures == 0
        assert suite.errors == 0


def test_html_matrix(platform_report: Path) -> None:
    html = (platform_report / "index.html").read_text()
    assert "debian-trixie-riscv64-rvv" in html
    assert "compatible" in html
    assert "×" in html  # a slowdown against native is shown


def test_second_run_builds_nothing(platform_report: Path, tmp_path: Path) -> None:
    """With the image cached, mmdebstrap is never called (a poisoned one on PATH proves it)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mmdebstrap").write_text("#!/bin/sh\necho 'mmdebstrap must not run' >&2\nexit 99\n")
    (fake / "mmdebstrap").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    done = leapfrog("run", "-t", "debian-trixie-riscv64", "-s", "platform", "--out", str(tmp_path / "r"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mmdebstrap must not run" not in done.stderr


def test_stop_leaves_no_mount_or_process(private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(private_cache))  # its own runs/: asserts on this target only
    cfg = load_project(ROOT).targets["debian-trixie-riscv64"]
    t = make_target(cfg)
    t.start()
    workdir = t.workdir  # type: ignore[attr-defined]
    assert workdir is not None
    assert mounts_under(workdir)
    root = t.root  # type: ignore[attr-defined]
    t.run(["sh", "-c", "sleep 600 & exit 0"], timeout=60)
    assert pids_rooted_at(root) == []  # run() leaves nothing behind
    t.stop()
    assert mounts_under(workdir) == []
    assert not workdir.exists()
    assert list(runs_dir().iterdir()) == []
    assert runs_dir() == private_cache.resolve() / "runs"


def test_a_cwd_needs_no_env_program_and_keeps_every_behaviour(
    private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root changes folder from the host side: a root without /usr/bin/env still runs commands in a folder."""
    monkeypatch.setenv("LEAPFROG_CACHE", str(private_cache))
    t = make_target(load_project(ROOT).targets["debian-trixie-riscv64"])
    t.start()
    try:
        runs_in_a_folder_without_env(t)
        missing = t.run(["pwd"], timeout=120, cwd="/no/such/folder")
        assert missing.exit_code == 125
        assert "/no/such/folder" in missing.stderr
        assert t.run(["no-such-program"], timeout=120, cwd="/tmp").exit_code == 127
        late = t.run(["sh", "-c", "sleep 600 & sleep 600"], timeout=2, cwd="/tmp")
        assert late.timed_out
        assert pids_rooted_at(t.root) == []  # type: ignore[attr-defined]
    finally:
        t.stop()
