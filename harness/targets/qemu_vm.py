"""A whole riscv64 machine: qemu-system-riscv64 booted by leapfrog, reached over SSH.

Target file keys (besides the common ones and the required ``[image]``)::

    kind = "qemu-vm"
    cpus = 2
    memory = "2G"
    cpu = ""              # QEMU -cpu model, e.g. "rv64,v=true,vlen=256"; "" = QEMU's rv64
    boot_timeout = 300.0  # seconds from QEMU start to a working SSH login
    io_timeout = 120.0    # seconds for the guest to answer one exec or SFTP request
    machine = "virt"
    bios = "default"      # QEMU's bundled OpenSBI
    extra_args = []       # appended to the QEMU command line
    user = "root"         # supplied images only (see below)
    password_env = ""     # supplied images only: NAME of the variable holding the password

From the Debian root filesystem leapfrog builds (``harness.images``) this
backend makes a bootable disk once and caches it beside the root filesystem
(``<image>/vm/``): an ext4 image of the folder with leapfrog's SSH key for
root, a host key generated here (so the guest's key is known before it boots
and checked strictly), fstab, hostname and DHCP networking added to the disk
only; the root filesystem folder is never changed.  Kernel and initrd are
copied from its ``/boot``.

A supplied disk (``[image] source = "qcow2"`` with ``path`` or ``url``, as
openEuler publishes them) boots through its own firmware: one file in
``image.firmware`` is a ``-bios`` payload, two are UEFI code and variables
for pflash (the variables are copied per boot).  leapfrog's key is not in such
an image, so it logs in as ``user`` with the password from the environment
variable named by ``password_env``, and trusts the host key it sees first in
each boot (the image may make a new one on every first boot)::

    kind = "qemu-vm"
    user = "root"
    password_env = "LEAPFROG_OPENEULER_PASSWORD"
    [image]
    distro = "openeuler"
    source = "qcow2"
    url = "https://.../openEuler-24.03-LTS-SP1-riscv64.qcow2.xz"
    firmware = ["/path/RISCV_VIRT_CODE.fd", "/path/RISCV_VIRT_VARS.fd"]

Each ``start()`` boots from a throw-away qcow2 overlay on the disk, with SSH
forwarded to a free port on 127.0.0.1, and keeps the serial console in
``console_log`` (inside ``artifacts_dir``, which ``stop()`` leaves for the
runner to collect).
"""

from __future__ import annotations

import base64
import contextlib
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
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import paramiko

from harness.errors import ConfigError, ImageError, TargetError
from harness.kinds import QemuVmOptions, SshOptions
from harness.sshkeys import generate_ed25519
from harness.targets._common import GET_LIMIT, probe_facts
from harness.targets.base import Completed, Target
from harness.targets.ssh_session import SshSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.config import TargetConfig
    from harness.model import TargetFacts

log = logging.getLogger(__name__)

#: Bump when the disk made from a root filesystem changes, so cached disks are rebuilt.
VM_RECIPE = 3
#: Free space added to the disk beyond what the root filesystem uses (sparse, so cheap).
DISK_HEADROOM = 4 << 30
HOSTNAME = "leapfrog-vm"
#: Seconds ``stop()`` gives the guest to power off before QEMU is terminated.
POWEROFF_WAIT = 20.0
_SBIN = ("/usr/sbin", "/sbin")


# --------------------------------------------------------------------------- the bootable disk


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
        name = host if port == 22 else f"[{host}]:{port}"
        return f"{name} {key.get_name()} {key.get_base64()}\n"

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
            f"{boot}: no kernel with an initrd; the image needs the packages "
            f"{', '.join(QemuVmTarget.image_packages['debian'])}."
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


# --------------------------------------------------------------------------- the target


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or "" if it cannot be read."""
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class QemuVmTarget(Target):
    """A riscv64 virtual machine that leapfrog boots with qemu-system-riscv64."""

    kind = "qemu-vm"
    needs_image = True
    emulation = "qemu-system"
    image_packages: ClassVar[dict[str, list[str]]] = {
        "debian": [
            "linux-image-riscv64",
            "initramfs-tools",
            "systemd-sysv",
            "udev",
            "openssh-server",
            "python3",
        ],
    }

    Options = QemuVmOptions

    def __init__(
        self,
        config: TargetConfig,
        *,
        packages: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, packages=packages, progress=progress)
        #: A ready root filesystem to boot instead of asking ``harness.images`` for one.
        self.rootfs: Path | None = None
        #: Where the console log and QEMU's own output are kept; made by ``start()`` if unset.
        self.artifacts_dir: Path | None = None
        self.console_log: Path | None = None
        #: Seconds from starting QEMU to the first SSH login, once booted.
        self.boot_seconds: float | None = None
        self.ssh_port: int | None = None
        self.disk: VmDisk | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._session: SshSession | None = None

    @property
    def options(self) -> QemuVmOptions:
        opts: QemuVmOptions = self.config.options
        return opts

    def __repr__(self) -> str:
        return f"<QemuVmTarget {self.name!r} ssh=127.0.0.1:{self.ssh_port}>"

    @property
    def qemu_pid(self) -> int | None:
        """PID of the running QEMU process, if any."""
        return self._proc.pid if self._proc is not None else None

    @property
    def workdir(self) -> Path | None:
        """The per-boot folder (overlay, known_hosts); removed by ``stop()``."""
        return self._workdir

    # ----------------------------------------------------------------- image

    def image_packages_for(self, distro: str) -> list[str]:
        return sorted({*self.image_packages.get(distro, []), *self.packages})

    def _media(self) -> tuple[BootMedia, SshOptions]:
        """The disk to boot and how to log in: a disk built from Debian, or a supplied qcow2."""
        self.disk = None
        spec = self.config.image
        if spec is None and self.rootfs is None:
            raise ConfigError(f'{self.config.file}: kind "qemu-vm" needs an [image] table.')
        if self.rootfs is not None or (spec is not None and spec.source == "build" and spec.distro == "debian"):
            self.disk = disk = ensure_disk(self._ensure_rootfs(), progress=self.progress)
            login = SshOptions(host="127.0.0.1", user="root", key_file=str(disk.client_key))
            return BootMedia.built(disk), login
        assert spec is not None
        if spec.source != "qcow2":
            raise ConfigError(
                f'{self.config.file}: kind "qemu-vm" boots Debian images that leapfrog builds (source "build") '
                f'or a supplied disk (source "qcow2"); source "{spec.source}" is not supported.'
            )
        if not self.options.password_env:
            raise ConfigError(
                f'{self.config.file}: a supplied qcow2 image has no leapfrog key in it; set "password_env" '
                "to the NAME of an environment variable holding the login password."
            )
        code = vars_ = None
        bios = ""
        firmware = [self._supplied(f, "", trust_sha256sum=spec.trust_sha256sum) for f in spec.firmware]
        if len(firmware) == 1:
            bios = str(firmware[0])  # an image's own OpenSBI/U-Boot payload
        elif len(firmware) == 2:
            code, vars_ = firmware  # UEFI: code and variables in pflash
        elif firmware:
            raise ConfigError(
                f'{self.config.file}: key "image.firmware" lists {len(firmware)} files; give one (a -bios payload) '
                "or two (UEFI code and variables for pflash)."
            )
        supplied = self._supplied(spec.path or spec.url, spec.sha256, trust_sha256sum=spec.trust_sha256sum)
        media = BootMedia(supplied, "qcow2", bios=bios, flash_code=code, flash_vars=vars_)
        o = self.options
        # The image brings its own host key, often made on first boot: trust it on first use,
        # per boot, then check it strictly for the rest of that boot.
        login = SshOptions(host="127.0.0.1", user=o.user, password_env=o.password_env, accept_new_host_key=True)
        return media, login

    def _supplied(self, where: str, sha256: str, *, trust_sha256sum: bool = False) -> Path:
        """A local path as is; a URL fetched (checksum verified) and decompressed into the cache.

        Once fetched, a URL needs no network: its digest is ``sha256`` or the one
        pinned at the first fetch, and the decompressed disk is used only if it
        came from an archive with that digest.
        """
        if not where:
            raise ConfigError(f'{self.config.file}: the [image] table needs "path" or "url" for source "qcow2".')
        if "://" not in where:
            path = Path(where).expanduser()
            if not path.is_file():
                raise ConfigError(f'{self.config.file}: image file "{where}" does not exist.')
            return path
        from harness.images import fetch

        self.progress(f"fetching {where}")
        try:
            path, digest = fetch.fetch_image(where, sha256, trust_sha256sum=trust_sha256sum)
        except ImageError as e:
            raise ImageError(f"{self.config.file}: {e}") from e
        return fetch.decompress_xz(path, digest)

    def _ensure_rootfs(self) -> Path:
        if self.rootfs is not None:
            return self.rootfs
        spec = self.config.image
        assert spec is not None
        from harness import images  # imported late: only this path needs mmdebstrap and its helpers

        path: Path = images.ensure_rootfs(spec, self.image_packages_for(spec.distro), progress=self.progress)
        return path

    # ----------------------------------------------------------------- lifecycle

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise TargetError(
                f'target "{self.name}": qemu-system-riscv64 exited with code {self._proc.returncode}. '
                f"Its output is in {self.artifacts_dir}; last console lines:\n{tail(self.console_log)}"
                + self._qemu_output()
            )

    def _check_alive_after_loss(self) -> None:
        """The SSH connection dropped: if QEMU is dying, say so rather than "connection closed".

        A killed QEMU closes its sockets before its parent can reap it, so give
        the exit a moment to show before looking.
        """
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=3)
        self._check_alive()

    def _qemu_output(self) -> str:
        text = tail(self.artifacts_dir / "qemu.log" if self.artifacts_dir else None, 10)
        return f"\nQEMU said:\n{text}" if text else ""

    def qemu_argv(self, media: BootMedia, overlay: Path, port: int, flash_vars: Path | None = None) -> list[str]:
        """The QEMU command line for one boot (without the serial console, which ``start()`` adds).

        ``flash_vars`` is this boot's writable copy of ``media.flash_vars``.
        """
        o = self.options
        argv = [
            "qemu-system-riscv64",
            "-machine", o.machine,
            "-bios", media.bios or o.bios,
            "-smp", str(o.cpus),
            "-m", o.memory,
        ]  # fmt: skip
        if o.cpu:
            argv += ["-cpu", o.cpu]
        if media.kernel is not None:
            argv += ["-kernel", str(media.kernel)]
            if media.initrd is not None:
                argv += ["-initrd", str(media.initrd)]
            argv += ["-append", media.append]
        if media.flash_code is not None:
            argv += ["-drive", f"if=pflash,unit=0,format=raw,readonly=on,file={media.flash_code}"]
            if flash_vars is not None:
                argv += ["-drive", f"if=pflash,unit=1,format=raw,file={flash_vars}"]
        argv += [
            "-drive", f"file={overlay},format=qcow2,if=none,id=hd0,cache=unsafe",
            "-device", "virtio-blk-device,drive=hd0",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-device,netdev=n0",
            "-object", "rng-random,filename=/dev/urandom,id=rng0",
            "-device", "virtio-rng-device,rng=rng0",
            "-display", "none",
            "-monitor", "none",
            "-no-reboot",
        ]  # fmt: skip
        return [*argv, *o.extra_args]

    def start(self) -> None:
        if self._alive() and self._session is not None:
            self._session.connect()  # already booted: at most a reconnect
            return
        self.stop()
        qemu = _tool("qemu-system-riscv64", "qemu-system-misc opensbi")
        qemu_img = _tool("qemu-img", "qemu-utils")
        try:
            media, login = self._media()
            if self.artifacts_dir is None:
                self.artifacts_dir = Path(tempfile.mkdtemp(prefix=f"leapfrog-{self.name}-"))
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            self.console_log = self.artifacts_dir / "console.log"
            self._workdir = Path(tempfile.mkdtemp(prefix="leapfrog-vm-"))
            overlay = self._workdir / "overlay.qcow2"
            _run_tool(
                [qemu_img, "create", "-q", "-f", "qcow2", "-F", media.disk_format, "-b", str(media.disk), str(overlay)],
                "creating the copy-on-write overlay",
            )
            flash_vars = None
            if media.flash_vars is not None:
                flash_vars = self._workdir / "vars.fd"
                shutil.copyfile(media.flash_vars, flash_vars)
            self._boot(qemu, self.qemu_argv(media, overlay, 0, flash_vars), login)
        except BaseException:
            self.stop()
            raise

    def _boot(self, qemu: str, template: list[str], login: SshOptions) -> None:
        """Start QEMU from ``template`` (its port 0 replaced by a free one) and wait for SSH."""
        assert self._workdir is not None
        assert self.artifacts_dir is not None
        assert self.console_log is not None
        o = self.options
        netdev = template.index("-netdev") + 1
        for attempt in range(3):  # another process may take the free port before QEMU binds it
            port = _free_port()
            argv = [qemu, *template[1:], "-serial", f"file:{self.console_log}"]
            argv[netdev] = argv[netdev].replace("127.0.0.1:0-:22", f"127.0.0.1:{port}-:22")
            log.info("%s: booting: %s", self.name, shlex.join(argv))
            started = time.monotonic()
            with (self.artifacts_dir / "qemu.log").open("ab") as out:
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            time.sleep(0.5)
            if self._proc.poll() is not None and "host forwarding" in self._qemu_output() and attempt < 2:
                continue
            break
        self.ssh_port = port
        known_hosts = self._workdir / "known_hosts"
        known_hosts.write_text(
            self.disk.known_hosts_line("127.0.0.1", port) if self.disk is not None else "", encoding="ascii"
        )
        options = dataclasses.replace(
            login, port=port, known_hosts=str(known_hosts), connect_timeout=30.0, io_timeout=o.io_timeout
        )
        session = SshSession(
            options, target_name=self.name, check_alive=self._check_alive, on_lost=self._check_alive_after_loss
        )
        deadline = started + o.boot_timeout
        last: BaseException | None = None
        while True:
            self._check_alive()
            try:
                session.connect_once(quiet=True)
                break
            except (paramiko.BadHostKeyException, paramiko.AuthenticationException) as e:
                hint = (
                    f"the cached disk in {self.disk.folder} may be damaged: delete that folder to rebuild it"
                    if self.disk is not None
                    else f'check "user" and the password in ${o.password_env}'
                )
                raise TargetError(f'target "{self.name}": the VM answered SSH but {e}; {hint}.') from e
            except (paramiko.SSHException, OSError, EOFError) as e:
                last = e
            if time.monotonic() > deadline:
                raise TargetError(
                    f'target "{self.name}": no SSH login within boot_timeout = {o.boot_timeout:.0f} s '
                    f"(last error: {last}); raise boot_timeout if the host is busy. "
                    f"Last console lines ({self.console_log}):\n{tail(self.console_log)}"
                )
            time.sleep(2)
        self.boot_seconds = time.monotonic() - started
        self._session = session
        log.info("%s: SSH up after %.1f s on 127.0.0.1:%d", self.name, self.boot_seconds, port)

    def handle(self) -> dict[str, Any]:
        """How another process logs in to this booted VM: the SSH options (no secret in them)."""
        session = self._ssh()
        return {"ssh": dataclasses.asdict(session.options), "boot_seconds": self.boot_seconds}

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> QemuVmTarget:
        """A second SSH connection to a VM another process booted; ``stop()`` closes only it."""
        target = cls(config)
        try:
            # The boot's known_hosts holds the key by now: check it strictly.
            login = SshOptions(**{**handle["ssh"], "accept_new_host_key": False})
        except (KeyError, TypeError) as e:
            raise TargetError(f"target {config.name}: no booted VM to attach to ({e}).") from e
        target.boot_seconds = handle.get("boot_seconds")
        session = SshSession(login, target_name=config.name)
        session.connect()
        target._session = session
        return target

    def _ssh(self) -> SshSession:
        self._check_alive()
        if self._session is None:
            raise TargetError(f'target "{self.name}" is not running; call start() first.')
        return self._session

    def stop(self) -> None:
        session, self._session = self._session, None
        graceful = False
        if session is not None:
            if self._alive() and session.connected:
                with contextlib.suppress(TargetError):
                    graceful = session.run(["systemctl", "poweroff", "--no-block"], timeout=20).ok
            session.close()
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout=POWEROFF_WAIT if graceful else 0.1)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)

    # ----------------------------------------------------------------- the interface

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        return self._ssh().run(argv, timeout=timeout, env={**self.config.env, **(env or {})}, cwd=cwd)

    def put(self, local: Path, remote: str) -> None:
        self._ssh().put(local, remote)

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        self._ssh().get(remote, local, limit=limit)

    def forward(self, port: int) -> tuple[str, int]:
        return self._ssh().forward(port)

    def facts(self) -> TargetFacts:
        facts = probe_facts(self)
        facts.cpu_model = self.options.cpu or "rv64"
        facts.extra["qemu_machine"] = self.options.machine
        facts.extra["qemu_smp"] = str(self.options.cpus)
        facts.extra["qemu_memory"] = self.options.memory
        if self.boot_seconds is not None:
            facts.extra["boot_seconds"] = f"{self.boot_seconds:.1f}"
        return facts
