"""The shared image as the build leaves it: Debian's files only, every module byte-compiled, one initramfs.

These hold whichever way the image was built (every step emulated, or
unpacking and byte-compiling native: harness/images/nativebuild.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from harness.images import CachedImage, nativebuild

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

#: What the build's dpkg path-exclude options leave out (dpkg --verify lists them as missing).
EXCLUDED = re.compile(r"missing\s+\S*\s+/usr/share/(doc|man|locale)/")

#: Imported in the image with -B (nothing written): each module's .pyc must already be there and current.
CHECK = r"""
import importlib.util, json, os, struct, sys
import numpy, scipy.linalg, sklearn.linear_model, torch, onnx, fastapi, pytest
stale = []
n = 0
for name, mod in list(sys.modules.items()):
    src = getattr(mod, "__file__", None) or ""
    if not src.endswith(".py") or not src.startswith("/usr/lib/python3"):
        continue
    n += 1
    pyc = importlib.util.cache_from_source(src)
    try:
        with open(pyc, "rb") as f:
            magic, flags, mtime, size = struct.unpack("<4sLLL", f.read(16))
    except OSError:
        stale.append(src + " (no .pyc)")
        continue
    st = os.stat(src)
    ok = magic == importlib.util.MAGIC_NUMBER and flags == 0
    ok = ok and mtime == int(st.st_mtime) & 0xFFFFFFFF and size == st.st_size & 0xFFFFFFFF
    if not ok:
        stale.append(src)
print(json.dumps({"modules": n, "stale": stale}))
"""


def test_the_image_holds_nothing_of_the_build(debian_image: CachedImage) -> None:
    root = debian_image.rootfs
    assert not (root / nativebuild.WORK).exists()
    assert not (root / nativebuild.APT_CONF).exists()
    assert not list((root / "etc/apt/apt.conf.d").glob("*leapfrog*"))
    # py3compile and dpkg-deb are Debian's, where Debian puts them, with no diversion
    diversions = (root / "var/lib/dpkg/diversions").read_text()
    assert "py3compile" not in diversions
    assert "dpkg-deb" not in diversions
    verify = subprocess.run(
        ["chroot", str(root), "dpkg", "--verify", "python3", "dpkg"], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stderr
    changed = [line for line in verify.stdout.splitlines() if not EXCLUDED.match(line)]
    assert changed == []  # no file of python3 or dpkg differs from its package (docs are left out on purpose)


def test_imports_find_every_pyc_current_so_nothing_is_compiled_at_run_time(debian_image: CachedImage) -> None:
    done = subprocess.run(
        ["chroot", str(debian_image.rootfs), "python3", "-B", "-c", CHECK],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] > 500  # numpy, scipy, sklearn, torch and the rest really were imported
    assert result["stale"] == []


def test_each_kernel_has_exactly_one_initramfs(debian_image: CachedImage) -> None:
    root = debian_image.rootfs
    kernels = nativebuild.kernel_versions(root)
    if not kernels:
        pytest.skip("this image has no kernel (the VM's packages are not in it)")
    for version in kernels:
        initrd = root / "boot" / f"initrd.img-{version}"
        assert initrd.is_file()
        assert initrd.stat().st_size > 1_000_000
        with initrd.open("rb") as f:
            head = f.read(6)
        assert head[:2] == b"\x1f\x8b" or head[:6] in (b"070701", b"070702") or head[:4] == b"\x28\xb5\x2f\xfd"
    assert sorted(p.name for p in (root / "boot").glob("initrd.img-*")) == [f"initrd.img-{v}" for v in kernels]
    assert Path(root / "initrd.img").is_symlink()
