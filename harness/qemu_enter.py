"""Run one command in a chroot whose binfmt_misc is private: every riscv64 program there runs on one qemu.

Usage (host Python, standard library only; run by :class:`harness.targets.chroot.ChrootTarget`)::

    python3 -I qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE -- ARGV...
    python3 -I qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE --wd=DIR -- ARGV...

The command runs in a new user namespace (uids and gids mapped one to one, so
root stays root for every file of the image) and a new mount namespace.  In
them a binfmt_misc instance of its own (Linux >= 6.7: one instance per user
namespace) is mounted on MOUNTPOINT and given one entry: riscv64 ELF programs
run through INTERPRETER, opened now (flag F), so the chroot needs no copy of
it.  INTERPRETER is the wrapper of :mod:`harness.qemu_wrapper`: it runs the
qemu in QEMU_DIR with ``-cpu`` on its command line, so the CPU model does not
depend on the environment.  QEMU_DIR is bound read-only on INSIDE in the root
(in this mount namespace only; the folder INSIDE is made in the root when it
is missing), where the wrapper finds it.  Every process the command starts
(``subprocess``, pytest workers, a shell's children, one started with an
empty environment) lives in the same user namespace and so runs on the same
qemu and CPU model; the host's own binfmt entry is neither read nor changed.

With ``--wd=DIR`` the command runs in the folder DIR of the root (relative to
its ``/`` when DIR is relative).  This process changes to it itself, after the
chroot, so the folder is resolved inside the root (a link the target made
leads nowhere outside it) and no emulated ``env -C`` starts for it.

Exit status: the command's; 125 with a message on stderr when the namespace
cannot be set up (the chroot backend turns that into a TargetError); 125 with
:func:`wd_message` on stderr and the command not run when DIR is missing or
not a folder (as ``env -C`` and ``docker exec -w`` give); 126/127 when the
command cannot be executed, as ``env`` does.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
#: statvfs f_flag bits a read-only remount must keep (a user namespace may not drop them) -> their MS_ flags.
KEPT_FLAGS = {0x2: 0x2, 0x4: 0x4, 0x8: 0x8, 0x400: 0x400, 0x800: 0x800, 0x1000: 0x200000}
#: The full id range, mapped to itself: root in the namespace is root for every file of the image.
ID_MAP = "0 0 4294967295"
#: riscv64 ELF executables and shared objects (the magic and mask Debian's qemu-user registers).
RISCV64_MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00"
RISCV64_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
ENTRY = "leapfrog-riscv64"
SETUP_FAILED = 125
PREFIX = "leapfrog qemu namespace: "
#: The exit status when the working folder cannot be entered, as ``env -C`` gives.
NO_WD = 125
WD_OPTION = "--wd="
USAGE = (
    "usage: qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE -- ARGV...\n"
    "       qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE --wd=DIR -- ARGV...\n"
)


def register_line(interpreter: str) -> str:
    """The line written to binfmt_misc's ``register``: P passes argv[0] on, F opens the interpreter now.

    No O (nor C, which implies it): the kernel's descriptor of the program would
    not survive the wrapper's ``execve``, and qemu opens the program by name.
    """
    return f":{ENTRY}:M::{RISCV64_MAGIC}:{RISCV64_MASK}:{interpreter}:PF"


def wd_message(wd: str, reason: str) -> str:
    """The whole stderr of a command that never ran because its working folder ``wd`` could not be entered."""
    return f"leapfrog: cannot change to the working folder '{wd}' in the target: {reason}\n"


def _fail(msg: str) -> None:
    os.write(2, (PREFIX + msg + "\n").encode())
    os._exit(SETUP_FAILED)


def _bind_qemu(libc: ctypes.CDLL, root: str, qemu_dir: str, inside: str) -> None:
    """Chroot to ``root`` with ``qemu_dir`` bound read-only on ``inside`` there.

    The bind's source is reached through the working folder, which chroot keeps,
    and its target is resolved inside the root: a link the target made there
    leads nowhere outside it.
    """
    try:
        kept = os.statvfs(qemu_dir).f_flag
        os.chdir(qemu_dir)
        os.chroot(root)
        os.makedirs(inside, exist_ok=True)
    except OSError as e:
        _fail(f'chroot to "{root}" with "{qemu_dir}" on "{inside}" failed: {e}.')
    if libc.mount(b".", inside.encode(), None, MS_BIND, None) != 0:
        _fail(f'binding "{qemu_dir}" on "{inside}" in "{root}" failed: {os.strerror(ctypes.get_errno())}.')
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY
    for bit, flag in KEPT_FLAGS.items():
        flags |= flag if kept & bit else 0
    if libc.mount(None, inside.encode(), None, flags, None) != 0:
        _fail(f'making "{inside}" in "{root}" read-only failed: {os.strerror(ctypes.get_errno())}.')
    os.chdir("/")


def enter(wd: str | None, argv: list[str]) -> NoReturn:
    """Change to the folder ``wd`` (relative to ``/``), then become ``argv``; never returns.

    Called after the chroot, so ``wd`` and any link on its way are resolved
    inside the root.
    """
    if wd is not None:
        where = os.path.join("/", wd)
        try:
            os.chdir(where)
        except OSError as e:
            os.write(2, wd_message(where, e.strerror or str(e)).encode())
            os._exit(NO_WD)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - the command the target was asked to run, as an argv
    except OSError as e:
        os.write(2, f"leapfrog: failed to run command '{argv[0]}': {e.strerror}\n".encode())
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def _child(head: list[str], wd: str | None, argv: list[str], ready: int, go: int) -> None:
    root, interpreter, mountpoint, qemu_dir, inside = head
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        _fail(
            f"unshare(CLONE_NEWUSER|CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}; "
            "user namespaces must be allowed (sysctl user.max_user_namespaces > 0, "
            "kernel.apparmor_restrict_unprivileged_userns = 0)."
        )
    os.write(ready, b"1")
    os.close(ready)
    if os.read(go, 1) != b"1":
        _fail("the parent could not write the id maps of the new user namespace.")
    os.close(go)
    # Nothing mounted here may reach the host: every mount below becomes a slave.
    if libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
        _fail(f"could not make the mounts private: {os.strerror(ctypes.get_errno())}.")
    if libc.mount(b"binfmt_misc", mountpoint.encode(), b"binfmt_misc", 0, None) != 0:
        _fail(
            f'mounting binfmt_misc on "{mountpoint}" failed: {os.strerror(ctypes.get_errno())}; '
            "a binfmt_misc of its own per user namespace needs Linux 6.7 or later "
            f"(this kernel is {os.uname().release})."
        )
    try:
        with open(os.path.join(mountpoint, "register"), "w", encoding="ascii") as f:
            f.write(register_line(interpreter))
    except OSError as e:
        _fail(f'registering "{interpreter}" with the private binfmt_misc failed: {e}.')
    _bind_qemu(libc, root, qemu_dir, inside)
    enter(wd, argv)


def parse(args: list[str]) -> tuple[list[str], str | None, list[str]] | None:
    """(ROOT..INSIDE, DIR or None, ARGV) of a command line, or None when it is malformed (see :data:`USAGE`)."""
    head, rest = args[:5], args[5:]
    wd = None
    if rest and rest[0].startswith(WD_OPTION):
        wd, rest = rest[0].removeprefix(WD_OPTION), rest[1:]
    if len(head) < 5 or len(rest) < 2 or rest[0] != "--" or wd == "":
        return None
    return head, wd, rest[1:]


def main(args: list[str]) -> int:
    parsed = parse(args)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    head, wd, argv = parsed
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            _child(head, wd, argv, ready_w, go_r)
        finally:
            os._exit(SETUP_FAILED)
    os.close(ready_w)
    os.close(go_r)
    # A signal for this process is passed on to the command (its group is killed on a timeout anyway).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    if os.read(ready_r, 1) == b"1":
        try:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
                    f.write(ID_MAP)
            os.write(go_w, b"1")
        except OSError as e:
            sys.stderr.write(f"{PREFIX}writing /proc/{pid}/uid_map failed: {e}; leapfrog must run as root.\n")
    os.close(go_w)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
