"""A chroot target's mounts never reach the host's own, even when the host's /dev and /sys are shared.

Needs root.  The target starts and stops in a private mount namespace
(``unshare --mount``) whose /dev and /sys are throwaway tmpfs folders, each
with a submount, made ``rshared``: a bind of a shared mount is its peer, so an
unmount inside the target's copy that is not a slave would unmount the
"host's" submount too.  The namespace's whole mount table is compared before
and after.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, require_chroot_host

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

DRIVER = r"""
import json, os, stat, subprocess, sys
from pathlib import Path

from harness.config import load_project
from harness.mounts import MOUNTINFO, mounts_under
from harness.targets import make_target

root_dir = sys.argv[1]


def table():
    with open(MOUNTINFO) as f:
        return sorted(line.split(" ", 4)[4] for line in f.read().splitlines())  # from the mount point on


for where in ("/dev", "/sys"):
    subprocess.run(["mount", "-t", "tmpfs", "throwaway", where], check=True)
    if where == "/dev":
        for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "urandom": (1, 9)}.items():
            os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    Path(where, "sub").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "submount", f"{where}/sub"], check=True)
    Path(where, "sub", "marker").write_text("must survive")
    subprocess.run(["mount", "--make-rshared", where], check=True)

report = {"before": table()}
t = make_target(load_project(Path(root_dir)).targets["debian-trixie-riscv64"], packages=[])
t.start()
inside = {}
with open(MOUNTINFO) as f:
    for line in f.read().splitlines():
        fields = line.split(" ")
        if fields[4].startswith(str(t.root) + "/"):
            inside[fields[4][len(str(t.root)):]] = fields[6:fields.index("-")]
report["inside"] = inside
done = t.run(["cat", "/dev/sub/marker"], timeout=120)
report["read"] = [done.exit_code, done.stdout]
workdir = t.workdir
t.stop()
report["left"] = mounts_under(workdir)
report["after"] = table()
report["markers"] = [Path(w, "sub", "marker").exists() for w in ("/dev", "/sys")]
print(json.dumps(report))
"""


def test_start_and_stop_leave_shared_host_mounts_alone(private_cache: Path, tmp_path: Path) -> None:
    require_chroot_host()
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", DRIVER, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LEAPFROG_CACHE": str(private_cache), "HOME": "/root"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    # Every bound mount in the target is a slave (receives from the host, sends nothing back), from start on.
    for point in ("/dev", "/dev/sub", "/sys", "/sys/sub"):
        tags = report["inside"][point]
        assert any(t.startswith("master:") for t in tags), (point, tags)
        assert not any(t.startswith("shared:") for t in tags), (point, tags)
    assert report["read"] == [0, "must survive"]
    assert report["left"] == []
    assert report["after"] == report["before"]  # the namespace's whole mount table, count and order of fields
    assert report["markers"] == [True, True]
