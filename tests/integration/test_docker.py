"""The docker backend against a real dockerd and the real Debian riscv64 image.

The engine is the local one (DOCKER_HOST, else /var/run/docker.sock); when none
answers and we are root with ``dockerd`` installed, one is started for the
session (log in /tmp/dockerd.log) and stopped after.  The image is the shared
``debian_image`` every integration test uses, imported into Docker once.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.config import TargetConfig, load_project, load_suite
from harness.errors import TargetError
from harness.images import CachedImage
from harness.images.docker_archive import image_tag, load_archive
from harness.model import Verdict
from harness.plan import make_plan
from harness.runner import Runner, RunOptions
from harness.targets import make_target
from harness.targets.docker import DockerTarget
from tests.conftest import with_options
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TARGET = "debian-trixie-riscv64-docker"


def our_containers(client: Any) -> set[str]:
    """Containers this test process (any target) created and has not removed."""
    found = client.api.containers(all=True, filters={"label": ["leapfrog=1", f"leapfrog.pid={os.getpid()}"]})
    return {c["Id"] for c in found}


@pytest.fixture(scope="module")
def config() -> TargetConfig:
    return load_project(ROOT).targets[TARGET]


def started(cfg: TargetConfig, image: CachedImage, progress: list[str] | None = None) -> DockerTarget:
    t = make_target(cfg, packages=list(image.meta.packages), progress=(progress or []).append)
    assert isinstance(t, DockerTarget)
    t.start()
    return t


@pytest.fixture(scope="module")
def target(debian_image: CachedImage, engine: Any, config: TargetConfig) -> Iterator[DockerTarget]:
    messages: list[str] = []
    begin = time.monotonic()
    t = started(config, debian_image, messages)
    print(f"\ndocker target up in {time.monotonic() - begin:.1f}s, timings {t.timings}; {messages}")
    try:
        yield t
    finally:
        t.stop()
        assert our_containers(engine) == set()


# --------------------------------------------------------------------------- image


def test_image_is_riscv64_tagged_by_key_and_reused(
    target: DockerTarget, debian_image: CachedImage, engine: Any, config: TargetConfig
) -> None:
    tag = image_tag(debian_image.meta)
    assert target.image_ref == tag
    info = engine.api.inspect_image(tag)
    assert (info["Os"], info["Architecture"]) == ("linux", "riscv64")
    assert info["Config"]["Labels"]["leapfrog.image"] == debian_image.meta.name
    messages: list[str] = []
    again = started(config, debian_image, messages)
    try:
        assert again.image_ref == tag
        assert not [m for m in messages if "importing" in m]
        assert again.timings["image"] < 30
    finally:
        again.stop()


# --------------------------------------------------------------------------- commands


def test_a_missing_program_exits_127(target: DockerTarget) -> None:
    missing = target.run(["no-such-program"], timeout=60)
    assert missing.exit_code == 127
    assert "not found" in missing.stderr


def test_a_missing_cwd_exits_125_naming_it(target: DockerTarget) -> None:
    bad = target.run(["pwd"], timeout=60, cwd="/no/such/folder")
    assert bad.exit_code == 125
    assert "/no/such/folder" in bad.stderr


def test_put_files_are_owned_by_root(target: DockerTarget, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    base = target.make_temp_dir()
    target.put(tmp_path / "a.txt", f"{base}/a.txt")
    owners = target.run(["stat", "-c", "%u:%g", f"{base}/a.txt"], timeout=60)
    assert owners.stdout.strip() == "0:0"
    target.remove_tree(base)


def test_get_of_a_missing_path_says_it_is_not_in_the_container(target: DockerTarget, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="does not exist in the container"):
        target.get("/no/such/file", tmp_path / "x")


def test_timeout_kills_a_child_that_left_the_process_group(target: DockerTarget) -> None:
    """Every process in the container goes, not only the command's group (the contract kills the group)."""
    done = target.run(["sh", "-c", "setsid sleep 300 & wait"], timeout=3)
    assert done.timed_out
    left = target.run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"], timeout=60).stdout
    assert "sleep infinity" in left  # the listing itself worked
    assert "sleep 300" not in left


def test_background_children_end_with_their_command(target: DockerTarget) -> None:
    start = time.monotonic()
    done = target.run(["sh", "-c", "sleep 303 & echo started"], timeout=60)
    assert done.stdout == "started\n"
    assert time.monotonic() - start < 20
    left = target.run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"], timeout=60).stdout
    assert "sleep 303" not in left


def test_facts_name_the_docker_image(target: DockerTarget) -> None:
    assert target.facts().extra["docker_image"] == target.image_ref


def test_cpu_option_turns_on_the_vector_extension(debian_image: CachedImage, engine: Any, config: TargetConfig) -> None:
    t = started(with_options(config, cpu="rv64,v=true,vlen=256,vext_spec=v1.0"), debian_image)
    try:
        facts = t.facts()
        assert "v" in facts.extensions
        assert facts.cpu_model == "rv64,v=true,vlen=256,vext_spec=v1.0"
    finally:
        t.stop()


def test_containers_of_a_killed_run_are_removed_at_the_next_start(
    target: DockerTarget, debian_image: CachedImage, engine: Any, config: TargetConfig
) -> None:
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process can have it
    labels = dict(engine.api.inspect_container(target.container_id)["Config"]["Labels"])
    labels.update({"leapfrog.pid": str(dead_pid), "leapfrog.run": "left-by-kill-9"})
    orphan = engine.api.create_container(target.image_ref, command=["sleep", "infinity"], labels=labels)["Id"]
    t = started(config, debian_image)
    try:
        with pytest.raises(docker.errors.NotFound):
            engine.api.inspect_container(orphan)
        assert target.container_id is not None
        assert engine.api.inspect_container(target.container_id)["State"]["Running"]  # alive owner: kept
    finally:
        t.stop()
        with contextlib.suppress(docker.errors.NotFound):
            engine.api.remove_container(orphan, force=True)


# --------------------------------------------------------------------------- isolation and limits


def test_container_is_unprivileged_without_network_or_mounts(target: DockerTarget, engine: Any) -> None:
    assert target.container_id is not None
    info = engine.api.inspect_container(target.container_id)
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
    assert not host.get("Binds")
    assert info["Mounts"] == []
    labels = info["Config"]["Labels"]
    assert labels["leapfrog"] == "1"
    assert labels["leapfrog.run"] == target.run_id
    nets = target.run(["ls", "/sys/class/net"], timeout=60)
    assert nets.stdout.split() == ["lo"]
    with pytest.raises(TargetError, match=r"port 8000 inside the container is not published"):
        target.forward(8000)


def test_limits_network_and_a_published_port(debian_image: CachedImage, engine: Any, config: TargetConfig) -> None:
    cfg = with_options(config, cpus=1.5, memory="1g", network=True, ports=[8000])
    t = started(cfg, debian_image)
    try:
        assert t.container_id is not None
        host = engine.api.inspect_container(t.container_id)["HostConfig"]
        assert (host["NanoCpus"], host["Memory"], host["NetworkMode"]) == (1_500_000_000, 1 << 30, "bridge")
        errors: list[BaseException] = []

        def serve() -> None:
            with contextlib.suppress(TargetError):  # the container goes away under it at the end
                t.run(["python3", "-m", "http.server", "8000", "--directory", "/etc"], timeout=120)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        addr, port = t.forward(8000)
        assert addr == "127.0.0.1"
        body = b""
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://{addr}:{port}/os-release", timeout=5) as resp:
                    body = resp.read()
                break
            except OSError as e:
                errors.append(e)
                time.sleep(0.5)
        assert b"Debian" in body, errors[-3:]
    finally:
        t.stop()
    server.join(30)
    assert not server.is_alive()


def test_docker_rm_mid_command_is_a_target_error(debian_image: CachedImage, engine: Any, config: TargetConfig) -> None:
    t = started(config, debian_image)
    try:
        cid = t.container_id
        assert cid is not None
        killer = threading.Timer(3, lambda: engine.api.remove_container(cid, force=True))
        killer.start()
        with pytest.raises(TargetError, match="disappeared"):
            t.run(["sleep", "60"], timeout=120)
        killer.join()
    finally:
        t.stop()  # the container is gone already: still safe
    assert cid not in our_containers(engine)


# --------------------------------------------------------------------------- the runner


HOST_DRIVEN = """
def test_target_fixture(target):
    done = target.run(["uname", "-m"], timeout=60)
    assert done.stdout.strip() == "riscv64"
"""


def test_runner_runs_suites_and_leaves_no_container(
    debian_image: CachedImage, engine: Any, config: TargetConfig, tmp_path: Path, write_suite: Any
) -> None:
    before = our_containers(engine)
    quick = load_suite(ROOT / "tests" / "integration" / "suites" / "quick")
    host = load_suite(write_suite("hostdriven", {"test_h.py": HOST_DRIVEN}, toml='kind = "host-driven"\n'))
    plan = make_plan([config], [quick, host])
    run = Runner(plan, RunOptions(out=tmp_path / "out")).execute()
    cells = {c.suite: c for c in run.cells}
    for cell in cells.values():
        assert cell.verdict is Verdict.COMPATIBLE, (cell.message, cell.log[-2000:])
    assert len(cells["quick"].cases) == 2
    info = run.target(TARGET)
    assert info is not None
    assert info.facts is not None
    assert info.facts.arch == "riscv64"
    assert our_containers(engine) == before
    docker_ps = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=leapfrog", "--filter", f"label=leapfrog.pid={os.getpid()}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(docker_ps.stdout.split()) == {c[:12] for c in before}


# --------------------------------------------------------------------------- docker save archives


MINI = [
    "usr/bin/dash",
    "usr/bin/sleep",
    "usr/bin/cat",
    "usr/lib/ld-linux-riscv64-lp64d.so.1",
    "usr/lib/riscv64-linux-gnu/libc.so.6",
]


def test_image_tarball_is_loaded_once(
    debian_image: CachedImage, engine: Any, config: TargetConfig, tmp_path: Path
) -> None:
    """An .tar.xz `docker save` archive, as openEuler publishes its riscv64 container."""
    mini = tmp_path / "mini"
    for rel in MINI:
        (mini / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(debian_image.rootfs / rel, mini / rel)
    for link, to in (("bin", "usr/bin"), ("lib", "usr/lib"), ("usr/bin/sh", "dash")):
        (mini / link).symlink_to(to)
    for folder in ("tmp", "proc", "dev", "sys", "etc"):
        (mini / folder).mkdir()
    (mini / "etc" / "os-release").write_text('ID="openEuler"\nNAME="stand-in"\n')
    tag = f"leapfrog-test/mini:{os.getpid()}"
    archive = b"".join(load_archive(mini, tag, platform="linux/riscv64", labels={"leapfrog": "1"}))
    # Load it once so `docker save` writes a real engine-made archive, then forget the image.
    engine.api.load_image(io.BytesIO(archive))
    saved = b"".join(engine.api.get_image(tag))
    engine.api.remove_image(tag, force=True)
    tarball = tmp_path / "mini-docker.riscv64.tar.xz"
    tarball.write_bytes(lzma.compress(saved, preset=1))
    with tarfile.open(tarball) as tar:
        assert "manifest.json" in tar.getnames()

    cfg = with_options(config, image_tarball=str(tarball))
    try:
        for attempt in range(2):
            messages: list[str] = []
            t = make_target(cfg, progress=messages.append)
            t.start()
            try:
                assert t.image_ref == tag  # type: ignore[attr-defined]
                done = t.run(["cat", "/etc/os-release"], timeout=60)
                assert "openEuler" in done.stdout
                loads = [m for m in messages if m.startswith("loading")]
                assert len(loads) == (1 if attempt == 0 else 0)
            finally:
                t.stop()
        assert engine.api.inspect_image(tag)["Architecture"] == "riscv64"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.api.remove_image(tag, force=True)


# --------------------------------------------------------------------------- hardening (issue 11)


def test_container_keeps_only_the_kept_capabilities_and_cannot_gain_privileges(
    target: DockerTarget, engine: Any
) -> None:
    from harness.targets.docker import KEPT_CAPS

    assert target.container_id is not None
    host = engine.api.inspect_container(target.container_id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(KEPT_CAPS)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 4096
    status = target.run(["cat", "/proc/self/status"], timeout=60)
    fields = dict(line.split(":\t", 1) for line in status.stdout.splitlines() if ":\t" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    # CAP_NET_RAW is bit 13, CAP_MKNOD 27, CAP_SYS_ADMIN 21, CAP_SYS_CHROOT 18: none is effective.
    cap_eff = int(fields["CapEff"], 16)
    assert all(not cap_eff & (1 << bit) for bit in (13, 18, 21, 27)), hex(cap_eff)
    assert cap_eff & (1 << 0)  # CAP_CHOWN kept: root still owns its files
    mknod = target.run(["mknod", "/tmp/null2", "c", "1", "3"], timeout=60)
    assert mknod.exit_code != 0
    assert "Operation not permitted" in mknod.stderr


FORK_STORM = """
import subprocess
started, refused = [], 0
for _ in range(80):
    try:
        started.append(subprocess.Popen(["sleep", "60"]))
    except OSError:
        refused += 1
for p in started:
    p.kill()
    p.wait()
print(len(started), refused)
"""


def test_pid_limit_stops_a_fork_storm(debian_image: CachedImage, engine: Any, config: TargetConfig) -> None:
    t = started(with_options(config, pids_limit=48), debian_image)
    try:
        storm = t.run(["python3", "-c", FORK_STORM], timeout=300)
        assert storm.ok, storm.stderr
        # qemu-user may say "Bail out!" on stdout when it cannot start a thread: read the counts line.
        started_ok, refused = map(int, re.findall(r"^(\d+) (\d+)$", storm.stdout, re.MULTILINE)[-1])
        assert refused > 0, storm.stdout
        assert started_ok < 48, storm.stdout
    finally:
        t.stop()


def test_the_sweep_spares_a_container_of_another_host_sharing_the_engine(
    target: DockerTarget, debian_image: CachedImage, engine: Any, config: TargetConfig
) -> None:
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    assert target.container_id is not None
    labels = dict(engine.api.inspect_container(target.container_id)["Config"]["Labels"])
    # Same hostname and a pid that is free here, but another host's id: not ours to remove.
    labels.update({"leapfrog.host": "another-host-0123456789ab", "leapfrog.pid": str(dead_pid)})
    theirs = engine.api.create_container(target.image_ref, command=["sleep", "infinity"], labels=labels)["Id"]
    try:  # removed whatever happens, or it stays in the engine and fails later tests' "nothing left" checks
        t = started(config, debian_image)
        try:
            assert engine.api.inspect_container(theirs)["Id"] == theirs
        finally:
            t.stop()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            engine.api.remove_container(theirs, force=True)
