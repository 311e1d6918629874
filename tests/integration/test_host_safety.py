"""Nothing leapfrog does harms the host: links in the cache path, kill -9 mid-layering, two runs at once.

Needs root.  The kill tests run in a private mount namespace whose /dev and
/sys are throwaway tmpfs folders with marker files: a cleanup that deleted
through a bind would delete those markers, never the host's devices.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.images import CachedImage
from harness.mounts import mounts_under
from tests.integration.conftest import ROOT, cache_env, leapfrog, require_chroot_host

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
SUITES = Path(__file__).parent / "suites"


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--suites-dir", str(SUITES), *args]


def dev_names() -> list[str]:
    return sorted(os.listdir("/dev"))


def own_workdirs(cache: Path, pid: int) -> list[Path]:
    """The work folders under ``cache``'s runs/ that leapfrog process ``pid`` owns."""
    found = []
    runs = cache / "runs"
    for d in runs.iterdir() if runs.is_dir() else []:
        try:
            if json.loads((d / "owner.json").read_text())["pid"] == pid:
                found.append(d)
        except (OSError, ValueError, KeyError):
            continue
    return found


def wait_for(what: str, check: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_chroot_run_with_the_cache_through_a_link(private_cache: Path, tmp_path: Path) -> None:
    """LEAPFROG_CACHE -> a link (as /root -> /var/roothome): the cell runs, and no mount is left."""
    before = dev_names()
    out = tmp_path / "r"
    done = leapfrog(
        "--suites-dir",
        str(SUITES),
        "run",
        "-t",
        "debian-trixie-riscv64",
        "-s",
        "quick",
        "--out",
        str(out),
        "--no-history",
        env=cache_env(private_cache),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["verdict"] == "compatible", cell["message"]
    assert mounts_under(private_cache.resolve()) == []
    assert list((private_cache / "runs").iterdir()) == []
    assert dev_names() == before


def test_two_runs_at_once_leave_each_other_alone(private_cache: Path, tmp_path: Path) -> None:
    """A second run starting (and cleaning up stale folders) while the first is live never touches its mounts."""
    env = cache_env(private_cache)
    first = subprocess.Popen(
        argv("run", "-t", "debian-trixie-riscv64", "-s", "slow", "--out", str(tmp_path / "a"), "--no-history"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the first run's mounts", lambda: any(mounts_under(d) for d in own_workdirs(private_cache, first.pid)))
        (first_dir,) = own_workdirs(private_cache, first.pid)
        first_mounts = mounts_under(first_dir)
        second = subprocess.Popen(
            argv("run", "-t", "debian-trixie-riscv64", "-s", "quick", "--out", str(tmp_path / "b"), "--no-history"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                "the second run's mounts", lambda: any(mounts_under(d) for d in own_workdirs(private_cache, second.pid))
            )
            assert first.poll() is None, "the first run ended too soon to overlap"
            assert mounts_under(first_dir) == first_mounts  # its cleanup at start left the live run alone
            _out, err = second.communicate(timeout=600)
            assert second.returncode == 0, err[-2000:]
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        assert own_workdirs(private_cache, second.pid) == []
        _out, err = first.communicate(timeout=600)
        assert first.returncode == 0, err[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert own_workdirs(private_cache, first.pid) == []
    for report in ("a", "b"):
        (cell,) = json.loads((tmp_path / report / "results.json").read_text())["cells"]
        assert cell["verdict"] == "compatible", cell["message"]
    assert mounts_under(private_cache.resolve()) == []


# ------------------------------------------------------------------ killed while layering

# Runs as root in a private mount namespace (unshare): /dev and /sys there are
# throwaway tmpfs folders, so layer_rootfs binds those; prints what it saw as JSON.
DRIVER = r"""
import json, os, signal, stat, subprocess, sys, time
from pathlib import Path

from harness.images.cache import RECIPE_VERSION
from harness.images.debian import BASE_PACKAGES
from harness.mounts import mounts_under

tmp, root, suites = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
report = {}


def throwaway(where):
    subprocess.run(["mount", "-t", "tmpfs", "throwaway", where], check=True)
    if where == "/dev":
        for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}.items():
            os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(f"/dev/{name}", 0o666)
    Path(where, "marker").write_text("must survive")
    Path(where, "dir").mkdir()
    Path(where, "dir", "deep").write_text("must survive too")


def listing(where):
    out = []
    for dirpath, dirs, files in os.walk(where):
        out += [os.path.relpath(os.path.join(dirpath, n), where) for n in dirs + files]
    return sorted(out)


for where in ("/dev", "/sys"):
    throwaway(where)
before = {w: listing(w) for w in ("/dev", "/sys")}

# A private cache through a link, holding a tiny "image": host binaries, and an
# apt-get that hangs while /hold exists (so the mounts stay up) and else succeeds.
real = tmp / "cache-real"
(tmp / "cache").symlink_to(real)
base = real / "images" / "debian-trixie-riscv64-0123456789abcdef"
rootfs = base / "rootfs"
for d in ("proc", "sys", "dev", "etc", "tmp", "usr/bin", "bin", "var/lib/apt/lists"):
    (rootfs / d).mkdir(parents=True)
for binary, name in (("/bin/dash", "bin/sh"), ("/bin/sleep", "bin/sleep")):
    subprocess.run(["cp", binary, str(rootfs / name)], check=True)
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        lib = line.split("=>")[-1].split("(")[0].strip()
        if lib.startswith("/"):
            (rootfs / lib.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-L", lib, str(rootfs / lib.lstrip("/"))], check=True)
apt = rootfs / "usr/bin/apt-get"
apt.write_text("#!/bin/sh\nif [ -e /hold ]; then exec /bin/sleep 600; fi\nexit 0\n")
apt.chmod(0o755)
(rootfs / "hold").write_text("")
meta = {"key": "0123456789abcdef", "distro": "debian", "release": "trixie", "arch": "riscv64",
        "mirror": "http://deb.debian.org/debian", "packages": BASE_PACKAGES, "recipe": RECIPE_VERSION}
(base / "meta.json").write_text(json.dumps(meta))

env = {**os.environ, "LEAPFROG_CACHE": str(tmp / "cache")}
build = [sys.executable, "-m", "harness.cli", "--root", root, "--suites-dir", suites,
         "images", "build", "-t", "debian-trixie-riscv64", "-s", "extra"]


def start_and_wait_for_mounts():
    proc = subprocess.Popen(build, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while time.monotonic() - start < 120 and proc.poll() is None:
        if any(m.endswith("/rootfs/dev") for m in mounts_under(real / "images")):
            return proc, round(time.monotonic() - start, 2)
        time.sleep(0.05)
    proc.kill()
    report["error"] = "the layering mounts never came up: " + proc.communicate()[1][-2000:]
    print(json.dumps(report))
    sys.exit(0)


# 1. SIGTERM while the mounts are up: handled like Ctrl-C.
proc, report["mounts_up_after_s"] = start_and_wait_for_mounts()
proc.send_signal(signal.SIGTERM)
try:
    proc.communicate(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    proc.communicate()
report["sigterm_exit"] = proc.returncode
report["mounts_after_sigterm"] = mounts_under(real / "images")

# 2. SIGKILL while the mounts are up: the next run must clean up.
proc, _ = start_and_wait_for_mounts()
journals = sorted((real / "images").glob("*/mounts.journal"))
report["journal_lines"] = len(journals[0].read_text().splitlines()) if journals else 0
proc.kill()
proc.communicate()
report["mounts_after_sigkill"] = len(mounts_under(real / "images"))
(rootfs / "hold").unlink()
t0 = time.monotonic()
done = subprocess.run(build, env=env, capture_output=True, text=True, timeout=300)
report["next_run_s"] = round(time.monotonic() - t0, 2)
report["next_exit"] = done.returncode
report["next_stderr"] = done.stderr[-3000:]
report["mounts_after_next_run"] = mounts_under(real / "images")
report["images"] = sorted(p.parent.name for p in (real / "images").glob("*/meta.json"))
report["journals_left"] = [str(p) for p in (real / "images").glob("*/mounts.journal")]
report["same"] = {w: listing(w) == before[w] for w in ("/dev", "/sys")}
report["lost"] = {w: sorted(set(before[w]) - set(listing(w))) for w in ("/dev", "/sys")}

# The killed run's apt-get (sleep 600) is still running in its deleted root: end it.
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if os.readlink(f"/proc/{pid}/root").startswith(str(real)):
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
print(json.dumps(report))
"""


@pytest.fixture
def layering_host(tmp_path: Path) -> Path:
    """A suites folder with one suite asking for a package the tiny base image lacks."""
    require_chroot_host()
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    suite = tmp_path / "suites" / "extra"
    suite.mkdir(parents=True)
    (suite / "suite.toml").write_text('description = "Needs one more package"\n[packages]\ndebian = ["hello"]\n')
    (suite / "test_extra.py").write_text("def test_one():\n    pass\n")
    return tmp_path


def test_killed_while_layering_the_next_run_cleans_up_and_the_host_is_untouched(
    layering_host: Path, debian_image: CachedImage
) -> None:
    host_dev = dev_names()
    work = layering_host / "ns"
    work.mkdir()
    start = time.monotonic()
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            DRIVER,
            str(work),
            str(ROOT),
            str(layering_host / "suites"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=ROOT,
    )
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    print(json.dumps(report, indent=1), f"total {took:.1f}s")
    assert "error" not in report, report.get("error")
    assert report["sigterm_exit"] == 130
    assert report["mounts_after_sigterm"] == []
    assert report["journal_lines"] >= 3  # proc, sys, dev: written before they were mounted
    assert report["mounts_after_sigkill"] >= 3  # what kill -9 leaves...
    assert report["next_exit"] == 0, report["next_stderr"]
    assert report["mounts_after_next_run"] == []  # ...the next run unmounts
    assert report["journals_left"] == []
    assert len(report["images"]) == 2  # the base and the layered image, built after the cleanup
    assert report["lost"] == {"/dev": [], "/sys": []}
    assert report["same"] == {"/dev": True, "/sys": True}
    assert dev_names() == host_dev  # and the host's own /dev never saw any of it
    assert mounts_under(work) == []
