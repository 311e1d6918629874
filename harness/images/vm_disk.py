"""The bootable disk a ``qemu-vm`` target boots, made from a root filesystem leapfrog built.

The disk is made once and cached beside the root filesystem
(``<image>/vm/``): an ext4 image of the folder with leapfrog's SSH key for
root, a host key generated here (so the guest's key is known before it boots
and checked strictly), fstab, hostname and DHCP networking added to the disk
only; the root filesystem folder is never changed.  Kernel and initrd are
copied from its ``/boot``.  :class:`BootMedia` is what one boot starts from:
such a disk, or a supplied one with its own firmware.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko

from harness.errors import ImageError, TargetError
from harness.sshkeys import generate_ed25519, known_hosts_name

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Bump when the disk made from a root filesystem changes, so cached disks are rebuilt.
VM_RECIPE = 3
#: Free space added to the disk beyond what the root filesystem uses (sparse, so cheap).
DISK_HEADROOM = 4 << 30
HOSTNAME = "leapfrog-vm"
_SBIN = ("/usr/sbin", "/sbin")
#: Packages per distro a root filesystem needs to boot as a VM reached over SSH.
VM_IMAGE_PACKAGES: dict[str, list[str]] = {
    "debian": [
        "linux-image-riscv64",
        "initramfs-tools",
        "systemd-sysv",
        "udev",
        "openssh-server",
        "python3",
    ],
}


@dataclasses.dataclass(frozen=True)
class VmDisk:
    """A cached bootable disk made from one root filesystem."""

    folder: Path

    @property
    def disk(self) -> Path:
        return self.folder / "disk.img"

    @property
    def kernel(self) -> Path:
        return self.folder / "kernel"

    @property
    def initrd(self) -> Path:
        return self.folder / "initrd.img"

    @property
    def client_key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def host_key_pub(self) -> Path:
        return self.folder / "ssh_host_ed25519_key.pub"

    @property
    def meta(self) -> Path:
        return self.folder / "vm.json"

    def host_key(self) -> paramiko.PKey:
        kind, b64 = self.host_key_pub.read_text(encoding="ascii").split()[:2]
        return paramiko.PKey.from_type_string(kind, base64.b64decode(b64))

    def known_hosts_line(self, host: str, port: int) -> str:
        key = self.host_key()
        return f"{known_hosts_name(host, port)} {key.get_name()} {key.get_base64()}\n"

    def is_complete(self) -> bool:
        try:
            meta = json.loads(self.meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("recipe") == VM_RECIPE


#: Kernel command line for the disks leapfrog builds (the root filesystem has the label "root").
KERNEL_APPEND = "root=LABEL=root rw console=ttyS0 systemd.show_status=1"


@dataclasses.dataclass(frozen=True)
class BootMedia:
    """What one boot starts from: a base disk and either a kernel or firmware."""

    disk: Path  # never written: each boot gets a copy-on-write overlay
    disk_format: str  # "raw" (built) or "qcow2" (supplied)
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    bios: str = ""  # overrides the "bios" option (a supplied image's own firmware)
    flash_code: Path | None = None  # UEFI code, pflash unit 0, read-only
    flash_vars: Path | None = None  # UEFI variables template, copied to each boot (pflash unit 1)

    @classmethod
    def built(cls, disk: VmDisk) -> BootMedia:
        return cls(disk.disk, "raw", disk.kernel, disk.initrd, KERNEL_APPEND)


@dataclasses.dataclass(frozen=True)
class Injected:
    """One file, folder or link written into the disk (not into the root filesystem)."""

    path: str  # absolute, inside the guest
    kind: str  # "file", "dir" or "symlink"
    mode: int = 0o644
    content: bytes = b""  # for files
    target: str = ""  # for symlinks


def guest_files(*, authorized_key: str, host_key: bytes, host_key_pub: str, usr_mtime_ns: int) -> list[Injected]:
    """What leapfrog adds to the disk so the guest boots to a reachable, known sshd.

    A machine-id and the ``.updated`` stamps of systemd-update-done make each
    boot an ordinary one, not a first boot that re-runs presets, ldconfig and
    the journal catalog on an emulated CPU.  ``usr_mtime_ns`` is the mtime of
    the root filesystem's ``/usr``.
    """
    updated = (
        f"# Written by leapfrog like systemd-update-done: /etc and /var match /usr.\nTIMESTAMP_NSEC={usr_mtime_ns}\n"
    ).encode()
    network = (
        "# leapfrog: DHCP on every Ethernet link (QEMU user networking).\n[Match]\nType=ether\n\n[Network]\nDHCP=yes\n"
    )
    sshd = (
        "# leapfrog: only the host key leapfrog generated, keys only.\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UseDNS no\n"
    )
    unit_dir = "/usr/lib/systemd/system"
    wants = "/etc/systemd/system/multi-user.target.wants"
    return [
        Injected("/root/.ssh", "dir", 0o700),
        Injected("/root/.ssh/authorized_keys", "file", 0o600, authorized_key.encode()),
        Injected("/etc/ssh/sshd_config.d", "dir", 0o755),
        Injected("/etc/ssh/sshd_config.d/leapfrog.conf", "file", 0o644, sshd.encode()),
        Injected("/etc/ssh/ssh_host_ed25519_key", "file", 0o600, host_key),
        Injected("/etc/ssh/ssh_host_ed25519_key.pub", "file", 0o644, host_key_pub.encode()),
        Injected("/etc/fstab", "file", 0o644, b"LABEL=root / ext4 defaults,errors=remount-ro 0 0\n"),
        Injected("/etc/hostname", "file", 0o644, f"{HOSTNAME}\n".encode()),
        Injected("/etc/machine-id", "file", 0o444, f"{secrets.token_hex(16)}\n".encode()),
        Injected("/etc/.updated", "file", 0o644, updated),
        Injected("/var/.updated", "file", 0o644, updated),
        Injected(
            "/etc/hosts",
            "file",
            0o644,
            f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n::1 localhost ip6-localhost ip6-loopback\n".encode(),
        ),
        Injected("/etc/resolv.conf", "file", 0o644, b"nameserver 10.0.2.3\n"),
        Injected("/etc/systemd/network", "dir", 0o755),
        Injected("/etc/systemd/network/80-leapfrog.network", "file", 0o644, network.encode()),
        Injected(wants, "dir", 0o755),
        Injected(f"{wants}/systemd-networkd.service", "symlink", target=f"{unit_dir}/systemd-networkd.service"),
        # Housekeeping timers and gettys on screens nobody sees would compete with the suites
        # for the emulated CPU (the serial console keeps its getty).
        *(
            Injected(f"/etc/systemd/system/{unit}", "symlink", target="/dev/null")
            for unit in (
                "apt-daily.timer",
                "apt-daily-upgrade.timer",
                "dpkg-db-backup.timer",
                "fstrim.timer",
                "getty-static.service",
                "getty@tty1.service",
            )
        ),
    ]


def debugfs_script(files: list[Injected], sources: dict[str, Path]) -> str:
    """A ``debugfs -w -f`` script that writes ``files``; ``sources`` maps file paths to host files.

    debugfs ``write`` only takes a name in the current folder, hence the ``cd``.
    Existing entries are removed first ("File not found" errors are harmless);
    ``mkdir`` of an existing folder fails harmlessly too.
    """

    def q(path: str) -> str:
        if any(c in path for c in " \t\n\"'"):
            raise ValueError(f"guest path {path!r} has characters debugfs cannot quote.")
        return path

    lines: list[str] = []
    for f in files:
        parent, _, name = f.path.rpartition("/")
        if f.kind == "dir":
            lines.append(f"mkdir {q(f.path)}")
        elif f.kind == "file":
            lines += [f"rm {q(f.path)}", f"cd {q(parent or '/')}", f"write {q(str(sources[f.path]))} {q(name)}"]
        elif f.kind == "symlink":
            lines += [f"rm {q(f.path)}", f"symlink {q(f.path)} {q(f.target)}"]
        else:
            raise ValueError(f"unknown kind {f.kind!r} for {f.path}.")
        if f.kind != "symlink":
            file_type = 0o040000 if f.kind == "dir" else 0o100000
            lines += [
                f"sif {q(f.path)} mode 0{file_type | f.mode:o}",
                f"sif {q(f.path)} uid 0",
                f"sif {q(f.path)} gid 0",
            ]
    return "\n".join(lines) + "\n"


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if not found:
        raise TargetError(
            f'qemu-vm targets need "{name}", which is not installed; on Debian or Ubuntu run: '
            f"sudo apt-get install {package}"
        )
    return found


def _run_tool(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ImageError(f"{what} failed: {shlex.join(argv)}: {e}.") from e
    if done.returncode != 0:
        raise ImageError(f"{what} failed (exit {done.returncode}): {shlex.join(argv)}\n{done.stderr.strip()[-2000:]}")
    return done


def _used_bytes(root: Path) -> tuple[int, int]:
    """(bytes allocated, number of inodes) of a folder, counting hard links once."""
    seen: set[tuple[int, int]] = set()
    used = 0
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            used += st.st_blocks * 512
            count += 1
    return used, count


def find_kernel(rootfs: Path) -> tuple[Path, Path]:
    """The newest kernel in ``rootfs/boot`` that has an initrd."""
    boot = rootfs / "boot"
    found: list[tuple[list[int], Path, Path]] = []
    for kernel in [*boot.glob("vmlinux-*"), *boot.glob("vmlinuz-*"), *boot.glob("Image-*")]:
        version = kernel.name.split("-", 1)[1]
        initrd = boot / f"initrd.img-{version}"
        if initrd.is_file():
            found.append(([int(n) for n in re.findall(r"\d+", version)], kernel, initrd))
    if not found:
        raise ImageError(
            f"{boot}: no kernel with an initrd; the image needs the packages {', '.join(VM_IMAGE_PACKAGES['debian'])}."
        )
    found.sort(key=lambda t: t[0])
    _, kernel, initrd = found[-1]
    return kernel, initrd


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_disk(rootfs: Path, *, progress: Callable[[str], None] | None = None) -> VmDisk:
    """The bootable disk for ``rootfs``, built once and cached in ``rootfs/../vm``."""
    say = progress or (lambda msg: log.info("%s", msg))
    home = rootfs.resolve().parent
    disk = VmDisk(home / "vm")
    if disk.is_complete():
        return disk
    with (home / "vm.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if disk.is_complete():  # built by someone else while we waited
            return disk
        started = time.monotonic()
        say(f"building a bootable disk from {rootfs}")
        work = Path(tempfile.mkdtemp(prefix="vm.build-", dir=home))
        try:
            _build_disk(rootfs, VmDisk(work), work)
            meta = {
                "recipe": VM_RECIPE,
                "rootfs": str(rootfs),
                "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "build_seconds": round(time.monotonic() - started, 1),
                "disk_bytes": VmDisk(work).disk.stat().st_size,
                "host_key": VmDisk(work).host_key().fingerprint,
            }
            VmDisk(work).meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if disk.folder.exists():
                old = Path(tempfile.mkdtemp(prefix="vm.old-", dir=home))
                disk.folder.rename(old / "vm")
                shutil.rmtree(old, ignore_errors=True)
            work.rename(disk.folder)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        say(f"bootable disk ready in {time.monotonic() - started:.0f} s: {disk.disk}")
    return disk


def _build_disk(rootfs: Path, out: VmDisk, work: Path) -> None:
    mke2fs = _tool("mke2fs", "e2fsprogs")
    debugfs = _tool("debugfs", "e2fsprogs")
    kernel, initrd = find_kernel(rootfs)
    shutil.copyfile(kernel, out.kernel)
    shutil.copyfile(initrd, out.initrd)

    client_private, client_public = generate_ed25519()
    _write_private(out.client_key, client_private)
    out.client_key.with_suffix(".pub").write_text(client_public, encoding="ascii")
    host_private, host_public = generate_ed25519()
    out.host_key_pub.write_text(host_public, encoding="ascii")

    used, inodes = _used_bytes(rootfs)
    size_kib = (int(used * 1.2) + (256 << 20) + DISK_HEADROOM) // 1024
    _run_tool(
        [
            mke2fs, "-q", "-F", "-t", "ext4", "-L", "root", "-m", "0",
            "-N", str(inodes * 2 + 65536), "-E", "root_owner=0:0",
            "-d", str(rootfs), str(out.disk), f"{size_kib}k",
        ],
        f"making the ext4 disk from {rootfs}",
    )  # fmt: skip

    files = guest_files(
        authorized_key=client_public,
        host_key=host_private,
        host_key_pub=host_public,
        usr_mtime_ns=(rootfs / "usr").stat().st_mtime_ns,
    )
    staging = work / "inject"
    staging.mkdir(mode=0o700)
    sources: dict[str, Path] = {}
    for i, f in enumerate(files):
        if f.kind == "file":
            sources[f.path] = staging / f"{i}"
            _write_private(sources[f.path], f.content)
    script = work / "inject.debugfs"
    script.write_text(debugfs_script(files, sources), encoding="utf-8")
    _run_tool([debugfs, "-w", "-f", str(script), str(out.disk)], "adding leapfrog's files to the disk")
    for f in files:  # debugfs -f exits 0 even when a command failed: check what landed
        if f.kind == "dir":
            continue
        command = f"cat {f.path}" if f.kind == "file" else f"stat {f.path}"
        got = subprocess.run([debugfs, "-R", command, str(out.disk)], capture_output=True, check=False).stdout
        if (f.kind == "file" and got != f.content) or (
            f.kind == "symlink" and f'Fast link dest: "{f.target}"'.encode() not in got
        ):
            raise ImageError(
                f'could not write "{f.path}" into {out.disk} with debugfs; see {script} for the commands tried.'
            )
    shutil.rmtree(staging)
    script.unlink()
