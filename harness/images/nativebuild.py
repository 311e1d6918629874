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
--variant=extract`` from the same mirror and release, cached; it lives in
:mod:`harness.images.native_copy`), and two hooks (:func:`hook_argv`):

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

import importlib.resources
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.images.native_copy import (
    NATIVE_PACKAGES,
    HookError,
    Native,
    deb_version,
    default_python,
    ensure_native,
    mark_stale,
    native_dir,
    same_build,
    versions_from_debs,
)

__all__ = [
    "APT_CONF",
    "BUILD_ENV",
    "DPKG_PATH",
    "MARK",
    "NATIVE_PACKAGES",
    "WORK",
    "HookError",
    "Native",
    "customize",
    "customize_argv",
    "deb_version",
    "default_python",
    "enabled",
    "ensure_native",
    "essential",
    "hook_argv",
    "kernel_images",
    "kernel_versions",
    "main",
    "make_initramfs",
    "mark_stale",
    "native_dir",
    "parse_calls",
    "replay_emulated",
    "replay_native",
    "same_build",
    "versions_from_debs",
]

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


def _script(name: str) -> str:
    return (importlib.resources.files("harness.images") / "scripts" / name).read_text(encoding="utf-8")


#: The shell wrappers (in ``harness/images/scripts/``): py3compile writes its calls down; dpkg-deb runs natively.
_RECORDER = _script("py3compile-recorder.sh")
_NATIVE_EXEC = _script("native-exec.sh")

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
