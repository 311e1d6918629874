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
(:mod:`harness.images.vm_disk`).  A supplied disk (``[image] source =
"qcow2"`` with ``path`` or ``url``, as openEuler publishes them) boots through
its own firmware and is logged in to with a password
(:mod:`harness.targets.qemu_boot`)::

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
runner to collect).  Commands, files and ports go over SSH
(:class:`~harness.targets.ssh_base.SshBackedTarget`); this module is the
machine's lifecycle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import paramiko

from harness.errors import ConfigError, TargetError
from harness.images.vm_disk import VM_IMAGE_PACKAGES, BootMedia, VmDisk, _run_tool, _tool, ensure_disk
from harness.kinds import QemuVmOptions, SshOptions
from harness.targets.qemu_boot import qemu_argv, supplied_media
from harness.targets.ssh_base import SshBackedTarget
from harness.targets.ssh_session import SshSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.config import TargetConfig
    from harness.model import TargetFacts

log = logging.getLogger(__name__)

#: Seconds ``stop()`` gives the guest to power off before QEMU is terminated.
POWEROFF_WAIT = 20.0


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


class QemuVmTarget(SshBackedTarget):
    """A riscv64 virtual machine that leapfrog boots with qemu-system-riscv64."""

    kind = "qemu-vm"
    needs_image = True
    emulation = "qemu-system"
    image_packages: ClassVar[dict[str, list[str]]] = VM_IMAGE_PACKAGES

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
        return supplied_media(self.config, self.progress)

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
        return qemu_argv(self.options, media, overlay, port, flash_vars)

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
        session = self.ssh_session()
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

    def ssh_session(self) -> SshSession:
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

    # ----------------------------------------------------------------- facts

    def facts(self) -> TargetFacts:
        facts = super().facts()
        facts.cpu_model = self.options.cpu or "rv64"
        facts.extra["qemu_machine"] = self.options.machine
        facts.extra["qemu_smp"] = str(self.options.cpus)
        facts.extra["qemu_memory"] = self.options.memory
        if self.boot_seconds is not None:
            facts.extra["boot_seconds"] = f"{self.boot_seconds:.1f}"
        return facts
