"""Integration fixtures: real images, real emulation.

One Debian trixie riscv64 image holds the packages of every suite and every
backend, so chroot, docker and qemu-vm tests share a single build per CI run
(and none at all when the user cache already has it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.config import ImageSpec, load_project
from harness.images import CachedImage, ensure_image
from harness.targets import KINDS, backend_class
from harness.targets.base import Target

ROOT = Path(__file__).resolve().parents[2]

# suites/ holds suites that leapfrog runs inside targets (one of them segfaults on
# purpose), projects/ the --project folders of test_project.py: they are data for
# these tests, never collected by the outer pytest.
collect_ignore = ["suites", "projects"]


def leapfrog(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The ``leapfrog`` CLI of this checkout, as a user runs it (a subprocess; output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "--root", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env=env,
    )


def all_debian_packages() -> list[str]:
    project = load_project(ROOT)
    pkgs: set[str] = set()
    for suite in project.suites.values():
        pkgs.update(suite.packages.debian)
    for kind in KINDS:
        pkgs.update(backend_class(kind).image_packages.get("debian", []))
    return sorted(pkgs)


def require_chroot_host() -> None:
    if os.geteuid() != 0:
        pytest.skip("chroot tests need root")
    for tool in ("mmdebstrap", "qemu-riscv64-static"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run scripts/setup-host.sh)")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-riscv64").exists():
        pytest.skip("binfmt for riscv64 is not registered (run scripts/setup-host.sh)")


@pytest.fixture(scope="session")
def debian_image() -> CachedImage:
    """The shared Debian trixie riscv64 image (built once, then cached)."""
    require_chroot_host()
    return ensure_image(ImageSpec(), all_debian_packages(), progress=lambda m: print(m, flush=True))


@pytest.fixture
def private_cache(debian_image: CachedImage, tmp_path: Path) -> Path:
    """A cache of this test's own, reached through a link (as ``/root -> /var/roothome``), sharing the built images.

    Its ``runs/`` is private, so a test asserts on its own work folders only and
    another leapfrog on the host cannot make it fail.  Pass it as
    ``LEAPFROG_CACHE`` (see :func:`cache_env`).
    """
    real = tmp_path / "cache-real"
    real.mkdir()
    (real / "images").symlink_to(debian_image.path.parent)
    link = tmp_path / "cache"
    link.symlink_to(real)
    return link


def cache_env(cache: Path) -> dict[str, str]:
    """The environment of a leapfrog subprocess that uses ``cache``."""
    return {**os.environ, "LEAPFROG_CACHE": str(cache)}


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A docker SDK client of a live engine; starts dockerd when none answers (root only)."""
    started: subprocess.Popen[bytes] | None = None
    answers = subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0
    if not answers and not os.environ.get("DOCKER_HOST"):
        if shutil.which("dockerd") is None or os.geteuid() != 0:
            pytest.skip("no Docker engine answers and dockerd cannot be started here (apt-get install docker.io)")
        with open("/tmp/dockerd.log", "ab") as log:
            started = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        for _ in range(120):
            if subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.5)
    client = docker.from_env(timeout=300)
    for _ in range(60):
        if _ping(client):
            break
        time.sleep(0.5)
    else:
        client.close()
        pytest.fail("the Docker engine does not answer; see /tmp/dockerd.log")
    try:
        yield client
    finally:
        client.close()
        if started is not None:
            started.terminate()
            started.wait(60)


def runs_in_a_folder_without_env(t: Target) -> None:
    """With /usr/bin/env gone from ``t``'s root, a command still runs in an absolute and a relative folder, env kept."""
    env_program = t.local_path("/usr/bin/env")
    assert env_program is not None
    env_program.unlink()  # in the overlay only: the cached image keeps it
    here = t.run(["sh", "-c", 'pwd; echo "$LEAPFROG_X"'], timeout=120, cwd="/tmp", env={"LEAPFROG_X": "kept"})
    assert (here.exit_code, here.stdout) == (0, "/tmp\nkept\n"), here.stderr
    assert t.run(["pwd"], timeout=120, cwd="tmp").stdout == "/tmp\n"  # relative to the root's /
