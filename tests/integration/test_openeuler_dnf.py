"""An openEuler-style chroot built with dnf, end to end, from a LOCAL STAND-IN repository.

openEuler's mirrors are not reachable here.  The repository is made by
tests/integration/openeuler_standin.py: Debian riscv64 files repackaged as RPMs
("stand-in (Debian riscv64 files repackaged, not openEuler)") with rpmbuild,
indexed with createrepo_c, served on 127.0.0.1.  It is UNSIGNED, so the target
file says ``gpgcheck = false``; openEuler's real repositories are signed and
their target files name the key (``image.gpgkey``).  What this proves: leapfrog
builds the image with ``dnf --installroot --forcearch riscv64`` from the
``everything/riscv64/<profile>/riscv64/`` layout, caches it, records what the
repository lacks as a skip with its reason, runs suites in it through the real
CLI, records its os-release, and leaves the host's rpm database alone.  Not
proved: anything about real openEuler packages (see docs/openeuler.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import ImageSpec
from harness.errors import ImageError
from harness.images import CachedImage, dnf_rootfs
from tests.integration import openeuler_standin
from tests.integration.conftest import ROOT, require_chroot_host

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

SUITES = Path(__file__).parent / "suites"
RELEASE = "24.03-LTS-SP3"
TARGET = "oe-standin-rva23"
#: What dnf or rpm would write on the host if they were not kept inside the image.
HOST_RPM_STATE = ("/var/lib/rpm", "/root/.rpmdb", "/var/lib/dnf", "/var/cache/dnf", "/var/log/dnf.log")


def _host_state() -> dict[str, list[tuple[str, int, float]]]:
    state = {}
    for top in HOST_RPM_STATE:
        entries = []
        for path in sorted([Path(top), *(Path(top).rglob("*") if Path(top).is_dir() else [])]):
            if path.exists():
                st = path.stat()
                entries.append((str(path), st.st_size, st.st_mtime))
        state[top] = entries
    return state


@pytest.fixture(scope="module")
def standin(debian_image: CachedImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(mirror URL on 127.0.0.1, the folder it serves): the stand-in repository for profile rva23."""
    require_chroot_host()
    for tool in ("dnf", "rpm", "rpmbuild", "createrepo_c"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install dnf rpm createrepo-c, or scripts/setup-host.sh)")
    work = tmp_path_factory.mktemp("oe-standin")
    started = time.monotonic()
    openeuler_standin.make_repo(debian_image.rootfs, work / "www", work / "rpmbuild", release=RELEASE, profile="rva23")
    print(f"stand-in repository built in {time.monotonic() - started:.1f} s")
    with openeuler_standin.serve(work / "www") as url:
        yield url, work


def _spec(url: str, profile: str = "rva23") -> ImageSpec:
    # gpgcheck = false: the stand-in is unsigned (openEuler's repositories are signed: image.gpgkey).
    return ImageSpec(distro="openeuler", release=RELEASE, profile=profile, mirror=url, gpgcheck=False)


@pytest.fixture(scope="module")
def run(standin: tuple[str, Path]) -> dict[str, Any]:
    """``leapfrog run`` of two tiny suites on the stand-in target, with a private cache; what it left behind."""
    url, work = standin
    targets = work / "targets"
    targets.mkdir()
    (targets / f"{TARGET}.toml").write_text(
        f"""kind = "chroot"
description = "openEuler-style chroot built with dnf from a local {openeuler_standin.LABEL}"
default = false

[image]
distro = "openeuler"
release = "{RELEASE}"
arch = "riscv64"
profile = "rva23"
mirror = "{url}"
gpgcheck = false  # the stand-in is unsigned; openEuler's repositories are signed (image.gpgkey)
"""
    )
    cache, out = work / "cache", work / "out"
    before = _host_state()
    argv = [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--targets-dir", str(targets)]
    argv += ["--suites-dir", str(SUITES), "run", "-t", TARGET, "-s", "oe-standin,oe-missing"]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "--out", str(out), "--no-history"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "LEAPFROG_CACHE": str(cache)},
    )
    print(f"leapfrog run took {time.monotonic() - started:.1f} s")
    data = json.loads((out / "results.json").read_text())
    (meta_file,) = (cache / "images").glob("openeuler-*/meta.json")
    return {
        "done": done,
        "data": data,
        "meta": json.loads(meta_file.read_text()),
        "image": meta_file.parent,
        "cache": cache,
        "host_before": before,
        "host_after": _host_state(),
    }


def _cells(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["suite"]: c for c in run["data"]["cells"]}


def test_the_suite_passes_in_the_chroot_dnf_built(run: dict[str, Any]) -> None:
    done = run["done"]
    assert "with dnf" in done.stderr, done.stderr[-3000:]
    cell = _cells(run)["oe-standin"]
    statuses = {k["name"].split("::")[-1]: k["status"] for k in cell["cases"]}
    assert statuses == {
        "test_python_runs_on_riscv64": "passed",
        "test_os_release_is_the_openeuler_style_stand_in": "passed",
        "test_a_child_process_runs_too": "passed",
    }, (cell["message"], done.stderr[-3000:])
    assert cell["verdict"] == "compatible", cell["message"]


def test_a_package_the_repository_lacks_is_a_skip_with_that_reason(run: dict[str, Any]) -> None:
    assert run["meta"]["missing"] == ["python3-leapfrog-absent"]
    cell = _cells(run)["oe-missing"]
    (case,) = cell["cases"]
    assert case["status"] == "skipped", case["message"][:2000]
    assert case["message"].startswith("package not available for this target: python3-leapfrog-absent")
    (target,) = run["data"]["targets"]
    assert target["facts"]["extra"]["missing_packages"] == "python3-leapfrog-absent"


def test_facts_record_the_openeuler_style_os_release_of_the_stand_in(run: dict[str, Any]) -> None:
    (target,) = run["data"]["targets"]
    facts = target["facts"]
    assert facts["os_id"] == "openEuler"
    assert facts["os_version"] == "24.03"
    assert "stand-in (Debian riscv64 files repackaged, not openEuler)" in facts["os_name"]
    assert facts["arch"] == "riscv64"
    assert facts["emulation"] == "qemu-user"


def test_the_image_is_cached_by_repository_profile_and_packages(
    run: dict[str, Any], standin: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = run["meta"]
    url, _ = standin
    assert meta["mirror"] == f"{url}/openEuler-{RELEASE}/everything/riscv64/rva23/riscv64/"
    assert {"coreutils", "python3", "python3-pytest", "python3-leapfrog-absent"} <= set(meta["packages"])
    rootfs = run["image"] / "rootfs"
    assert (rootfs / "var/lib/rpm/rpmdb.sqlite").exists()  # openEuler's place for the rpm database
    assert not (rootfs / "var/cache/dnf").exists()
    # The same request again finds the image and builds nothing; the other profile is another repository.
    monkeypatch.setenv("LEAPFROG_CACHE", str(run["cache"]))
    again = dnf_rootfs.ensure_image(_spec(url), ["python3-pytest", "python3-leapfrog-absent"])
    assert (again.meta.key, again.meta.built) == (meta["key"], meta["built"])
    assert dnf_rootfs.missing_packages(_spec(url), ["python3-leapfrog-absent", "python3"]) == [
        "python3-leapfrog-absent"
    ]
    assert dnf_rootfs.missing_packages(_spec(url, "rva20"), ["python3-leapfrog-absent"]) == []  # no rva20 image


def test_the_hosts_rpm_database_is_never_touched(run: dict[str, Any]) -> None:
    assert run["host_after"] == run["host_before"]


def test_a_profile_the_mirror_lacks_is_named_in_the_error(standin: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = standin
    with pytest.raises(ImageError) as e:
        dnf_rootfs.build_rootfs(_spec(url, "rva20"), ["python3"], tmp_path / "root")
    message = str(e.value)
    assert "everything/riscv64/rva20/riscv64/" in message
    assert "check image.mirror, image.release and image.profile" in message, message[:2000]
    assert not (tmp_path / "root").exists()


def test_an_unreachable_mirror_is_named_in_the_error(standin: tuple[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ImageError) as e:
        dnf_rootfs.build_rootfs(_spec("http://127.0.0.1:9"), ["python3"], tmp_path / "root")
    message = str(e.value)
    assert "reachable from this host" in message, message[:2000]
    assert not (tmp_path / "root").exists()
