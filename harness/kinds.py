"""What each target kind accepts in its TOML file, without importing the backend.

``harness.config`` checks a target file against the ``Options`` dataclass of
its kind from :data:`KINDS`; the backend module (which may need paramiko or
the docker SDK) is imported only when a target of that kind is used
(:func:`harness.targets.backend_class`).  A backend's ``Options`` class
attribute is the same dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import re

from harness.errors import ConfigError

_MEMORY_DOCKER = re.compile(r"\d+(\.\d+)?[bkmg]?\Z", re.IGNORECASE)
_MEMORY_VM = re.compile(r"\d+[KMGT]?\Z", re.IGNORECASE)
_PLATFORM = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?\Z")
_CAP = re.compile(r"[A-Z_]+\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclasses.dataclass(frozen=True)
class BaseOptions:
    """Backend-specific TOML keys; none by default."""


@dataclasses.dataclass(frozen=True)
class NativeOptions(BaseOptions):
    """A native target has no keys of its own."""


@dataclasses.dataclass(frozen=True)
class ChrootOptions(BaseOptions):
    cpu: str = ""  # QEMU CPU model for qemu-user, e.g. "rv64,v=true,vlen=256"
    rootfs: str = ""  # use this root filesystem folder instead of building the image
    qemu: str = ""  # "" the host's binfmt entry; "debian-trixie" Debian 13's qemu-user from leapfrog's cache


@dataclasses.dataclass(frozen=True)
class DockerOptions(BaseOptions):
    image_ref: str = ""  # use this image by reference (pulled if missing and a registry answers)
    image_tarball: str = ""  # a `docker save` archive to load (once per file)
    platform: str = "linux/riscv64"
    cpus: float = 0.0  # 0: no limit
    memory: str = ""  # "": no limit; e.g. "2g", "512m"
    network: bool = False  # False: network_mode "none"
    ports: list[int] = dataclasses.field(default_factory=list)  # published on 127.0.0.1 (needs network)
    docker_host: str = ""  # "": DOCKER_HOST, else the local socket; ssh:// works
    cpu: str = ""  # QEMU CPU model for qemu-user, e.g. "rv64,v=true,vlen=256"
    pids_limit: int = 4096  # processes and threads (qemu-user counts each guest thread); 0: no limit
    cap_add: list[str] = dataclasses.field(default_factory=list)  # beyond harness.targets.docker.KEPT_CAPS

    def __post_init__(self) -> None:
        if self.pids_limit < 0:
            raise ConfigError(f'docker target: key "pids_limit" must be 0 (no limit) or more, not {self.pids_limit}.')
        for cap in self.cap_add:
            if not _CAP.match(cap.upper().removeprefix("CAP_")) or cap.upper() in ("ALL", "CAP_ALL"):
                raise ConfigError(
                    f'docker target: key "cap_add" holds {cap!r}; name single capabilities like "NET_RAW".'
                )
        if self.cpus < 0:
            raise ConfigError(f'docker target: key "cpus" must be 0 (no limit) or more, not {self.cpus}.')
        if self.memory and not _MEMORY_DOCKER.match(self.memory):
            raise ConfigError(f'docker target: key "memory" is "{self.memory}"; write a size such as "2g" or "512m".')
        if not _PLATFORM.match(self.platform):
            raise ConfigError(
                f'docker target: key "platform" is "{self.platform}"; write it as os/arch, e.g. "linux/riscv64".'
            )
        for port in self.ports:
            if not 0 < port < 65536:
                raise ConfigError(f'docker target: key "ports" holds {port}, which is not a TCP port (1-65535).')
        if self.ports and not self.network:
            raise ConfigError(
                'docker target: key "ports" needs "network = true"; without a network there is nothing to publish.'
            )


@dataclasses.dataclass(frozen=True)
class SshOptions(BaseOptions):
    """TOML keys of an ``ssh`` target."""

    host: str
    port: int = 22
    user: str = "root"
    key_file: str = ""
    password_env: str = ""  # the NAME of an environment variable, never the password
    known_hosts: str = ""  # default: ~/.ssh/known_hosts
    accept_new_host_key: bool = False
    connect_timeout: float = 30.0
    io_timeout: float = 120.0  # one exec or SFTP request; a VM under TCG can take a minute

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError('key "host" must name the machine to connect to; it is empty.')
        if not 1 <= self.port <= 65535:
            raise ConfigError(f'key "port" must be between 1 and 65535, not {self.port}.')
        if not self.user:
            raise ConfigError('key "user" must name the user to log in as; it is empty.')
        if self.password_env and not ENV_NAME.match(self.password_env):
            # The value may be a password pasted by mistake: never repeat it.
            raise ConfigError(
                'key "password_env" must be the NAME of an environment variable that holds '
                'the password (like "BOARD_PASSWORD"), not the password itself.'
            )
        for key in ("connect_timeout", "io_timeout"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f'key "{key}" must be a positive number of seconds, not {value}.')


@dataclasses.dataclass(frozen=True)
class QemuVmOptions(BaseOptions):
    """TOML keys of a ``qemu-vm`` target."""

    cpus: int = 2
    memory: str = "2G"
    cpu: str = ""
    boot_timeout: float = 300.0
    io_timeout: float = 120.0  # one exec or SFTP request over SSH: TCG is slow
    machine: str = "virt"
    bios: str = "default"
    extra_args: list[str] = dataclasses.field(default_factory=list)
    # Supplied images only (source "qcow2"): leapfrog's key is not in them.
    user: str = "root"
    password_env: str = ""  # the NAME of an environment variable, never the password

    def __post_init__(self) -> None:
        if self.cpus < 1:
            raise ConfigError(f'key "cpus" must be 1 or more, not {self.cpus}.')
        if not _MEMORY_VM.match(self.memory):
            raise ConfigError(f'key "memory" must be a size like "2G" or "2048M", not "{self.memory}".')
        if not (math.isfinite(self.boot_timeout) and self.boot_timeout > 0):
            raise ConfigError(f'key "boot_timeout" must be a positive number of seconds, not {self.boot_timeout}.')
        # The same rules as an ssh target's (user, password_env, io_timeout).
        SshOptions(host="127.0.0.1", user=self.user, password_env=self.password_env, io_timeout=self.io_timeout)


@dataclasses.dataclass(frozen=True)
class Kind:
    """One target kind: its TOML keys, whether it runs an image, and where its backend is."""

    options: type[BaseOptions]
    needs_image: bool
    backend: str  # "module:Class", imported on first use


KINDS: dict[str, Kind] = {
    "native": Kind(NativeOptions, False, "harness.targets.native:NativeTarget"),
    "chroot": Kind(ChrootOptions, True, "harness.targets.chroot:ChrootTarget"),
    "docker": Kind(DockerOptions, True, "harness.targets.docker:DockerTarget"),
    "ssh": Kind(SshOptions, False, "harness.targets.ssh:SshTarget"),
    "qemu-vm": Kind(QemuVmOptions, True, "harness.targets.qemu_vm:QemuVmTarget"),
}
