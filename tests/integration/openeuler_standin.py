"""A local stand-in for an openEuler riscv64 repository: Debian riscv64 files repackaged as RPMs.

openEuler's mirrors are not reachable from where leapfrog is tested, so the
dnf image builder (:mod:`harness.images.dnf_rootfs`) is tested end to end
against this instead.  Everything here is labelled a stand-in: the RPMs' summary
says "stand-in (Debian riscv64 files repackaged, not openEuler)", and the
image's ``/etc/os-release`` says so in PRETTY_NAME and VARIANT.

The files come from the shared Debian trixie riscv64 image, read only (copied,
never modified).  Four RPMs, built with ``rpmbuild --target riscv64`` (no
scriptlets, no automatic dependencies), each *providing* the openEuler name
leapfrog asks for, so dnf resolves ``python3`` to ``standin-python3``:

* ``standin-filesystem`` (provides ``filesystem``): the merged-/usr links, the
  mount points, a root user, and the stand-in ``/etc/os-release``;
* ``standin-coreutils`` (provides ``coreutils``): Debian's coreutils and dash with the libraries they need;
* ``standin-python3`` (provides ``python3``): Debian's python3 and what it needs, not already packed;
* ``standin-python3-pytest`` (provides ``python3-pytest``): python3-pytest and its modules.

``createrepo_c`` indexes them under the layout dnf reads
(``openEuler-<release>/everything/riscv64/<profile>/riscv64/``), and
:func:`serve` serves that on 127.0.0.1 only, on a port the kernel picks.  The
repository is unsigned: a target file using it says ``gpgcheck = false``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

LABEL = "stand-in (Debian riscv64 files repackaged, not openEuler)"
OS_RELEASE = f"""NAME="openEuler"
VERSION="24.03 (LTS-SP3) {LABEL}"
ID="openEuler"
VERSION_ID="24.03"
PRETTY_NAME="openEuler 24.03 (LTS-SP3) {LABEL}"
VARIANT="{LABEL}"
VARIANT_ID="leapfrog-standin"
"""
#: Debian packages the stand-in leaves out: package management and data nothing here runs.
SKIP = {"dpkg", "debconf", "tar", "tzdata", "libdb5.3t64", "debianutils", "readline-common", "media-types"}
#: (RPM name, what it provides, what it requires, the Debian packages whose closure it packs)
RPMS = [
    ("standin-coreutils", "coreutils", "standin-filesystem", ["coreutils", "dash"]),
    ("standin-python3", "python3", "standin-coreutils", ["python3"]),
    ("standin-python3-pytest", "python3-pytest", "standin-python3", ["python3-pytest"]),
]
_SPEC = """Name: {name}
Version: 1
Release: 0.leapfrog
Summary: {label}: {provides}
License: see /usr/share/doc (Debian packages)
AutoReqProv: no
Provides: {provides}
{requires}
%description
{label}. Files of Debian riscv64 packages, packed for leapfrog's dnf image test; not openEuler.

%install
cp -a {staging}/. %{{buildroot}}/

%files
{files}
"""


def _status(root: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Installed packages of a Debian root (fields by name), and virtual names to a provider."""
    packages: dict[str, dict[str, str]] = {}
    provides: dict[str, str] = {}
    for block in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields and "installed" in fields.get("Status", "").split():
            packages[fields["Package"]] = fields
            for item in fields.get("Provides", "").split(","):
                if item.strip():
                    provides.setdefault(item.split()[0], fields["Package"])
    return packages, provides


def closure(root: Path, names: list[str]) -> set[str]:
    """``names`` and every Debian package they depend on (first installed alternative), without :data:`SKIP`."""
    packages, provides = _status(root)
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen or name in SKIP:
            continue
        seen.add(name)
        fields = packages[name]
        for field in ("Pre-Depends", "Depends"):
            for group in filter(None, (g.strip() for g in fields.get(field, "").split(","))):
                for alt in group.split("|"):
                    dep = alt.split()[0].split(":")[0]
                    if dep in packages or dep in provides:
                        todo.append(dep if dep in packages else provides[dep])
                        break
    return seen


def files_of(root: Path, packages: set[str]) -> set[str]:
    """The files and links the packages own (paths inside ``root``, directory links resolved), with their .pyc."""
    out: set[str] = set()
    info = root / "var/lib/dpkg/info"
    for name in packages:
        listing = info / f"{name}.list"
        if not listing.exists():
            listing = info / f"{name}:riscv64.list"
        for line in listing.read_text().splitlines():
            if not line or line.startswith(("/usr/share/man/", "/usr/share/locale/")):
                continue
            path = Path(os.path.realpath((root / line.lstrip("/")).parent)) / Path(line).name
            if path.is_symlink() or path.is_file():
                rel = str(path.relative_to(root))
                out.add(rel)
                if rel.endswith(".py"):  # Debian byte-compiles in postinst: keep those, pytest starts faster
                    cache = path.parent / "__pycache__"
                    out.update(str(p.relative_to(root)) for p in cache.glob(f"{path.stem}.cpython-*.pyc"))
    return out


def _stage(root: Path, files: set[str], staging: Path) -> None:
    for rel in sorted(files):
        src, dst = root / rel, staging / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


def _filesystem(staging: Path) -> None:
    """The skeleton openEuler's ``filesystem`` package would give, and the stand-in's os-release."""
    for d in ("usr/bin", "usr/sbin", "usr/lib", "etc", "root", "proc", "sys", "dev", "run", "var/tmp"):
        (staging / d).mkdir(parents=True, exist_ok=True)
    (staging / "tmp").mkdir(mode=0o1777)
    (staging / "tmp").chmod(0o1777)
    for link in ("bin", "sbin", "lib"):
        (staging / link).symlink_to(f"usr/{link}")
    (staging / "usr/bin/sh").symlink_to("dash")
    (staging / "etc/os-release").write_text(OS_RELEASE)
    (staging / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (staging / "etc/group").write_text("root:x:0:\n")


def _rpmbuild(name: str, provides: str, requires: str, staging: Path, work: Path) -> Path:
    entries = sorted("/" + p.name for p in staging.iterdir())
    spec = work / f"{name}.spec"
    spec.write_text(
        _SPEC.format(
            name=name,
            label=LABEL,
            provides=provides,
            requires=f"Requires: {requires}" if requires else "",
            staging=staging,
            files="\n".join(f'"{e}"' for e in entries),
        )
    )
    home = work / "home"
    home.mkdir(exist_ok=True)
    defines = {
        "_topdir": str(work / "top"),
        "__spec_install_post": "%{nil}",  # no stripping, byte-compiling or build-id links
        "debug_package": "%{nil}",
        "_build_id_links": "none",
        "_binary_payload": "w0.ufdio",  # uncompressed: built in seconds
    }
    argv = ["rpmbuild", "-bb", "--target", "riscv64", "--quiet"]
    for key, value in defines.items():
        argv += ["--define", f"{key} {value}"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    done = subprocess.run([*argv, str(spec)], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, f"rpmbuild {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (rpm,) = (work / "top" / "RPMS" / "riscv64").glob(f"{name}-1-*.riscv64.rpm")
    return rpm


def make_repo(debian_root: Path, www: Path, work: Path, *, release: str, profile: str) -> Path:
    """Build the stand-in repository under ``www`` (the mirror root); return its folder (what dnf reads)."""
    repo = www / f"openEuler-{release}" / "everything" / "riscv64" / profile / "riscv64"
    packages = repo / "Packages"
    packages.mkdir(parents=True)
    fs = work / "stage-standin-filesystem"
    fs.mkdir(parents=True)
    _filesystem(fs)
    built = [_rpmbuild("standin-filesystem", "filesystem", "", fs, work)]
    packed: set[str] = set()
    for name, provides, requires, debs in RPMS:
        pkgs = closure(debian_root, debs) - packed
        packed |= pkgs
        staging = work / f"stage-{name}"
        staging.mkdir()
        _stage(debian_root, files_of(debian_root, pkgs), staging)
        built.append(_rpmbuild(name, provides, requires, staging, work))
    for rpm in built:
        shutil.copy2(rpm, packages / rpm.name)
    index = ["createrepo_c", "--quiet", str(repo)]
    done = subprocess.run(index, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"createrepo_c failed: {done.stderr[-3000:]}"
    return repo


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(www: Path) -> Iterator[str]:
    """Serve ``www`` on 127.0.0.1 (a port the kernel picks) while the block runs; yields the mirror URL."""
    handler = functools.partial(_Quiet, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
