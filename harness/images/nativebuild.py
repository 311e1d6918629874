"""Do natively what a foreign-architecture Debian image build needs no emulation for.

Building a riscv64 image on an x86-64 host runs every program of the install
under qemu-user.  Two of them do work whose result does not depend on the
machine, and they dominate the build:

* **unpacking**: dpkg runs ``dpkg-deb --fsys-tarfile`` (and ``--control``) on
  each ``.deb``: decompressing some 2 GB of xz, at emulated speed;
* **byte-compiling**: each ``python3-*`` postinst runs ``py3compile -p PKG``,
  about 40 ms a file emulated, some 8,000 files.  A ``.pyc`` depends on the
  interpreter's version only, not on the machine.

So an image build gets a native copy of Debian's own ``dpkg`` and
``python3.X`` for the host (:func:`ensure_native`: ``mmdebstrap
--variant=extract`` from the same mirror and release, cached), and two hooks
(:func:`hook_argv`):

1. **essential hook** (:func:`essential`), after the essential packages: the
   native copy goes into the image under :data:`WORK`, and a folder of
   wrappers is put first on dpkg's ``PATH`` (``DPkg::Path`` in an apt.conf.d
   file of its own).  ``dpkg-deb`` there runs the native ``dpkg-deb`` (the same
   Debian version as the image's, else it is not installed); ``py3compile``
   there writes its arguments down instead of compiling.  No file of a package
   is replaced, moved or diverted.
2. **customize hook** (:func:`customize`), after every package: the wrappers
   and the apt.conf.d file go; the recorded calls are replayed in order by
   Debian's own ``/usr/bin/py3compile`` code from the image, run by the native
   ``python3.X`` inside the image's chroot (every path, ``dpkg -L`` and
   exclusion rule is the image's own; only the interpreter that compiles is
   native, the same Debian version, else the calls run under emulation as the
   postinsts would have run them); then the native copy goes.

The customize hook also makes the initramfs once.  The build runs with
``INITRD=No`` (:data:`BUILD_ENV`), which Debian's kernel hook
``/etc/kernel/postinst.d/initramfs-tools`` honours, so the initramfs is not made
when the kernel is configured and made again when later packages fire the
``update-initramfs`` trigger: it is made once, after every package is in, by
the command that hook runs (``update-initramfs -c -k VERSION -b /boot``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: Inside the image, during the build only: the wrappers, the recorded calls, the native copy.
WORK = "var/lib/leapfrog-build"
#: The apt configuration that puts the wrappers first on dpkg's PATH (removed again).
APT_CONF = "etc/apt/apt.conf.d/00leapfrog-build"
#: apt's default DPkg::Path, after the wrappers' folder.
DPKG_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
#: Environment of the whole build: the kernel's postinst hook leaves the initramfs to the customize hook.
BUILD_ENV = {"INITRD": "No"}
#: Marks phase starts in the build output (see :class:`harness.images.buildrun.PhaseClock`).
MARK = "I: leapfrog:"
#: What the native copy holds: dpkg (for dpkg-deb) and the default python3.
NATIVE_PACKAGES = ("dpkg", "python3")

_RECORDER = """#!/bin/sh
# leapfrog image build: this call is written down and replayed by a native
# interpreter once every package is in (harness/images/nativebuild.py).
for a in "$@"; do
    [ -n "$a" ] || exec /usr/bin/py3compile "$@"
done
{ for a in "$@"; do printf '%s\\0' "$a"; done; printf '\\n'; } >> /{work}/py3compile.calls
"""

_NATIVE_EXEC = """#!/bin/sh
# leapfrog image build: Debian's {prog} for the build host, the same version as the image's.
exec {argv} "$@"
"""

#: Run by the native interpreter inside the image's chroot: Debian's py3compile, its compiler workers native.
_DRIVER = r'''
import builtins, importlib.machinery, importlib.util, json, subprocess, sys

builtins.exit = sys.exit  # py3compile ends with exit(rv); -S leaves site's exit undefined
NATIVE = json.loads(sys.argv[1])  # the argv prefix that starts the native interpreter
calls = json.loads(open(sys.argv[2], encoding="utf-8").read())
WORKERS = int(sys.argv[3])
RESULT = sys.argv[4]
loader = importlib.machinery.SourceFileLoader("py3compile", "/usr/bin/py3compile")
spec = importlib.util.spec_from_loader("py3compile", loader)
mod = importlib.util.module_from_spec(spec)
loader.exec_module(mod)


def py_compile(version, optimize, workers):
    """Debian's py3compile.py_compile, with the native interpreter, the files spread over WORKERS processes."""
    if not isinstance(version, str):
        version = mod.vrepr(version)
    cmd = [*NATIVE, "-B"] + (["-O"] if optimize else []) + ["-m", "py_compile", "-"]
    procs = [subprocess.Popen(cmd, bufsize=0, stdin=subprocess.PIPE, close_fds=True) for _ in range(WORKERS)]
    for i, proc in enumerate(procs):
        workers[f"{version}#{i}"] = proc
    n = 0
    while True:
        filename = yield
        procs[n % WORKERS].stdin.write(filename.encode("utf-8") + b"\n")
        n += 1


mod.py_compile = py_compile
failed = []
for i, args in enumerate(calls):
    mod.STDINS.clear()
    mod.WORKERS.clear()
    sys.argv = ["py3compile", *args]
    code = 0
    try:
        mod.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if code:
        failed.append(i)
with open(RESULT, "w", encoding="utf-8") as out:
    json.dump({"failed": failed}, out)
'''

_BINNMU = re.compile(r"\+b\d+$")


class HookError(Exception):
    """A step of the build hooks failed the way the package's own postinst would have."""


# ------------------------------------------------------------------ versions


def deb_version(root: Path, package: str) -> str:
    """The version of ``package`` installed in ``root`` (from its dpkg status), or "" when it is not."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return ""
    for para in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and line[:1] != " ")
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version", "")
    return ""


def same_build(a: str, b: str) -> bool:
    """Two Debian versions of one source upload: equal once a binNMU suffix (``+bN``) is dropped."""
    return bool(a) and _BINNMU.sub("", a) == _BINNMU.sub("", b)


def default_python(root: Path) -> str:
    """``root``'s default ``python3.X`` (where ``usr/bin/python3`` links to), or "" when it has none."""
    try:
        target = os.readlink(root / "usr/bin/python3")
    except OSError:
        return ""
    return target if re.fullmatch(r"python3\.\d+", target) else ""


# ------------------------------------------------------------------ the native copy


@dataclasses.dataclass(frozen=True)
class Native:
    """Debian's dpkg and python3 for the build host, extracted (not installed) into ``root``."""

    root: Path
    versions: dict[str, str]  # package -> Debian version, from the .deb files extracted

    @property
    def python(self) -> str:
        return default_python(self.root)

    def loader(self) -> Path:
        """The dynamic loader, relative to ``root``: a real file (a link there may be absolute)."""
        for cand in sorted(self.root.glob("usr/lib/*/ld-linux*.so.*")):
            if cand.is_file() and not cand.is_symlink():
                return cand.relative_to(self.root)
        raise HookError(f"no dynamic loader under {self.root}/usr/lib; remove {self.root.parent} to fetch it again.")

    def argv(self, at: str, program: str) -> list[str]:
        """The command that runs ``program`` (``usr/bin/X``) of this copy when the copy is seen at ``at``."""
        ld = self.loader()
        return [f"{at}/{ld}", "--library-path", f"{at}/{ld.parent}", f"{at}/{program}"]


def _host_arch() -> str:
    from harness.images.debian import host_debian_arch

    return host_debian_arch()


def native_dir(release: str, mirror: str) -> Path:
    """Where the native copy for ``release`` from ``mirror`` is cached."""
    from harness.images.cache import cache_root

    tag = hashlib.sha256(mirror.encode()).hexdigest()[:12]
    return cache_root() / "native" / f"{release}-{_host_arch()}-{tag}"


def versions_from_debs(names: Sequence[str]) -> dict[str, str]:
    """Package -> version from ``.deb`` file names as apt saves them (``name_version_arch.deb``, ``:`` as %3a)."""
    out = {}
    for name in names:
        parts = name.removesuffix(".deb").split("_")
        if name.endswith(".deb") and len(parts) == 3:
            out[parts[0]] = parts[1].replace("%3a", ":")
    return out


def ensure_native(release: str, mirror: str, *, say: Callable[[str], None] = print) -> Native | None:
    """The cached native copy of dpkg and python3 for ``release``, fetched when absent or stale; None if it fails.

    None means the build runs every step under emulation, as before; the reason is said.
    """
    import filelock

    from harness import mounts
    from harness.images import buildrun

    folder = native_dir(release, mirror)
    folder.parent.mkdir(parents=True, exist_ok=True)
    timeout = buildrun.deadline(buildrun.BUILD_TIMEOUT)
    with filelock.FileLock(str(folder) + ".lock", timeout=timeout):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            have = json.loads((folder / "native.json").read_text())
            if not have.get("stale"):
                return Native(folder / "root", dict(have["versions"]))
        mounts.unmount_and_remove(folder)  # absent, half-made or stale: fetch again
        folder.mkdir()
        start = time.monotonic()
        say(f"fetching Debian {release}'s {' and '.join(NATIVE_PACKAGES)} for {_host_arch()}, to build natively with")
        keep = folder / "debs"
        keep.mkdir()
        argv = [
            "mmdebstrap",
            "--variant=extract",
            f"--include={','.join(NATIVE_PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            f'--extract-hook=ls "$1/var/cache/apt/archives" > {shlex.quote(str(keep / "debs.txt"))}',
            "--",
            release,
            str(folder / "root"),
            mirror,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEBSTRAP_")}
        done = buildrun.run_logged(argv, timeout=timeout, env=env)
        try:
            versions = versions_from_debs((keep / "debs.txt").read_text().split())
        except OSError:
            versions = {}
        shutil.rmtree(keep, ignore_errors=True)
        if done.code != 0 or done.timed_out or "dpkg" not in versions:
            say(f"W: fetching a native dpkg and python3 failed, so the whole build runs emulated: {done.tail[-1:]}")
            mounts.unmount_and_remove(folder)
            return None
        meta = {"versions": versions, "seconds": round(time.monotonic() - start, 1)}
        (folder / "native.json").write_text(json.dumps(meta, indent=2))
        return Native(folder / "root", versions)


def mark_stale(native_root: Path) -> None:
    """Have the next build fetch the native copy again (the archive moved on: its versions differ)."""
    meta = native_root.parent / "native.json"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(meta.read_text())
        data["stale"] = True
        meta.write_text(json.dumps(data, indent=2))


# ------------------------------------------------------------------ hooks


def enabled() -> bool:
    """Whether builds use the hooks: ``LEAPFROG_NATIVE_BUILD=0`` runs every step in the image, as mmdebstrap alone."""
    return os.environ.get("LEAPFROG_NATIVE_BUILD", "1").strip() != "0"


def _runner(python: str) -> list[str]:
    pkg_parent = str(Path(__file__).resolve().parents[2])  # the folder holding the harness package
    # -c, not -m: harness.images imports this module first, and runpy warns about running it again
    code = "import sys; from harness.images.nativebuild import main; sys.exit(main())"
    return ["env", f"PYTHONPATH={pkg_parent}", python, "-c", code]


def hook_argv(native_root: Path | None, python: str = sys.executable) -> list[str]:
    """The mmdebstrap options of the two hooks; ``native_root`` is :attr:`Native.root`, or None (none)."""
    run = shlex.join(_runner(python))
    native = shlex.quote(str(native_root) if native_root else "")
    return [f'--essential-hook={run} essential "$1" {native}', f'--customize-hook={run} customize "$1" {native}']


def customize_argv(root: Path, native_root: Path | None, python: str = sys.executable) -> list[str]:
    """The customize hook as a command, for an image that apt (not mmdebstrap) added packages to."""
    return [*_runner(python), "customize", str(root), str(native_root) if native_root else ""]


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def essential(root: Path, native: Native | None, *, say: Callable[[str], None] = print) -> list[str]:
    """The essential hook: the native copy and the wrappers into ``root``; returns the wrapped programs."""
    if native is None:
        return []
    work = root / WORK
    (work / "bin").mkdir(parents=True, exist_ok=True)
    copy = subprocess.run(
        ["cp", "-a", str(native.root), str(work / "native")], capture_output=True, text=True, check=False
    )
    if copy.returncode != 0:
        raise HookError(f"could not copy {native.root} into {work}: {copy.stderr.strip()}")
    inside = f"/{WORK}/native"
    wrapped = []
    if same_build(native.versions.get("dpkg", ""), deb_version(root, "dpkg")):
        argv = shlex.join(native.argv(inside, "usr/bin/dpkg-deb"))
        _write_exec(work / "bin" / "dpkg-deb", _NATIVE_EXEC.format(prog="dpkg-deb", argv=argv))
        wrapped.append("dpkg-deb")
    else:
        say(
            f"W: the native dpkg is {native.versions.get('dpkg')}, the image's {deb_version(root, 'dpkg')}: "
            "unpacking runs emulated"
        )
        mark_stale(native.root)
    if native.python:
        _write_exec(work / "bin" / "py3compile", _RECORDER.replace("{work}", WORK))
        wrapped.append("py3compile")
    (root / APT_CONF).parent.mkdir(parents=True, exist_ok=True)  # a minimal root may have no apt.conf.d yet
    (root / APT_CONF).write_text(f'DPkg::Path "/{WORK}/bin:{DPKG_PATH}";\n')
    say(f"{MARK} natively during the install: {', '.join(wrapped) or 'nothing'}")
    return wrapped


def parse_calls(data: bytes) -> list[list[str]]:
    """The recorded py3compile calls: one a line, each argument ended by a NUL byte."""
    return [
        [a.decode("utf-8", "surrogateescape") for a in line.split(b"\0")[:-1]] for line in data.split(b"\n") if line
    ]


def _chroot_env() -> dict[str, str]:
    env = {"PATH": DPKG_PATH, "LC_ALL": "C.UTF-8"}
    if "SOURCE_DATE_EPOCH" in os.environ:  # switches py_compile to checked-hash .pyc files, as in the postinsts
        env["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    return env


def replay_native(root: Path, calls: Sequence[list[str]], native: Native, workers: int) -> list[int]:
    """Run ``calls`` in ``root``'s chroot: Debian's py3compile on the native interpreter; the indexes that failed."""
    work = root / WORK
    inside = f"/{WORK}/native"
    (work / "driver.py").write_text(_DRIVER)
    (work / "calls.json").write_text(json.dumps(list(calls)))
    prefix = native.argv(inside, f"usr/bin/{native.python}")
    env = _chroot_env()  # no PYTHONHOME: the native interpreter finds its own stdlib beside itself
    argv = ["chroot", str(root), *prefix, "-B", "-S", f"/{WORK}/driver.py"]
    argv += [json.dumps(prefix), f"/{WORK}/calls.json", str(workers), f"/{WORK}/result.json"]
    done = subprocess.run(argv, env=env, check=False)
    try:
        failed: list[int] = json.loads((work / "result.json").read_text())["failed"]
    except (OSError, ValueError, KeyError, TypeError):
        print(
            f"W: the native byte-compile stopped (exit {done.returncode}); every call runs under emulation", flush=True
        )
        return list(range(len(calls)))
    return failed


def replay_emulated(root: Path, calls: Sequence[list[str]]) -> None:
    """Run ``calls`` with the image's own ``/usr/bin/py3compile`` (emulated), as the postinsts would have."""
    for args in calls:
        done = subprocess.run(["chroot", str(root), "/usr/bin/py3compile", *args], env=_chroot_env(), check=False)
        if done.returncode != 0:
            raise HookError(
                f"`py3compile {shlex.join(args)}` failed (exit {done.returncode}) in {root}, as the package's "
                "postinst would have; the image cannot be built with this package set."
            )


def kernel_images(root: Path) -> dict[str, str]:
    """Kernel version -> its image path in ``root`` (``/boot/vmlinux-V`` or ``vmlinuz-V``), for kernels with modules."""
    mods = root / "usr/lib/modules"
    if not mods.is_dir():
        return {}
    out = {}
    for v in sorted(mods.iterdir()):
        for kind in ("vmlinux", "vmlinuz"):
            if (root / "boot" / f"{kind}-{v.name}").exists():
                out[v.name] = f"/boot/{kind}-{v.name}"
                break
    return out


def kernel_versions(root: Path) -> list[str]:
    """Kernel versions in ``root`` with modules and an image in /boot: what needs an initramfs."""
    return list(kernel_images(root))


def make_initramfs(root: Path, *, say: Callable[[str], None] = print) -> list[str]:
    """Create the initramfs of each kernel that has none, as the kernel's postinst would have; the versions made.

    ``/etc/kernel/postinst.d/initramfs-tools`` runs ``update-initramfs -c``;
    the kernel's postinst runs ``linux-update-symlinks`` before it, which under
    ``INITRD=No`` leaves out ``/initrd.img`` and ``/initrd.img.old``: it runs
    again here, once the initramfs exists.
    """
    if not (root / "usr/sbin/update-initramfs").exists():
        return []
    made = []
    for version, image in kernel_images(root).items():
        if (root / "boot" / f"initrd.img-{version}").exists():
            continue  # made by a trigger while packages were layered onto an image that had it
        say(f"{MARK} creating the initramfs for {version} (update-initramfs -c)")
        steps = [["update-initramfs", "-c", "-k", version, "-b", "/boot"]]
        if (root / "usr/bin/linux-update-symlinks").exists():
            steps.append(["linux-update-symlinks", "install", version, image])
        for argv in steps:
            done = subprocess.run(["chroot", str(root), *argv], env=_chroot_env(), check=False)
            if done.returncode != 0:
                raise HookError(f"`{shlex.join(argv)}` failed (exit {done.returncode}) in {root}.")
        made.append(version)
    return made


def customize(root: Path, native: Native | None, *, workers: int | None = None) -> None:
    """The customize hook: wrappers out, the recorded calls compiled, the native copy out, the initramfs made."""
    (root / APT_CONF).unlink(missing_ok=True)
    work = root / WORK
    try:
        try:
            calls = parse_calls((work / "py3compile.calls").read_bytes())
        except FileNotFoundError:
            calls = []
        pending = list(range(len(calls)))
        python = default_python(root)
        if calls and native is not None and python:
            mine, theirs = native.versions.get(f"{python}-minimal", ""), deb_version(root, f"{python}-minimal")
            if native.python == python and same_build(mine, theirs):
                print(f"{MARK} byte-compiling ({len(calls)} postinst calls) with a native {python} {mine}", flush=True)
                pending = replay_native(root, calls, native, workers or os.cpu_count() or 1)
            else:
                print(f"W: the native {native.python} is {mine}, the image's {python} {theirs}: compiling emulated")
                mark_stale(native.root)
        if pending:
            print(f"{MARK} byte-compiling ({len(pending)} postinst calls) under emulation", flush=True)
            replay_emulated(root, [calls[i] for i in pending])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    make_initramfs(root, say=lambda m: print(m, flush=True))


def _load_native(arg: str) -> Native | None:
    if not arg:
        return None
    root = Path(arg)
    try:
        return Native(root, dict(json.loads((root.parent / "native.json").read_text())["versions"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.images.nativebuild essential|customize ROOT NATIVE_ROOT``: mmdebstrap's hooks."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] not in ("essential", "customize"):
        print("usage: python -m harness.images.nativebuild essential|customize ROOT NATIVE_ROOT", file=sys.stderr)
        return 2
    root, native = Path(args[1]), _load_native(args[2])
    try:
        if args[0] == "essential":
            essential(root, native, say=lambda m: print(m, flush=True))
        else:
            customize(root, native)
    except HookError as e:
        print(f"E: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
