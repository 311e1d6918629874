"""The chroot backend and the image cache without root: work folders, locks, links a target plants."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import images, mounts
from harness.config import ImageSpec, load_project
from harness.errors import ConfigError, ImageError, TargetError
from harness.images import cache
from harness.targets import make_target
from harness.targets.chroot import ChrootTarget, cleanup_stale, runs_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache reached through a link, with an empty fake mount table."""
    real = tmp_path / "var" / "roothome"
    real.mkdir(parents=True)
    (tmp_path / "root").symlink_to(real)
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "root"))
    info = tmp_path / "mountinfo"
    info.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
    monkeypatch.setattr(mounts, "MOUNTINFO", str(info))
    return real


def add_mount(cache_dir: Path, mnt: Path) -> None:
    with open(cache_dir.parent.parent / "mountinfo", "a") as f:
        f.write(f"2 1 0:5 / {mnt} rw - devtmpfs udev rw\n")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[ChrootTarget]:
    """A chroot target whose root is a plain folder (not started: no root needed)."""
    real = tmp_path / "real-root"
    (real / "tmp").mkdir(parents=True)
    (real / "usr").mkdir()
    t = make_target(load_project(ROOT).targets["debian-trixie-riscv64"])
    assert isinstance(t, ChrootTarget)
    t.root = real
    yield t
    t.root = None


# ------------------------------------------------------------------ cleanup of stale work folders


def hold_lock(folder: Path) -> int:
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_runs_dir_is_resolved(cache_dir: Path) -> None:
    assert runs_dir() == cache_dir / "runs"


def test_cleanup_takes_only_folders_whose_lock_is_free(cache_dir: Path) -> None:
    runs = runs_dir()
    live, dead, starting, old = (runs / n for n in ("live-1", "dead-1", "starting-1", "old-1"))
    for d in (live, dead, starting, old):
        (d / "upper").mkdir(parents=True)
    fd = hold_lock(live)  # another target, alive: it holds its lock (a new open file, as another process would)
    os.close(hold_lock(dead))  # its owner died: the kernel dropped the lock
    (old / "owner.json").write_text(json.dumps({"pid": 2**22 + 7}))  # an older leapfrog, long gone
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    try:
        cleaned = cleanup_stale()
    finally:
        os.close(fd)
    assert sorted(cleaned) == [dead, old]
    assert live.exists()
    assert starting.exists()
    assert not dead.exists()
    assert not old.exists()


def test_cleanup_tells_a_reused_pid_from_the_owner_by_its_start_time(cache_dir: Path) -> None:
    """A folder without a lock file whose recorded pid now belongs to a process started at another time is stale."""
    from harness.userland import process_start

    runs = runs_dir()
    reused, alive = runs / "reused-1", runs / "alive-1"
    for d, started in ((reused, "1"), (alive, process_start(os.getpid()))):
        (d / "upper").mkdir(parents=True)
        (d / "owner.json").write_text(json.dumps({"pid": os.getpid(), "pid_start": started}))
        os.utime(d, (time.time() - 3600, time.time() - 3600))
    assert cleanup_stale() == [reused]
    assert alive.exists()
    assert not reused.exists()


def test_cleanup_leaves_a_stale_folder_that_still_holds_a_mount(cache_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mount", "umount"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 32\n")
        (bin_dir / name).chmod(0o755)
    stale = runs_dir() / "stale-1"
    (stale / "root" / "dev").mkdir(parents=True)
    (stale / "root" / "dev" / "null").write_text("the host's /dev/null")
    os.close(hold_lock(stale))
    add_mount(cache_dir, stale / "root" / "dev")
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{env_path}"
    try:
        with pytest.raises(mounts.MountError, match="umount"):
            cleanup_stale()
    finally:
        os.environ["PATH"] = env_path
    assert (stale / "root" / "dev" / "null").read_text() == "the host's /dev/null"


def test_a_started_target_owns_its_folder_before_anything_is_mounted(cache_dir: Path) -> None:
    t = make_target(load_project(ROOT).targets["debian-trixie-riscv64"])
    assert isinstance(t, ChrootTarget)
    workdir = t._make_workdir()
    try:
        assert json.loads((workdir / "owner.json").read_text())["pid"] == os.getpid()
        assert cleanup_stale() == []  # its lock is held
        assert workdir.exists()
    finally:
        assert t._lock_fd is not None
        os.close(t._lock_fd)
    assert cleanup_stale() == [workdir]


# ------------------------------------------------------------------ paths inside the root


def test_inside_accepts_a_root_reached_through_a_link(target: ChrootTarget, tmp_path: Path) -> None:
    (tmp_path / "rootlink").symlink_to(tmp_path / "real-root")
    target.root = tmp_path / "rootlink"
    assert target._inside("/tmp/leapfrog.x/suite") == tmp_path / "real-root" / "tmp" / "leapfrog.x" / "suite"
    with pytest.raises(TargetError, match="leads outside"):
        target._inside("/tmp/../../../etc/passwd/x")


def test_put_replaces_a_link_planted_at_the_destination(target: ChrootTarget, tmp_path: Path) -> None:
    host_file = tmp_path / "host-passwd"
    host_file.write_text("root:x:0:0")
    (tmp_path / "real-root" / "tmp" / "results.jsonl").symlink_to(host_file)
    src = tmp_path / "src.txt"
    src.write_text("from leapfrog")
    target.put(src, "/tmp/results.jsonl")
    assert host_file.read_text() == "root:x:0:0"
    planted = tmp_path / "real-root" / "tmp" / "results.jsonl"
    assert not planted.is_symlink()
    assert planted.read_text() == "from leapfrog"


def test_put_refuses_a_link_planted_as_a_parent(target: ChrootTarget, tmp_path: Path) -> None:
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    (tmp_path / "real-root" / "tmp" / "leapfrog.x").symlink_to(host_dir)
    src = tmp_path / "probe.py"
    src.write_text("print()")
    with pytest.raises(TargetError, match="link or not a folder"):
        target.put(src, "/tmp/leapfrog.x/probe/probe.py")
    assert list(host_dir.iterdir()) == []


def test_put_of_a_folder_never_writes_through_links_inside_it(target: ChrootTarget, tmp_path: Path) -> None:
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    suite = tmp_path / "suite"
    (suite / "sub").mkdir(parents=True)
    (suite / "sub" / "test_a.py").write_text("def test(): pass\n")
    (suite / "conftest.py").write_text("")
    (suite / "link").symlink_to("conftest.py")
    dest = tmp_path / "real-root" / "tmp" / "suite"
    dest.mkdir()
    (dest / "sub").symlink_to(host_dir)  # the target planted a link where a folder of the suite goes
    target.put(suite, "/tmp/suite")
    assert list(host_dir.iterdir()) == []
    assert (dest / "sub" / "test_a.py").read_text() == "def test(): pass\n"
    assert os.readlink(dest / "link") == "conftest.py"


def test_make_temp_dir_refuses_a_tmp_that_is_a_link(target: ChrootTarget, tmp_path: Path) -> None:
    name = target.make_temp_dir()
    assert (tmp_path / "real-root" / name.lstrip("/")).is_dir()
    host_dir = tmp_path / "host-tmp"
    host_dir.mkdir()
    tmp = tmp_path / "real-root" / "tmp"
    os.rename(tmp, tmp_path / "old-tmp")
    tmp.symlink_to(host_dir)
    with pytest.raises(TargetError, match="link or not a folder"):
        target.make_temp_dir()
    assert list(host_dir.iterdir()) == []


def test_remove_tree_does_not_follow_a_planted_link(target: ChrootTarget, tmp_path: Path, cache_dir: Path) -> None:
    host_dir = tmp_path / "host-data"
    host_dir.mkdir()
    (host_dir / "keep").write_text("x")
    work = tmp_path / "real-root" / "tmp" / "leapfrog.y"
    work.mkdir()
    (work / "data").symlink_to(host_dir)
    target.remove_tree("/tmp/leapfrog.y")
    assert not work.exists()
    assert (host_dir / "keep").exists()


# ------------------------------------------------------------------ images: leftovers and the build lock


def test_leftovers_of_an_interrupted_build_that_hold_a_mount_are_left(cache_dir: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "umount").write_text("#!/bin/sh\nexit 32\n")
    (bin_dir / "mount").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    spec = ImageSpec()
    pkgs = images.packages_for(spec, ["hello"])
    name = f"debian-trixie-riscv64-{cache.image_key('debian', 'trixie', 'riscv64', spec.mirror, pkgs)}"
    dev = cache.images_dir() / name / "rootfs" / "dev"
    dev.mkdir(parents=True)
    (dev / "null").write_text("the host's /dev/null, seen through a bind")
    add_mount(cache_dir, dev)
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}:{env_path}"
    try:
        with pytest.raises(mounts.MountError, match="umount"):
            images.ensure_image(spec, ["hello"], layering=False)
    finally:
        os.environ["PATH"] = env_path
    assert (dev / "null").exists()


def test_remove_image_leaves_an_image_that_holds_a_mount(cache_dir: Path, tmp_path: Path) -> None:
    folder = cache.images_dir() / "debian-trixie-riscv64-0000"
    (folder / "rootfs" / "proc").mkdir(parents=True)
    (folder / "rootfs" / "proc" / "1").write_text("a process")
    meta = cache.ImageMeta("0000", "debian", "trixie", "riscv64", "m", [], cache.RECIPE_VERSION)
    (folder / "meta.json").write_text(json.dumps(meta.to_dict()))
    add_mount(cache_dir, folder / "rootfs" / "proc")
    os.environ["PATH"], old = f"{tmp_path}:{os.environ['PATH']}", os.environ["PATH"]
    try:
        (tmp_path / "umount").write_text("#!/bin/sh\nexit 32\n")
        (tmp_path / "umount").chmod(0o755)
        (tmp_path / "mount").write_text("#!/bin/sh\nexit 0\n")
        (tmp_path / "mount").chmod(0o755)
        with pytest.raises(mounts.MountError):
            cache.remove_image(cache.CachedImage(meta, folder))
    finally:
        os.environ["PATH"] = old
    assert (folder / "rootfs" / "proc" / "1").exists()


def test_sweep_cleans_a_killed_build_and_leaves_a_live_one(cache_dir: Path) -> None:
    root = cache.images_dir()
    killed, live = root / "debian-a", root / "debian-b"
    for folder in (killed, live):
        (folder / "rootfs" / "usr").mkdir(parents=True)
        mounts.record_mount(folder, folder / "rootfs")
    fd = os.open(root / "debian-b.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert images.sweep_interrupted_builds() == [killed]
    finally:
        os.close(fd)
    assert not killed.exists()
    assert live.exists()


def test_build_image_removes_an_interrupted_build_and_writes_meta_last(cache_dir: Path) -> None:
    where = ("debian", "trixie", "riscv64", "m")
    seen: list[str] = []

    def interrupted(dest: Path) -> cache.Built:
        (dest / "usr").mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.build_image(*where, ["a"], interrupted, how=" by hand", progress=seen.append)
    assert list(cache.images_dir().iterdir()) == [cache.images_dir() / f"{seen[0].split()[1]}.lock"]

    def build(dest: Path) -> cache.Built:
        (dest / "usr").mkdir(parents=True)
        assert not (dest.parent / "meta.json").exists()
        return cache.Built(phases={"p": 1.0}, base="b")

    img = cache.build_image(*where, ["a"], build, how=" by hand", progress=seen.append)
    assert seen == [f"building {img.meta.name} by hand"] * 2
    assert sorted(p.name for p in img.path.iterdir()) == ["meta.json", "rootfs"]
    assert (img.meta.packages, img.meta.phases, img.meta.base, img.meta.missing) == (["a"], {"p": 1.0}, "b", [])
    assert cache.list_images() == [img]

    def never(dest: Path) -> cache.Built:
        raise AssertionError("built twice")

    assert cache.build_image(*where, ["a"], never, how="", progress=seen.append) == img  # found under the lock


HOLDER = """
import sys, time
from harness.images import cache
with cache.build_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(30)
"""


def test_the_build_lock_wait_has_a_deadline_and_names_the_holder(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "debian-x"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setenv("LEAPFROG_LOCK_TIMEOUT", "0.5")
        seen: list[str] = []
        start = time.monotonic()
        with (
            pytest.raises(ImageError, match=rf"pid {holder.pid}.*LEAPFROG_LOCK_TIMEOUT"),
            cache.build_lock("debian-x", progress=seen.append),
        ):
            pass
        assert time.monotonic() - start < 10
        assert f"held by pid {holder.pid}" in seen[0]
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with cache.build_lock("debian-x"):  # free again once the holder is gone
        assert json.loads((cache.images_dir() / "debian-x.owner").read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("value", ["nan", "-1", "0", "soon", "inf"])
def test_a_bad_lock_timeout_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEAPFROG_LOCK_TIMEOUT", value)
    with pytest.raises(ConfigError, match="LEAPFROG_LOCK_TIMEOUT"):
        cache.lock_timeout()


def test_the_default_lock_timeout_fits_a_cold_emulated_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAPFROG_LOCK_TIMEOUT", raising=False)
    assert cache.lock_timeout() == 3600


def test_a_debian_image_has_ca_certificates_only_for_an_https_mirror() -> None:
    # Nothing of leapfrog's uses TLS in the target, and update-ca-certificates costs ~28 s of a cold build
    # under emulation; apt in the image (layering) needs the trust store only when the mirror is https.
    plain = images.packages_for(ImageSpec(), ["hello"])
    assert plain == ["hello", "python3", "python3-pytest"]
    https = images.packages_for(ImageSpec(mirror="https://deb.debian.org/debian"), [])
    assert "ca-certificates" in https
    assert "ca-certificates" in images.packages_for(ImageSpec(), ["ca-certificates"])  # a suite may ask for it


# ------------------------------------------------------------------ entering the root


def fake_process(seen: list[list[str]], exit_code: int = 0, stderr: str = "") -> object:
    from harness.targets.base import Completed

    def run(argv: list[str], **_kw: object) -> Completed:
        seen.append(argv)
        return Completed(argv=argv, exit_code=exit_code, signal=None, stdout="", stderr=stderr, wall=0.0)

    return run


def test_a_command_with_a_cwd_starts_no_env_program_in_the_root(
    target: ChrootTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import userland

    monkeypatch.setattr(userland, "unshare_with_wd", lambda: "/usr/bin/unshare")
    seen: list[list[str]] = []
    monkeypatch.setattr("harness.targets.chroot.run_process", fake_process(seen))
    assert target.root is not None
    target.run(["python3", "-m", "pytest"], timeout=10, cwd="/tmp/suite")
    target.run(["pwd"], timeout=10, cwd="tmp")  # relative to the root's /, as env -C after chroot
    target.run(["true"], timeout=10)
    root = str(target.root)
    assert seen == [
        ["/usr/bin/unshare", f"--root={root}", "--wd=/tmp/suite", "--", "python3", "-m", "pytest"],
        ["/usr/bin/unshare", f"--root={root}", "--wd=/tmp", "--", "pwd"],
        ["chroot", root, "true"],
    ]


def test_without_an_unshare_that_has_wd_env_changes_the_folder(
    target: ChrootTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import userland

    monkeypatch.setattr(userland, "unshare_with_wd", lambda: "")
    seen: list[list[str]] = []
    monkeypatch.setattr("harness.targets.chroot.run_process", fake_process(seen))
    target.run(["pwd"], timeout=10, cwd="/tmp")
    assert seen == [["chroot", str(target.root), "/usr/bin/env", "-C", "/tmp", "pwd"]]


def test_a_missing_working_folder_exits_125_naming_it(target: ChrootTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import userland

    monkeypatch.setattr(userland, "unshare_with_wd", lambda: "/usr/bin/unshare")
    said = "unshare: cannot chdir to '/no/such': No such file or directory\n"
    monkeypatch.setattr("harness.targets.chroot.run_process", fake_process([], exit_code=1, stderr=said))
    done = target.run(["pwd"], timeout=10, cwd="/no/such")
    assert (done.exit_code, done.stderr) == (125, said)
    # The command's own exit 1 stays 1, even when it prints something alike among other lines.
    other = said + "and more\n"
    monkeypatch.setattr("harness.targets.chroot.run_process", fake_process([], exit_code=1, stderr=other))
    assert target.run(["pwd"], timeout=10, cwd="/no/such").exit_code == 1


def test_an_unshare_without_wd_runs_the_command_again_with_env(
    target: ChrootTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """util-linux < 2.32: unshare refuses --root before running anything; env -C then, for the rest of the process."""
    from harness import userland
    from harness.targets.base import Completed

    monkeypatch.setattr(userland, "_REFUSED", set())
    monkeypatch.setattr(userland, "_which_unshare", lambda: "/usr/bin/unshare")
    seen: list[list[str]] = []

    def run(argv: list[str], **_kw: object) -> Completed:
        seen.append(argv)
        if argv[0] == "/usr/bin/unshare":
            said = "unshare: unrecognized option '--root=/x'\nTry 'unshare --help' for more information.\n"
            return Completed(argv=argv, exit_code=1, signal=None, stdout="", stderr=said, wall=0.0)
        return Completed(argv=argv, exit_code=0, signal=None, stdout="/tmp\n", stderr="", wall=0.0)

    monkeypatch.setattr("harness.targets.chroot.run_process", run)
    assert target.run(["pwd"], timeout=10, cwd="/tmp").stdout == "/tmp\n"
    assert target.run(["pwd"], timeout=10, cwd="/tmp").exit_code == 0
    root = str(target.root)
    env_c = ["chroot", root, "/usr/bin/env", "-C", "/tmp", "pwd"]
    assert seen == [["/usr/bin/unshare", f"--root={root}", "--wd=/tmp", "--", "pwd"], env_c, env_c]
