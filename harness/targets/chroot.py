"""chroot: a riscv64 root filesystem entered through qemu-user and binfmt.

Each ``start()`` mounts a copy-on-write overlay of the cached image (the image
itself stays pristine, and two targets can share one image at once), then
/proc, /sys and /dev inside it.  ``stop()`` kills every process whose root is
the overlay and unmounts everything, also after an error or Ctrl-C.

Host safety: the work folder ``runs/<target>-XXXX`` is locked (``flock``) for
the target's whole life and its mounts are journaled before they are made
(:mod:`harness.mounts`), so the next start cleans up after a kill -9 exactly
the folders nobody holds, and never deletes a folder that still holds a mount.  A target
file's ``cpu`` becomes ``QEMU_CPU`` for qemu-user, which turns RISC-V
extensions on and off::

    kind = "chroot"
    cpu = "rv64,v=true,vlen=256"
    [image]
    distro = "debian"
    release = "trixie"
    arch = "riscv64"

``qemu`` picks the emulator (:mod:`harness.qemu_user`): "" is the host's
binfmt entry; ``"debian-trixie"`` is Debian 13's QEMU 10, kept in leapfrog's
cache, and every command then runs through :mod:`harness.qemu_enter` in a
user namespace whose own binfmt_misc sends every riscv64 program, children
included, to that qemu with the target's ``-cpu`` on its command line (a child
started with an emptied environment keeps the CPU model; the host's binfmt is
not touched).  With the host's entry, the model travels in ``QEMU_CPU`` only.
Either way the ``cpu`` model must be one the emulator knows, or the target
does not start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness import mounts, qemu_enter, qemu_user, qemu_wrapper
from harness.errors import ConfigError, TargetError
from harness.kinds import ChrootOptions
from harness.model import TargetFacts
from harness.mounts import mounts_under
from harness.paths import runs_dir
from harness.targets._common import GET_LIMIT, copy_out
from harness.targets._proc import run_process
from harness.targets.base import Completed, Target, probe_facts
from harness.targets.chroot_files import open_dir, put_dir, put_file
from harness.targets.chroot_workdir import cleanup_stale, kill_rooted, make_workdir, pids_rooted_at
from harness.userland import (
    command_env,
    emulated_facts,
    enter_argv,
    missing_wd,
    qemu_version,
    unshare_refused,
    warm_qemu_version,
)

if TYPE_CHECKING:
    from harness.config import TargetConfig

QEMU_BINFMT = {
    "riscv64": "/proc/sys/fs/binfmt_misc/qemu-riscv64",
    "aarch64": "/proc/sys/fs/binfmt_misc/qemu-aarch64",
}


__all__ = ["ChrootTarget", "cleanup_stale", "kill_rooted", "mounts_under", "pids_rooted_at", "runs_dir"]


def _setup_failed(stderr: str) -> bool:
    """Whether ``stderr`` is only what chroot or qemu_enter say when the command never ran.

    The whole of it, line by line: a command's own output (untrusted) that
    merely quotes those words stays the command's result, not a target error.
    """
    lines = stderr.splitlines(keepends=True)
    return bool(lines) and all(
        line.endswith("\n") and line.startswith(("chroot: failed to run command", qemu_enter.PREFIX)) for line in lines
    )


class ChrootTarget(Target):
    kind: ClassVar[str] = "chroot"
    needs_image: ClassVar[bool] = True
    emulation: ClassVar[str] = "qemu-user"
    facts_from_probe: ClassVar[bool] = True

    Options = ChrootOptions

    options: ChrootOptions

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.workdir: Path | None = None
        self.root: Path | None = None
        self.lower: Path | None = None
        self.attached = False  # a view of another process's overlay: stop() leaves it alone
        self._lock_fd: int | None = None  # flock on workdir/lock, held from start() to stop()
        self._qemu: tuple[str, str] | None = None  # (qemu binary, binfmt interpreter) once checked

    # ------------------------------------------------------------------ lifecycle

    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise TargetError(f"target {self.name}: chroot targets need root; run leapfrog as root or with sudo.")
        arch = self.config.arch
        binfmt = QEMU_BINFMT.get(arch)
        if binfmt and os.uname().machine != arch and not Path(binfmt).exists():
            raise TargetError(
                f"target {self.name}: binfmt for {arch} is not registered ({binfmt} missing); run: "
                "apt-get install qemu-user-static binfmt-support && update-binfmts --enable "
                f"qemu-{arch}   (see `leapfrog doctor`)"
            )
        self._emulator()

    def _private(self) -> bool:
        """Whether commands run on leapfrog's own qemu, through a private binfmt_misc."""
        return self.options.qemu != qemu_user.HOST

    def _emulator(self) -> tuple[str, str]:
        """(qemu binary, binfmt interpreter) this target runs on, checked to know its ``cpu`` model.

        A foreign-architecture target on the host's binfmt entry whose CPU
        model that emulator lacks, or on a private emulator this kernel cannot
        give a binfmt_misc of its own, is a TargetError: it never runs on
        another CPU or emulator than the one its file names.
        """
        if self._qemu is not None:
            return self._qemu
        arch = self.config.arch
        qemu_user.check_source(self.options.qemu, where=str(self.config.file))
        if self._private():
            if arch != "riscv64":
                raise ConfigError(
                    f'{self.config.file}: target {self.name}: qemu = "{self.options.qemu}" runs riscv64 targets only; '
                    'remove the "qemu" key.'
                )
            if not qemu_user.kernel_ok():
                raise TargetError(
                    f'target {self.name}: qemu = "{self.options.qemu}" needs Linux 6.7 or later (a binfmt_misc of '
                    f"its own per user namespace, so children of the target run on the same qemu); this kernel is "
                    f"{os.uname().release}. Use a newer kernel, or remove the qemu key from {self.config.file}."
                )
            binary = qemu_user.cached(self.options.qemu) or qemu_user.fetch(self.options.qemu, progress=self.progress)
            qemu_user.check_cpu(str(binary), self.options.cpu, target=self.name)
            interp = str(qemu_user.cpu_interpreter(self.options.qemu, binary, self.options.cpu))
            self._qemu = (str(binary), interp)
        elif os.uname().machine == arch:
            self._qemu = ("", "")
        else:
            interp = qemu_user.binfmt_interpreter(arch) or shutil.which(f"qemu-{arch}-static") or ""
            if interp and self.options.cpu:
                qemu_user.check_cpu(interp, self.options.cpu, target=self.name)
            self._qemu = (interp, interp)
        return self._qemu

    def _rootfs(self) -> Path:
        if self.options.rootfs:
            p = Path(self.options.rootfs)
            if not (p / "usr").is_dir():
                raise ConfigError(
                    f'{self.config.file}: target {self.name}: rootfs "{p}" is not a root filesystem (no usr/); '
                    'fix the "rootfs" key.'
                )
            return p
        from harness.images import ensure_rootfs

        assert self.config.image is not None
        return ensure_rootfs(self.config.image, self.packages, progress=self.progress)

    def start(self) -> None:
        if self.root is not None:
            return
        self._check_host()
        binary = self._emulator()[0]
        if binary:
            warm_qemu_version(binary)  # asked while the first command runs, not after the cell
        try:
            cleanup_stale()
        except mounts.MountError as e:
            raise TargetError(f"target {self.name}: an earlier run left mounts behind: {e}") from e
        self.lower = Path(os.path.realpath(self._rootfs()))
        # A cached image is named by its folder (distro-release-arch-key); a given rootfs by its path.
        self.image_id = str(self.lower) if self.options.rootfs else self.lower.parent.name
        self.workdir = self._make_workdir()
        root = self.workdir / "root"
        try:
            for sub in ("upper", "work", "root"):
                (self.workdir / sub).mkdir()
            self._mount(
                [
                    "mount",
                    "-t",
                    "overlay",
                    "overlay",
                    "-o",
                    f"lowerdir={self.lower},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
                    str(root),
                ]
            )
            self.root = root
            self._mount(["mount", "-t", "proc", "proc", str(root / "proc")])
            # One exec each: util-linux binds, then makes the whole copy a slave before it returns.
            self._mount(["mount", "--rbind", "--make-rslave", "/sys", str(root / "sys")])
            self._mount(["mount", "--rbind", "--make-rslave", "/dev", str(root / "dev")])
        except BaseException:
            self.stop()
            raise

    def _make_workdir(self) -> Path:
        """A fresh ``runs/<name>-XXXX`` folder, locked and owned before anything is mounted in it."""
        workdir, self._lock_fd = make_workdir(self.name)
        return workdir

    def _mount(self, argv: list[str]) -> None:
        assert self.workdir is not None
        try:
            done = mounts.mount(self.workdir, argv)  # journaled before it is made
        except mounts.MountError as e:
            raise TargetError(f"target {self.name}: {e}") from e
        if done.returncode != 0:
            raise TargetError(f"target {self.name}: `{' '.join(argv)}` failed: {done.stderr.strip()}")

    def handle(self) -> dict[str, Any]:
        return {"root": str(self._require_root())}

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> ChrootTarget:
        target = cls(config)
        root = Path(str(handle.get("root", "")))
        if not (root / "usr").is_dir():
            raise TargetError(f"target {config.name}: the chroot {root} to attach to is gone.")
        target.root = root
        target.attached = True
        return target

    def stop(self) -> None:
        if self.attached:
            self.root = None
            return
        if self.workdir is None:
            return
        if self.root is not None:
            kill_rooted(self.root)
        left = mounts.unmount_under(self.workdir)
        if left:
            raise TargetError(
                f"target {self.name}: could not unmount {', '.join(left)}, so {self.workdir} was left in place; "
                f"run: umount -R -l {' '.join(left)}"
            )
        try:
            mounts.remove_tree(self.workdir)
        except mounts.MountError as e:
            raise TargetError(f"target {self.name}: {e}") from e
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.workdir = None
        self.root = None

    # ------------------------------------------------------------------ commands

    def _require_root(self) -> Path:
        if self.root is None:
            raise TargetError(f"target {self.name}: not started.")
        return self.root

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return command_env(self.options.cpu, self.config.env, extra)

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        root = self._require_root()
        done, wd = self._launch(root, argv, timeout=timeout, env=env, cwd=cwd)
        if unshare_refused(wd, done.exit_code, done.stdout, done.stderr):  # util-linux < 2.32: never ran
            done, wd = self._launch(root, argv, timeout=timeout, env=env, cwd=cwd)
        if done.exit_code == 125 and _setup_failed(done.stderr):
            raise TargetError(f"target {self.name}: {done.stderr.strip()}")
        if wd is not None and missing_wd(wd, done.exit_code, done.stdout, done.stderr):
            done = dataclasses.replace(done, exit_code=125)  # a missing working folder, as env -C and docker say
        return done

    def _launch(
        self, root: Path, argv: list[str], *, timeout: float, env: dict[str, str] | None, cwd: str | None
    ) -> tuple[Completed, str | None]:
        """Run ``argv`` in ``root``; also returns the folder unshare changed to (None when it was not used).

        On a private binfmt, qemu_enter changes to ``cwd`` itself after its
        chroot (``--wd``): natively, with no emulated ``env -C`` started; a
        missing folder exits 125 naming it, as ``env -C`` did.
        """
        wd: str | None = None
        if not self._private():
            outer, wd = enter_argv(str(root), argv, cwd)
        else:
            binary, interp = self._emulator()
            in_folder = [qemu_enter.WD_OPTION + cwd] if cwd else []
            outer = [sys.executable, "-I", str(qemu_user.ENTER), str(root), interp, str(qemu_user.BINFMT_DIR)]
            outer += [str(Path(binary).parent), qemu_wrapper.INSIDE, *in_folder, "--", *argv]
        done = run_process(
            outer,
            timeout=timeout,
            env=self.env(env),
            reported_argv=argv,
            on_timeout=lambda: _ignore(kill_rooted(root)),
        )
        return done, wd

    def _inside(self, remote: str) -> Path:
        root = Path(os.path.realpath(self._require_root()))
        path = Path(os.path.normpath(root / remote.lstrip("/")))
        real_parent = Path(os.path.realpath(path.parent))
        if not (real_parent == root or root in real_parent.parents):
            raise TargetError(f'target {self.name}: "{remote}" leads outside the root filesystem.')
        return path

    def _parts(self, remote: str) -> list[str]:
        parts = [p for p in os.path.normpath("/" + remote).split("/") if p]
        if not parts:
            raise TargetError(f'target {self.name}: "{remote}" names the root folder itself; nothing copied.')
        return parts

    def _open_dir(self, parts: list[str], remote: str, *, create: bool) -> int:
        return open_dir(self._require_root(), parts, remote, create=create, target=self.name)

    def put(self, local: Path, remote: str) -> None:
        """Copy ``local`` to ``remote``; never writes through a link the target made (a link there is replaced)."""
        parts = self._parts(remote)
        parent = self._open_dir(parts[:-1], remote, create=True)
        try:
            if local.is_dir():
                put_dir(local, parent, parts[-1])
            else:
                put_file(local, parent, parts[-1])
        finally:
            os.close(parent)

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        """Copy back by the one rule (``Target.get``), read from the host side without following a link.

        ``remote`` must be a regular file or a folder (a FIFO, socket, device
        or link there is a TargetError, and a FIFO is never opened, so it
        cannot block); inside a folder, links and special files are skipped.
        At most ``limit`` bytes are copied.
        """
        parts = self._parts(remote)
        try:
            parent = self._open_dir(parts[:-1], remote, create=False)
        except FileNotFoundError:
            raise TargetError(f'target {self.name}: cannot copy "{remote}": its folder does not exist.') from None
        try:
            copy_out(parent, parts[-1], local, shown=remote, limit=limit)
        except TargetError as e:
            raise TargetError(f"target {self.name}: {e}") from e
        finally:
            os.close(parent)

    def local_path(self, remote: str) -> Path | None:
        return self._inside(remote)

    def make_temp_dir(self) -> str:
        """Made from the host side: no emulated process to start (and never through a link at /tmp)."""
        tmp = self._open_dir(["tmp"], "/tmp", create=True)
        try:
            for _ in range(100):
                name = f"leapfrog.{secrets.token_hex(6)}"
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=tmp)
                    return "/tmp/" + name
        finally:
            os.close(tmp)
        raise TargetError(f"target {self.name}: could not make a folder in /tmp of the root filesystem.")

    def remove_tree(self, path: str) -> None:
        """Remove a folder in the root: links are not followed, mounts and other file systems are refused."""
        try:
            mounts.remove_tree(self._inside(path))
        except (OSError, mounts.MountError) as e:
            raise TargetError(f'target {self.name}: could not remove "{path}": {e}') from e

    def forward(self, port: int) -> tuple[str, int]:
        return ("127.0.0.1", port)  # a chroot shares the host's network

    def facts(self) -> TargetFacts:
        return self.enrich_facts(probe_facts(self))

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        emulated_facts(facts, self.options.cpu)
        binary, interp = self._emulator()
        if binary:
            line, version = qemu_version(binary)
            facts.extra["qemu"] = line
            facts.extra["qemu_version"] = version
            facts.extra["qemu_binary"] = binary
            facts.extra["qemu_cpu"] = self.options.cpu or "default"
            facts.extra["qemu_binfmt"] = (
                f"private to the target (user namespace), {interp} (runs qemu with -cpu {self.options.cpu or 'default'}"
                f", whatever the environment), flags PF"
                if self._private()
                else f"host /proc/sys/fs/binfmt_misc/qemu-{self.config.arch}, {interp}"
            )
        return facts


def _ignore(_value: object) -> None:
    pass
