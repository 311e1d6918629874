"""How a command and a copy reach a docker container: one ``docker exec`` per command, tar archives for files.

A command runs as the leader of its own session, marked by an environment
variable (``sh/docker_wrapper.sh``); on a timeout or Ctrl-C a second exec
SIGKILLs every process in that session or carrying the mark
(``sh/docker_killer.sh``), and what a command leaves running in the background
is killed when it ends.  Exit statuses 129-159 are reported as death by signal
(status - 128), the way a shell reports them.  A container that disappears
mid-command is a ``TargetError``, never a failed command: every command and copy
ends by asking ``check_alive``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import posixpath
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from harness.errors import TargetError
from harness.targets._common import GET_LIMIT, CopyBudget, safe_extract, size_text
from harness.targets._proc import BoundedBuffer
from harness.targets.base import Completed
from harness.targets.docker_engine import Engine

__all__ = ["ARCHIVE_SLACK", "BoundedBuffer", "ContainerExec", "decode_status", "drain", "extract_get", "tar_for_put"]

#: Environment variable that marks every process a command starts.
MARKER = "LEAPFROG_EXEC"
#: Seconds to wait for a killed command's stream to end before closing it.
KILL_GRACE = 15.0
_SH = importlib.resources.files("harness.targets").joinpath("sh")
#: Runs every command: ``sh -c WRAPPER leapfrog-exec CWD ARGV...``.
WRAPPER = _SH.joinpath("docker_wrapper.sh").read_text(encoding="utf-8")
#: ``sh -c KILLER leapfrog-kill TOKEN``: SIGKILL every process of the command marked ``TOKEN``.
KILLER = _SH.joinpath("docker_killer.sh").read_text(encoding="utf-8")


def drain(frames: Iterable[tuple[bytes | None, bytes | None]], stdout: BoundedBuffer, stderr: BoundedBuffer) -> None:
    """Copy demultiplexed (stdout, stderr) frames into two bounded buffers."""
    for out, err in frames:
        if out:
            stdout.write(out)
        if err:
            stderr.write(err)


def decode_status(code: int | None, *, timed_out: bool) -> tuple[int | None, int | None]:
    """(exit_code, signal) from an exec's exit status; 129-159 mean death by a signal.

    A timed-out command has no exit code, only the signal that ended it (if any).
    """
    sig = code - 128 if code is not None and 128 < code < 160 else None
    if timed_out or sig is not None:
        return None, sig
    return code, None


def tar_for_put(local: Path, name: str, sink: Any) -> None:
    """Write a tar holding ``local`` (file or folder) as ``name``, owned by root."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(local), arcname=name, recursive=True, filter=as_root)


#: What a copy-back archive may hold on top of its files' bytes (tar headers), before it is refused unread.
ARCHIVE_SLACK = 64 << 20


def extract_get(chunks: Iterable[bytes], top: str, local: Path, *, shown: str = "", limit: int = GET_LIMIT) -> None:
    """Put what a ``get_archive`` stream holds under its top name ``top`` at ``local``.

    The archive comes from an untrusted target and follows the one rule of
    ``Target.get`` (``safe_extract``): ``top`` must be a file or folder,
    links, devices and FIFOs below it are skipped, absolute and ``..`` names
    are refused, and nothing is written outside ``local`` (the archive is
    unpacked in a private folder beside it first).  An archive of more than
    ``limit`` bytes of files is a TargetError, and so is an archive of more
    than ``limit`` + ``ARCHIVE_SLACK`` bytes, before the rest is read.
    """
    budget = CopyBudget(shown or top, limit)
    local = local.absolute()
    local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buf:
        size = 0
        for chunk in chunks:  # bounds what is spilled to disk; the files' own bytes are counted when unpacked
            size += len(chunk)
            if size > limit + ARCHIVE_SLACK:
                raise TargetError(
                    f'refusing to copy "{budget.shown}" from the target: the archive the engine sends is larger than '
                    f"{size_text(limit + ARCHIVE_SLACK)} ({size_text(limit)} of files, the most one copy back takes, "
                    f"and {size_text(ARCHIVE_SLACK)} of tar headers); have the suite write less there."
                )
            buf.write(chunk)
        buf.seek(0)
        staging = Path(tempfile.mkdtemp(prefix=".leapfrog-get-", dir=local.parent))
        try:
            try:
                with tarfile.open(fileobj=buf, mode="r:") as tar:
                    safe_extract(tar, staging, top=top, budget=budget)
            except tarfile.TarError as e:
                raise TargetError(f'the archive of "{top}" sent by the target is not a valid tar: {e}.') from e
            got = staging / top
            if not got.exists() and not got.is_symlink():
                raise TargetError(f'the archive sent by the target does not hold "{top}".')
            if got.is_dir() and local.is_dir():
                shutil.copytree(got, local, dirs_exist_ok=True)
            else:
                if local.is_dir():
                    shutil.rmtree(local)
                os.replace(got, local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- one container


class ContainerExec:
    """Run commands in container ``cid`` and copy files in and out, through ``engine``.

    ``check_alive(during)`` raises a TargetError when the container is gone.
    """

    def __init__(self, engine: Engine, cid: str, check_alive: Callable[[str], None]) -> None:
        self.engine = engine
        self.name = engine.name
        self.cid = cid
        self.check_alive = check_alive

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None, cwd: str | None) -> Completed:
        api = self.engine.api
        token = secrets.token_hex(8)
        start = time.monotonic()
        with self.engine.errors(f"start `{argv[0]}` in container {self.cid[:12]}"):
            exec_id = api.exec_create(
                self.cid,
                ["/bin/sh", "-c", WRAPPER, "leapfrog-exec", cwd or "", *argv],
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                environment={**(env or {}), MARKER: token},
            )["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
        stdout, stderr = BoundedBuffer(), BoundedBuffer()
        reader = threading.Thread(target=drain, args=(stream, stdout, stderr), daemon=True)
        reader.start()
        timed_out = False
        try:
            reader.join(max(0.0, timeout))
            if reader.is_alive():
                timed_out = True
                self.kill(token)
                reader.join(KILL_GRACE)
        except BaseException:  # Ctrl-C: leave nothing running in the container, then let it rise
            with contextlib.suppress(Exception):
                self.kill(token)
            _close(stream)
            raise
        _close(stream)  # also when it ended by itself: the SDK leaves the socket open
        reader.join(5)
        code = self.exit_status(exec_id, argv)
        if code == 128 + 9 and not timed_out:
            time.sleep(0.3)  # SIGKILL from outside: let the engine record a removal or stop first
        self.check_alive(f"`{' '.join(argv)[:200]}`")
        exit_code, sig = decode_status(code, timed_out=timed_out)
        return Completed(
            argv=argv,
            exit_code=exit_code,
            signal=sig,
            stdout=stdout.text(),
            stderr=stderr.text(),
            wall=time.monotonic() - start,
            timed_out=timed_out,
        )

    def exit_status(self, exec_id: str, argv: list[str]) -> int | None:
        import docker.errors

        deadline = time.monotonic() + 10
        while True:
            try:
                info = self.engine.api.exec_inspect(exec_id)
            except docker.errors.NotFound:
                return None  # the container went with it; check_alive says so
            except Exception as e:  # the engine went away
                raise self.engine.lost(f"while `{argv[0]}` ran", e) from e
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            time.sleep(0.05)

    def kill(self, token: str) -> None:
        """SIGKILL every process of the command marked ``token`` (a second exec)."""
        api = self.engine.api
        with self.engine.errors(f"kill a timed-out command in container {self.cid[:12]}"):
            api.exec_start(
                api.exec_create(self.cid, ["/bin/sh", "-c", KILLER, "leapfrog-kill", token], stdin=False)["Id"]
            )

    def put(self, local: Path, path: str) -> None:
        """Copy ``local`` to the absolute ``path``, making its folder when only that is missing."""
        import docker.errors

        parent, name = posixpath.split(path)
        if not local.exists():
            raise TargetError(f'target {self.name}: "{local}" does not exist on the host; nothing to copy.')
        with tempfile.TemporaryFile() as buf:
            tar_for_put(local, name, buf)
            for attempt in range(2):
                buf.seek(0)
                try:
                    with self.engine.errors(f'copy "{local}" to "{path}"'):
                        self.engine.api.put_archive(self.cid, parent, buf)
                    return
                except TargetError as e:
                    if attempt or not isinstance(e.__cause__, docker.errors.NotFound):
                        raise
                    self.check_alive(f'copying "{local}" in')
                    mk = self.run(["mkdir", "-p", parent], timeout=120, env=None, cwd=None)
                    if not mk.ok:
                        raise TargetError(
                            f'target {self.name}: cannot make folder "{parent}": {mk.stderr.strip()[:300]}'
                        ) from e

    def get(self, path: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        """Copy the absolute ``path`` back by the one rule of ``Target.get`` (see :func:`extract_get`)."""
        import docker.errors

        try:
            with self.engine.errors(f'copy "{path}" out of the container'):
                stream, _stat = self.engine.api.get_archive(self.cid, path)
                try:
                    extract_get(stream, posixpath.basename(path), local, shown=path, limit=limit)
                except TargetError as e:
                    raise TargetError(f"target {self.name}: {e}") from e
        except TargetError as e:
            if isinstance(e.__cause__, docker.errors.NotFound):
                self.check_alive(f'copying "{path}" out')
                raise TargetError(f'target {self.name}: "{path}" does not exist in the container.') from e
            raise


def remote_path(name: str, remote: str) -> str:
    """``remote`` made absolute and normal; the root folder itself is refused."""
    path = posixpath.normpath(posixpath.join("/", remote))
    if path == "/":
        raise TargetError(f'target {name}: "{remote}" names the root folder; name a file or folder in it.')
    return path


def _close(stream: Any) -> None:
    """End an exec's output stream and free its connection.

    The SDK's ``close()`` shuts the socket down but leaves its file descriptor to
    the garbage collector (a ResourceWarning); closing the HTTP response too
    releases it.  Over ssh:// ``close()`` is refused and the response close is
    what ends the stream.
    """
    with contextlib.suppress(Exception):
        stream.close()
    with contextlib.suppress(Exception):
        stream._response.close()
