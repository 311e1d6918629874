"""The Target contract (tests/contract_body.py) on the real chroot, docker and qemu-vm backends.

Each backend's target is the project's own file, started once per module on
the shared Debian trixie riscv64 image (docker on a live engine, qemu-vm booted
under TCG: a minute or two).  native and ssh run the same body in the unit tier
(tests/unit/test_contract.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from harness.config import load_project
from harness.images import CachedImage
from harness.targets import Target, make_target
from tests.contract_body import SERVE_PORT, TARGET_ENV, Contract
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

BACKENDS = [
    pytest.param("debian-trixie-riscv64", id="chroot", marks=pytest.mark.chroot),
    pytest.param("debian-trixie-riscv64-rvv", id="chroot-rvv", marks=pytest.mark.chroot),
    pytest.param("debian-trixie-riscv64-docker", id="docker", marks=pytest.mark.docker),
    pytest.param("debian-trixie-riscv64-vm", id="qemu-vm", marks=pytest.mark.qemu_vm),
]


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    cfg = load_project(ROOT).targets[request.param]
    request.getfixturevalue("debian_image")  # build or reuse the shared image first
    if cfg.kind == "docker":
        request.getfixturevalue("engine")  # a live Docker engine (started if none answers)
    t = make_target(dataclasses.replace(cfg, env={**cfg.env, **TARGET_ENV}), progress=lambda m: print(m, flush=True))
    t.requested_ports = [SERVE_PORT]  # as a suite that serves on it asks
    t.start()
    try:
        yield t
    finally:
        t.stop()


# Defined before the contract's class, so they run while the target is up (the contract ends with stop()).


def test_riscv64_facts_match_the_target_file(target: Target) -> None:
    facts = target.facts()
    assert facts.arch == "riscv64"
    assert facts.os_id == "debian"
    assert ("v" in facts.extensions) == ("v=true" in target.config.options.cpu)
    assert facts.emulation == ("qemu-system" if target.kind == "qemu-vm" else "qemu-user")


class TestContract(Contract):
    pass


def test_shared_image_serves_every_backend(debian_image: CachedImage) -> None:
    assert (debian_image.rootfs / "usr" / "bin" / "python3").exists()
