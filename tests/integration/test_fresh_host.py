"""A fresh Debian 12 host: the README's setup, then doctor and a native + riscv64 run, must pass.

A clean Debian 12 (bookworm) amd64 minbase root is built once with mmdebstrap
and cached under the leapfrog cache (``fresh-host/<name>-<key>/``, complete once
``meta.json`` exists).  Each run copies it to a throwaway root, copies this
checkout in (the files git knows, no reports or caches), mounts /proc, /sys and
/dev, and inside it runs the real ``scripts/setup-host.sh --profile chroot``,
then ``leapfrog doctor`` and ``leapfrog run -t native,debian-trixie-riscv64 -s
platform``.  The riscv64 image is built inside the fresh root from the Debian
archive; the host kernel's binfmt entry (F flag) runs its riscv64 programs.

What the fresh root lacks is the point: no pip.conf, no local wheels, no
Recommends of mmdebstrap (arch-test), an "externally managed" Python without
pip.  ``LEAPFROG_FRESH_SETUP`` names another setup script to run instead of the
checkout's (how the test was shown to fail with an older script).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from harness import mounts
from harness.paths import cache_root
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

RELEASE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: Bump when the way the fresh root is built changes, so an old cached root is not reused.
RECIPE = 1
MMDEBSTRAP = [
    "mmdebstrap",
    "--variant=minbase",  # nothing a fresh machine might lack is added here: setup-host.sh must install it
    "--arch=amd64",
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
]
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LEAPFROG_CACHE": "/var/cache/leapfrog",  # inside the fresh root: nothing is shared with the host's cache
}
#: leapfrog as setup left it: in the checkout's venv when the system Python is externally managed.
LEAPFROG = '"$( [ -x .venv/bin/leapfrog ] && echo .venv/bin/leapfrog || echo leapfrog )"'


def _build_minbase(dest: Path) -> None:
    done = subprocess.run(
        [*MMDEBSTRAP, RELEASE, str(dest), MIRROR], capture_output=True, text=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        pytest.fail(f"mmdebstrap of the fresh root failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def fresh_minbase() -> tuple[Path, float]:
    """The cached Debian 12 minbase root (built on first use) and the seconds spent building it (0 when cached)."""
    key = hashlib.sha256(json.dumps([RECIPE, RELEASE, MIRROR, MMDEBSTRAP]).encode()).hexdigest()[:16]
    folder = cache_root() / "fresh-host" / f"debian-{RELEASE}-amd64-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(folder) + ".lock", timeout=3600):
        if (folder / "meta.json").exists():
            return folder / "rootfs", 0.0
        mounts.unmount_and_remove(folder)  # an interrupted build, if any
        folder.mkdir()
        start = time.monotonic()
        _build_minbase(folder / "rootfs")
        seconds = round(time.monotonic() - start, 1)
        meta = {"release": RELEASE, "arch": "amd64", "mirror": MIRROR, "argv": MMDEBSTRAP, "build_seconds": seconds}
        (folder / "meta.json.tmp").write_text(json.dumps(meta, indent=2))
        (folder / "meta.json.tmp").replace(folder / "meta.json")
        return folder / "rootfs", seconds


def copy_checkout(dest: Path) -> int:
    """Copy the files git knows (tracked, and new ones not ignored) to ``dest``; returns how many."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    count = 0
    for raw in filter(None, listed):
        rel = os.fsdecode(raw)
        src = ROOT / rel
        if rel.startswith("reports/") or not os.path.lexists(src):  # reports are output; a deleted file is gone
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
        count += 1
    return count


def kill_rooted(root: Path) -> list[str]:
    """SIGKILL every process whose root directory is in ``root`` (a daemon a setup script left running)."""
    top = os.path.realpath(root)
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            where = os.readlink(proc / "root")
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if where == top or where.startswith(top + "/"):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(f"{name} ({proc.name})")
    return killed


def sweep_killed_runs(folder: Path) -> None:
    """Unmount and remove the throwaway roots of test runs that were killed (their owner pid is gone)."""
    for work in folder.glob("run-*"):
        try:
            os.kill(int((work / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            mounts.unmount_and_remove(work)
        except (OSError, ValueError):  # no pid written yet: a run starting now, unless it is old
            if time.time() - work.stat().st_mtime > 600:
                mounts.unmount_and_remove(work)


@pytest.fixture
def fresh_root(record_property: pytest.RecordProperty) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the fresh-host test needs root (mmdebstrap, mount, chroot)")
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (run scripts/setup-host.sh)")
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-riscv64")
    if not entry.exists() or "F" not in entry.read_text():
        pytest.skip("the host has no riscv64 binfmt entry with the F flag (run scripts/setup-host.sh)")
    start = time.monotonic()
    base, built = fresh_minbase()
    record_property("minbase_build_seconds", built)
    sweep_killed_runs(base.parent.parent)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base.parent.parent))
    (work / "owner.pid").write_text(str(os.getpid()))
    root = work / "root"
    try:
        subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
        copied = copy_checkout(root / "src" / "leapfrog")
        # The host's way out to the network: its resolver, and the local CAs it trusts (a TLS proxy's, say),
        # which the ca-certificates package that setup installs adds to the fresh root's trust store.
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
        local_cas = Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir():
            shutil.copytree(local_cas, root / local_cas.relative_to("/"), dirs_exist_ok=True)
        for argv in (
            ["mount", "-t", "proc", "proc", str(root / "proc")],
            ["mount", "--rbind", "/sys", str(root / "sys")],
            ["mount", "--make-rslave", str(root / "sys")],
            ["mount", "--rbind", "/dev", str(root / "dev")],
            ["mount", "--make-rslave", str(root / "dev")],
        ):
            if argv[1] == "--make-rslave":
                made = subprocess.run(argv, capture_output=True, text=True, check=False)
            else:
                made = mounts.mount(work, argv)  # journaled in work before it is made
            assert made.returncode == 0, f"{argv} failed: {made.stderr}"
        record_property("prepare_seconds", round(time.monotonic() - start, 1))
        print(f"fresh root {root}: minbase built in {built} s (0: cached), {copied} files of the checkout copied")
        yield root
    finally:
        left_running = kill_rooted(root)
        if left_running:
            print(f"killed processes left running in the fresh root: {', '.join(left_running)}")
            time.sleep(1)
        left = mounts.unmount_under(work)
        assert not left, f"{work} still holds mounts ({', '.join(left)}); it was left in place."
        mounts.remove_tree(work)  # re-reads the mount table; never crosses into another file system


def in_root(root: Path, script: str, timeout: float) -> tuple[int, str, float]:
    """Run ``script`` with sh inside ``root`` in /src/leapfrog; (exit code, output, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        ["chroot", str(root), "/bin/sh", "-c", f"cd /src/leapfrog && {script}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=ENV,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n[killed after {timeout:.0f} s]"
    seconds = round(time.monotonic() - start, 1)
    print(f"--- in the fresh root ({seconds} s): {script}\n{out[-6000:]}")
    return proc.returncode, out, seconds


def test_readme_setup_then_doctor_and_run_pass(fresh_root: Path, record_property: pytest.RecordProperty) -> None:
    setup = os.environ.get("LEAPFROG_FRESH_SETUP")
    if setup:
        shutil.copyfile(setup, fresh_root / "src" / "leapfrog" / "scripts" / "setup-host.sh")
    rc, out, seconds = in_root(fresh_root, "scripts/setup-host.sh --profile chroot", 3600)
    record_property("setup_seconds", seconds)
    assert rc == 0, f"scripts/setup-host.sh failed on a fresh Debian 12 (exit {rc}):\n{out[-4000:]}"

    rc, out, _ = in_root(fresh_root, "scripts/setup-host.sh --profile chroot", 1800)
    assert rc == 0, f"scripts/setup-host.sh failed when run a second time (exit {rc}):\n{out[-4000:]}"
    assert "apt-get install" not in out, "a second setup installed packages again"
    assert "creating a venv" not in out, "a second setup made its venv again"

    rc, out, seconds = in_root(fresh_root, f"{LEAPFROG} doctor --target native,debian-trixie-riscv64", 300)
    assert rc == 0, f"leapfrog doctor found gaps right after setup:\n{out[-4000:]}"

    rc, out, seconds = in_root(
        fresh_root,
        f"{LEAPFROG} run -t native,debian-trixie-riscv64 -s platform --out /tmp/fresh-report --no-history",
        3600,
    )
    record_property("run_seconds", seconds)
    report = fresh_root / "tmp" / "fresh-report" / "results.json"
    assert rc == 0, f"leapfrog run failed on the fresh host (exit {rc}):\n{out[-4000:]}"
    cells = {c["target"]: c for c in json.loads(report.read_text())["cells"]}
    assert set(cells) == {"native", "debian-trixie-riscv64"}
    for name, cell in cells.items():
        assert cell["verdict"] == "compatible", f"{name}: {cell['message']}"
        assert len(cell["cases"]) >= 25, f"{name} ran {len(cell['cases'])} cases"
