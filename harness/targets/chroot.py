"""chroot: a riscv64 root filesystem entered through qemu-user and binfmt.

Each ``start()`` mounts a copy-on-write overlay of the cached image (the image
itself stays pristine, and two targets can share one image at once), then
/proc, /sys and /dev inside it.  ``stop()`` kills every process whose root is
the overlay and unmounts everything, also after an error or Ctrl-C.  A target
file's ``cpu`` becomes ``QEMU_CPU`` for qemu-user, which turns RISC-V
extensions on and off::

    kind = "chroot"
    cpu = "rv64,v=true,vlen=256"
    [image]
    distro = "debian"
    release = "trixie"
    arch = "riscv64"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import TargetError
from harness.images.cache import cache_root
from harness.model import TargetFacts
from harness.targets._common import probe_facts
from harness.targets._proc import run_process
from harness.targets.base import Completed, Target

if TYPE_CHECKING:
    from harness.config import TargetConfig

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QEMU_BINFMT = {
    "riscv64": "/proc/sys/fs/binfmt_misc/qemu-riscv64",
    "aarch64": "/proc/sys/fs/binfmt_misc/qemu-aarch64",
}


def runs_dir() -> Path:
    d = cache_root() / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _sh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path)
    out = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            mnt = line.split()[1].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return sorted(out, key=len, reverse=True)


def pids_rooted_at(root: Path) -> list[int]:
    """Processes whose root directory is ``root`` (what runs in the chroot)."""
    want = str(root)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root") == want:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def kill_rooted(root: Path) -> int:
    """SIGKILL everything running in ``root``; returns how many were killed."""
    killed = 0
    for _ in range(5):
        pids = pids_rooted_at(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.1)
    return killed


def unmount_all(path: Path) -> None:
    for mnt in mounts_under(path):
        if _sh(["umount", mnt]).returncode != 0:
            _sh(["umount", "-l", mnt])


def cleanup_stale() -> list[Path]:
    """Unmount and remove overlays left by runs whose process is gone (kill -9)."""
    cleaned = []
    for d in runs_dir().iterdir():
        owner = d / "owner.json"
        try:
            pid = int(json.loads(owner.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            pid = -1
        if pid > 0 and Path(f"/proc/{pid}").exists():
            continue
        kill_rooted(d / "root")
        unmount_all(d)
        shutil.rmtree(d, ignore_errors=True)
        cleaned.append(d)
    return cleaned


class ChrootTarget(Target):
    kind: ClassVar[str] = "chroot"
    needs_image: ClassVar[bool] = True
    emulation: ClassVar[str] = "qemu-user"
    facts_from_probe: ClassVar[bool] = True

    @dataclasses.dataclass(frozen=True)
    class Options:
        cpu: str = ""  # QEMU CPU model for qemu-user, e.g. "rv64,v=true,vlen=256"
        rootfs: str = ""  # use this root filesystem folder instead of building the image

    options: Options  # type: ignore[assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.workdir: Path | None = None
        self.root: Path | None = None
        self.lower: Path | None = None
        self.attached = False  # a view of another process's overlay: stop() leaves it alone

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

    def _rootfs(self) -> Path:
        if self.options.rootfs:
            p = Path(self.options.rootfs)
            if not (p / "usr").is_dir():
                raise TargetError(f'target {self.name}: rootfs "{p}" is not a root filesystem (no usr/).')
            return p
        from harness.images import ensure_rootfs

        assert self.config.image is not None
        return ensure_rootfs(self.config.image, self.packages, progress=self.progress)

    def start(self) -> None:
        if self.root is not None:
            return
        self._check_host()
        cleanup_stale()
        self.lower = self._rootfs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=runs_dir()))
        (self.workdir / "owner.json").write_text(json.dumps({"pid": os.getpid(), "target": self.name}))
        root = self.workdir / "root"
        for sub in ("upper", "work", "root"):
            (self.workdir / sub).mkdir()
        try:
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
            self._mount(["mount", "--rbind", "/sys", str(root / "sys")])
            self._mount(["mount", "--make-rslave", str(root / "sys")])
            self._mount(["mount", "--rbind", "/dev", str(root / "dev")])
            self._mount(["mount", "--make-rslave", str(root / "dev")])
        except BaseException:
            self.stop()
            raise

    def _mount(self, argv: list[str]) -> None:
        done = _sh(argv)
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
        unmount_all(self.workdir)
        left = mounts_under(self.workdir)
        if left:
            raise TargetError(f"target {self.name}: could not unmount {', '.join(left)}; unmount them by hand.")
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        self.root = None

    # ------------------------------------------------------------------ commands

    def _require_root(self) -> Path:
        if self.root is None:
            raise TargetError(f"target {self.name}: not started.")
        return self.root

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        if self.options.cpu:
            env["QEMU_CPU"] = self.options.cpu
        env.update(self.config.env)
        env.update(extra or {})
        return env

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        root = self._require_root()
        inner = ["/usr/bin/env", "-C", cwd, *argv] if cwd else argv
        done = run_process(
            ["chroot", str(root), *inner],
            timeout=timeout,
            env=self.env(env),
            reported_argv=argv,
            on_timeout=lambda: _ignore(kill_rooted(root)),
        )
        if done.exit_code == 125 and "chroot: failed to run command" in done.stderr:
            raise TargetError(f"target {self.name}: {done.stderr.strip()}")
        return done

    def _inside(self, remote: str) -> Path:
        root = self._require_root()
        path = Path(os.path.normpath(root / remote.lstrip("/")))
        real_parent = path.parent.resolve()
        if not (real_parent == root or root in real_parent.parents):
            raise TargetError(f'target {self.name}: "{remote}" leads outside the root filesystem.')
        return path

    def put(self, local: Path, remote: str) -> None:
        dest = self._inside(remote)
        if local.is_dir():
            shutil.copytree(local, dest, symlinks=True, dirs_exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, dest)

    def get(self, remote: str, local: Path) -> None:
        src = self._inside(remote)
        if src.is_symlink() or not src.exists():
            raise TargetError(f'target {self.name}: "{remote}" is missing or a link; not copied.')
        copy_regular(src, local)

    def local_path(self, remote: str) -> Path | None:
        return self._inside(remote)

    def make_temp_dir(self) -> str:
        """Made from the host side: no emulated process to start."""
        tmp = self._require_root() / "tmp"
        path = Path(tempfile.mkdtemp(prefix="leapfrog.", dir=tmp))
        return "/tmp/" + path.name

    def remove_tree(self, path: str) -> None:
        shutil.rmtree(self._inside(path), ignore_errors=True)

    def forward(self, port: int) -> tuple[str, int]:
        return ("127.0.0.1", port)  # a chroot shares the host's network

    def facts(self) -> TargetFacts:
        return self.enrich_facts(probe_facts(self))

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        facts.emulation = self.emulation
        facts.cpu_model = self.options.cpu or "qemu-user default"
        qemu = shutil.which(f"qemu-{self.config.arch}-static")
        if qemu:
            ver = _sh([qemu, "--version"]).stdout.splitlines()
            if ver:
                facts.extra["qemu"] = ver[0]
        return facts


def _ignore(_value: object) -> None:
    pass


def copy_regular(src: Path, dest: Path) -> None:
    """Copy files and folders only; links and special files inside are skipped."""
    if src.is_file() and not src.is_symlink():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return
    dest.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        if entry.is_symlink():
            continue
        if entry.is_dir(follow_symlinks=False):
            copy_regular(Path(entry.path), dest / entry.name)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, dest / entry.name)
