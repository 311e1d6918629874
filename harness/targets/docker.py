"""docker: a riscv64 userland in a Docker container, run through qemu-user (binfmt).

The image, first match wins:

- ``image_tarball``: a ``docker save`` archive (plain, ``.gz`` or ``.xz``, e.g.
  openEuler's official riscv64 container tarball), loaded once per file (a
  stamp under ``<cache>/docker/`` remembers it); ``image_ref`` picks the image
  when the archive holds several;
- ``image_ref``: an image by reference, used as it is when the engine has it,
  pulled otherwise (leapfrog never re-pulls a present image: ``docker pull``
  it yourself to update it);
- ``[image] source = "build"`` (the default): the Debian root filesystem
  leapfrog builds for chroot targets, turned into a Docker image once per image
  key and tagged ``leapfrog/<distro>-<release>-<arch>:<key>``; later runs reuse
  it (``prepare()`` does this without starting a container);
- otherwise ``[image]`` ``path`` (a ``docker save`` archive), ``url`` (the same,
  downloaded by ``leapfrog images fetch``), or ``ref``.

A built image reaches the engine as a ``docker load`` archive made on the fly
from the cached folder: one layer with numeric owners, devices, symlinks, hard
links and file capabilities, and the architecture from ``platform``.  (``docker
import`` would be simpler, but engines before 24 ignore its platform and label
the image amd64.)

Containers are not privileged, mount nothing from the host, have no network
(``network_mode = none``) unless ``network = true``, are labeled ``leapfrog=1``
with the run id, and run ``sleep infinity`` under Docker's init; every command
is a ``docker exec``.  They keep only the capabilities in ``KEPT_CAPS`` (plus
the file's ``cap_add``), cannot gain privileges (``no-new-privileges``), and
hold at most ``pids_limit`` processes and threads.  A command runs as the leader of its own session, marked
by an environment variable; on a timeout or Ctrl-C a second exec SIGKILLs every
process in that session or carrying the mark, and what a command leaves
running in the background is killed when it ends, as on the other backends.
Exit statuses 129-159 are reported as death by signal (status - 128), the way a
shell reports them.  A container that disappears mid-run (``docker rm -f``) is a
``TargetError``, never a failed command.  Containers that a killed leapfrog
left behind on this host are removed at the next start: each container is
labeled with this host's id (see :func:`host_id`), the leapfrog process id and
that process's start time, and only containers of this host whose process is
gone (or whose pid now belongs to another process) are removed, so hosts that
share one engine never remove each other's containers.

``forward(port)`` needs the port listed in a suite's ``ports`` (suite.toml) or
in the target's own ``ports`` (with ``network = true``): those are published at
creation on 127.0.0.1 with random host ports, on a bridge network.  Without
them it raises ``TargetError`` saying what to set.

A target file::

    kind = "docker"
    description = "Debian 13 trixie riscv64 in Docker"
    cpus = 2          # 0: no limit
    memory = "4g"     # "": no limit
    cpu = "rv64,v=true,vlen=256"   # becomes QEMU_CPU inside the container
    pids_limit = 4096 # processes and threads in the container; 0: no limit
    cap_add = []      # capabilities beyond KEPT_CAPS, e.g. ["NET_RAW"] for ping
    [image]
    distro = "debian"
    release = "trixie"
    arch = "riscv64"

``docker_host`` (else ``DOCKER_HOST``, else the local socket) may be
``ssh://user@host``: images are then streamed to that engine, and its host
needs binfmt for riscv64.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import TargetError
from harness.kinds import DockerOptions
from harness.model import TargetFacts
from harness.targets._common import GET_LIMIT, CopyBudget, probe_facts, safe_extract, size_text
from harness.targets._proc import BoundedBuffer
from harness.targets.base import Completed, Target

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.images.cache import ImageMeta

DEFAULT_HOST = "unix:///var/run/docker.sock"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Environment variable that marks every process a command starts.
MARKER = "LEAPFROG_EXEC"
#: PID 1's child: keeps the container up; commands come through exec.
SLEEPER = ["sleep", "infinity"]
BLOCK = tarfile.BLOCKSIZE
#: Seconds to wait for a killed command's stream to end before closing it.
KILL_GRACE = 15.0
_CHUNK = 1 << 20
_TAG_UNSAFE = re.compile(r"[^a-z0-9._-]+")
#: Capabilities a container keeps; Docker's other defaults are dropped (NET_RAW,
#: MKNOD, AUDIT_WRITE, SETPCAP, SYS_CHROOT).  Root in the container still owns
#: its files and installs packages (dnf on openEuler: chown, file modes and file
#: capabilities, dropping to other users), kills what a command started as
#: another user, and a suite may serve on a port below 1024.
KEPT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETFCAP", "NET_BIND_SERVICE")

ENGINE_HELP = (
    "Start the engine (`dockerd >/tmp/dockerd.log 2>&1 &` or `systemctl start docker`; "
    "install it with `apt-get install docker.io`), or point DOCKER_HOST or the target's "
    '"docker_host" key at a running engine.'
)

#: Runs every command: ``sh -c WRAPPER leapfrog-exec CWD ARGV...``.  The shell is
#: the session leader (docker exec starts one); after the command ends it kills
#: what the command left in its session, then exits with the command's status.
WRAPPER = r"""
if [ -n "$1" ]; then cd -- "$1" || exit 125; fi
shift
"$@"
rc=$?
me=$$
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$me" ] && continue
  { read -r l < "$d/stat"; } 2>/dev/null || continue
  l=${l##*) }
  set -- $l
  [ "$4" = "$me" ] && kill -9 "$p" 2>/dev/null
done
exit $rc
"""

#: ``sh -c KILLER leapfrog-kill TOKEN``: SIGKILL every process carrying the mark
#: ``TOKEN`` and every process in a session led by one of them.  Never PID 1's
#: session (the container itself).
KILLER = r"""
t=$1
me=$$
{ read -r l < /proc/1/stat; } 2>/dev/null
l=${l##*) }
set -- $l
init=$4
for round in 1 2 3 4 5; do
  victims=
  sids=" "
  for f in $(grep -lxzF "LEAPFROG_EXEC=$t" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}
    p=${p%/environ}
    [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
    victims="$victims $p"
    { read -r l < "/proc/$p/stat"; } 2>/dev/null || continue
    l=${l##*) }
    set -- $l
    [ "$4" != 0 ] && [ "$4" != "$init" ] && sids="$sids$4 "
  done
  if [ "$sids" != " " ]; then
    for d in /proc/[0-9]*; do
      p=${d#/proc/}
      [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
      { read -r l < "$d/stat"; } 2>/dev/null || continue
      l=${l##*) }
      set -- $l
      case "$sids" in *" $4 "*) victims="$victims $p" ;; esac
    done
  fi
  [ -z "$victims" ] && exit 0
  kill -9 $victims 2>/dev/null
  sleep 0.2
done
"""


# --------------------------------------------------------------------------- output


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


# --------------------------------------------------------------------------- images


def image_tag(meta: ImageMeta) -> str:
    """``leapfrog/<distro>-<release>-<arch>:<key>``: the Docker image of a cached rootfs."""
    repo = _TAG_UNSAFE.sub("-", f"{meta.distro}-{meta.release}-{meta.arch}".lower()).strip("-.")
    return f"leapfrog/{repo}:{meta.key}"


@dataclasses.dataclass(frozen=True)
class LayerEntry:
    header: bytes  # the tar header block(s), PAX format
    path: str  # the file on the host, read for regular files
    size: int  # bytes of content that follow the header


def layer_entries(root: Path) -> list[LayerEntry]:
    """The members of a tar of ``root``, in a fixed order, with numeric owners only.

    Directories, regular files, symlinks, hard links, device nodes and FIFOs are
    kept; sockets are skipped.  ``security.capability`` travels as a PAX xattr.
    """
    entries: list[LayerEntry] = []
    seen: dict[tuple[int, int], str] = {}

    def walk(rel: str) -> None:
        with os.scandir(root / rel if rel else root) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            arc = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            mode = st.st_mode
            info = tarfile.TarInfo(arc)
            info.mode = stat.S_IMODE(mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.uname = info.gname = ""
            info.mtime = int(st.st_mtime)
            size = 0
            if stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type, info.linkname = tarfile.LNKTYPE, seen[key]
                else:
                    seen[key] = arc
                    info.type, info.size = tarfile.REGTYPE, st.st_size
                    size = st.st_size
            elif stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(e.path)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
            else:
                continue  # sockets have no place in an image
            if not stat.S_ISLNK(mode):
                with contextlib.suppress(OSError):
                    cap = os.getxattr(e.path, "security.capability", follow_symlinks=False)
                    info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            entries.append(LayerEntry(header, e.path, size))
            if stat.S_ISDIR(mode):
                walk(arc)

    walk("")
    return entries


def _pad(n: int) -> bytes:
    return b"\0" * (-n % BLOCK)


def _member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + data + _pad(len(data))


def _platform_parts(platform: str) -> tuple[str, str, str]:
    os_, arch, *variant = platform.split("/")
    return os_, arch, variant[0] if variant else ""


def load_archive(
    root: Path,
    tag: str,
    *,
    platform: str,
    labels: dict[str, str],
    on_bytes: Callable[[int, int], None] | None = None,
) -> Iterator[bytes]:
    """A ``docker load`` archive of ``root`` as one layer, streamed without a temporary file.

    The layer's size is known before its content is read (the headers are made
    first), so it can sit inside the outer archive; its digest, which the image
    config must name, is computed while streaming, and the engine reads the
    config and manifest that follow it only once the archive has arrived.
    ``on_bytes(done, total)`` reports progress.
    """
    entries = layer_entries(root)
    total = sum(len(e.header) + e.size + len(_pad(e.size)) for e in entries) + 2 * BLOCK
    outer = tarfile.TarInfo("layer.tar")
    outer.size, outer.mode, outer.mtime = total, 0o644, int(time.time())
    yield outer.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    digest = hashlib.sha256()
    sent = 0
    reported = 0
    for e in entries:
        digest.update(e.header)
        yield e.header
        sent += len(e.header)
        if e.size:
            left = e.size
            with open(e.path, "rb") as f:
                while left:
                    chunk = f.read(min(left, _CHUNK))
                    if not chunk:
                        raise TargetError(f'"{e.path}" shrank while it was copied into a Docker image; build it again.')
                    left -= len(chunk)
                    digest.update(chunk)
                    yield chunk
            pad = _pad(e.size)
            digest.update(pad)
            yield pad
            sent += e.size + len(pad)
        if on_bytes and sent - reported >= total // 10:
            reported = sent
            on_bytes(sent, total)
    end = b"\0" * (2 * BLOCK)
    digest.update(end)
    yield end + _pad(total)
    os_, arch, variant = _platform_parts(platform)
    config: dict[str, Any] = {
        "architecture": arch,
        "os": os_,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {
            "Env": [f"PATH={PATH}", "LANG=C.UTF-8"],
            "Cmd": list(SLEEPER),
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest.hexdigest()}"]},
        "history": [{"created_by": f"leapfrog: root filesystem {root}"}],
    }
    if variant:
        config["variant"] = variant
    manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]
    yield _member("config.json", json.dumps(config).encode())
    yield _member("manifest.json", json.dumps(manifest).encode())
    yield b"\0" * (2 * BLOCK)
    if on_bytes:
        on_bytes(total, total)


# --------------------------------------------------------------------------- copying


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


# --------------------------------------------------------------------------- the target


def _preflight(url: str) -> None:
    """Raise OSError when nothing listens at a unix:// or tcp:// engine address.

    Checked with a socket that is always closed, before the SDK (which leaks its
    socket when the connection fails) is involved.  ssh:// is left to the SDK.
    """
    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(url[len("unix://") :])
    elif url.startswith(("tcp://", "http://", "https://")):
        parts = urllib.parse.urlsplit(url)
        with socket.create_connection((parts.hostname or "localhost", parts.port or 2375), timeout=10):
            pass


def host_id() -> str:
    """This host's id in container labels: /etc/machine-id and a random id kept in leapfrog's cache, hashed.

    A hostname is not unique (CI runners, containers sharing the engine's
    socket), and a machine-id is copied with the image a runner starts from;
    the random id (``<cache>/docker/host-id``, made once) separates those, and
    the machine-id separates hosts that share one cache folder.
    """
    from harness.images.cache import cache_root

    path = cache_root() / "docker" / "host-id"
    token = _read_text(path)
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".host-id-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(16) + "\n")
        try:
            os.link(tmp, path)  # made whole, then published only if no other process was first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        token = _read_text(path)
    machine = _read_text(Path("/etc/machine-id"))
    return hashlib.sha256(f"{machine}\0{token}".encode()).hexdigest()[:24]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), or None if there is none."""
    raw = _read_text(Path(f"/proc/{pid}/stat"))
    fields = raw.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


def is_stale(labels: dict[str, str]) -> bool:
    """True when the leapfrog process that made a container of this host is gone.

    Its pid is free, or now belongs to a process that started at another time.
    A container without a valid pid is left alone.
    """
    try:
        pid = int(labels.get("leapfrog.pid", "0"))
    except ValueError:
        return False
    if pid <= 0:
        return False
    started = process_start(pid)
    if started is None:
        return True
    recorded = labels.get("leapfrog.pid_start", "")
    return bool(recorded) and recorded != started


def _where_is_local(url: str) -> bool:
    """True for the engine on this host (unset, unix:// or tcp:// to a loopback address)."""
    if not url or url.startswith("unix://"):
        return True
    host = urllib.parse.urlsplit(url).hostname or ""
    return url.startswith("tcp://") and host in ("localhost", "127.0.0.1", "::1")


def _api_url(api: Any, path: str) -> str:
    return f"{api.base_url}/v{api.api_version}{path}"


def _check_response(response: Any, what: str) -> None:
    if response.status_code >= 400:
        with contextlib.closing(response):
            raise TargetError(f"{what} failed: the engine answered {response.status_code}: {response.text[:500]}")


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    """The JSON records of a streamed engine answer; the response is closed after."""
    with contextlib.closing(response):
        for raw in response.iter_lines():
            if raw:
                with contextlib.suppress(ValueError):
                    rec = json.loads(raw)
                    if isinstance(rec, dict):
                        yield rec


class DockerTarget(Target):
    kind: ClassVar[str] = "docker"
    needs_image: ClassVar[bool] = True
    emulation: ClassVar[str] = "qemu-user"
    facts_from_probe: ClassVar[bool] = True

    Options = DockerOptions

    options: DockerOptions

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.client: Any = None
        self.container_id: str | None = None
        self.image_ref = ""
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.attached = False  # a view of another process's container: stop() leaves it alone
        self.stopped = False  # after stop(), nothing reconnects until start()
        #: Seconds the last start() spent on: image, create, start, first command.
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ engine

    def _where(self) -> str:
        return self.options.docker_host or os.environ.get("DOCKER_HOST", "") or f"{DEFAULT_HOST} (DOCKER_HOST unset)"

    def _connect(self) -> Any:
        if self.client is not None:
            return self.client
        if self.stopped:
            raise TargetError(f"target {self.name}: stopped; start it again to run commands.")
        try:
            import docker
        except ImportError as e:
            raise TargetError(f"target {self.name}: the docker SDK is missing; run: pip install docker") from e
        client = None
        try:
            _preflight(self.options.docker_host or os.environ.get("DOCKER_HOST", "") or DEFAULT_HOST)
            if self.options.docker_host:
                client = docker.DockerClient(base_url=self.options.docker_host, timeout=300)
            else:
                client = docker.from_env(timeout=300)
            client.ping()
        except Exception as e:  # the SDK raises DockerException, requests and socket errors alike
            if client is not None:
                client.close()
            raise TargetError(
                f"target {self.name}: cannot reach the Docker engine at {self._where()}: {e}. {ENGINE_HELP}"
            ) from e
        self.client = client
        return client

    @property
    def api(self) -> Any:
        return self._connect().api

    @contextlib.contextmanager
    def _engine(self, doing: str) -> Iterator[None]:
        """Turn SDK, HTTP and socket errors into a TargetError that says what failed."""
        import docker.errors
        import requests

        try:
            yield
        except TargetError:
            raise
        except docker.errors.NotFound as e:
            raise TargetError(
                f"target {self.name}: could not {doing}: {e.explanation or e}. "
                "Something outside leapfrog removed it (docker rm -f?); run again."
            ) from e
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise TargetError(
                f"target {self.name}: the Docker engine at {self._where()} failed to {doing}: {e}. {ENGINE_HELP}"
            ) from e

    # ------------------------------------------------------------------ images

    def prepare(self) -> str:
        """Make the image ready on the engine without starting a container; returns its reference.

        ``start()`` does this itself; ``leapfrog images build`` can call it so
        the first run does not pay for the import.
        """
        self.stopped = False
        self._connect()
        with self._engine("prepare the image"):
            self.image_ref = self._image()
        self.image_id = self.image_ref
        return self.image_ref

    def _image(self) -> str:
        """The reference of the image to run, loading, pulling or building it first."""
        o = self.options
        spec = self.config.image
        if o.image_tarball:
            return self._load_tarball(Path(o.image_tarball), o.image_ref or (spec.ref if spec else ""))
        if o.image_ref:
            return self._present_or_pull(o.image_ref)
        if spec is None:
            raise TargetError(f'target {self.name}: set "image_ref", "image_tarball" or an [image] table.')
        if spec.source == "build":
            from harness.images import ensure_image

            extra = self.image_packages.get(spec.distro, [])
            cached = ensure_image(spec, sorted(set(self.packages) | set(extra)), progress=self.progress)
            return self._import_rootfs(cached.rootfs, cached.meta)
        if spec.path:
            return self._load_tarball(Path(spec.path), spec.ref)
        if spec.url:
            from harness.images.fetch import downloads_dir

            path = downloads_dir() / (spec.url.rstrip("/").rsplit("/", 1)[-1] or "download")
            if not path.is_file():
                raise TargetError(
                    f"target {self.name}: its image {spec.url} is not downloaded yet; "
                    f"run: leapfrog images fetch {self.name}"
                )
            return self._load_tarball(path, spec.ref)
        if spec.ref:
            return self._present_or_pull(spec.ref)
        raise TargetError(
            f'target {self.name}: [image] source "{spec.source}" names no image to run in Docker; give it a "ref", '
            'a "path" or "url" of a `docker save` archive, or set "image_ref" or "image_tarball".'
        )

    def _present_or_pull(self, ref: str) -> str:
        import docker.errors

        api = self.api
        with contextlib.suppress(docker.errors.ImageNotFound):
            api.inspect_image(ref)
            return ref
        self.progress(f"pulling {ref} for {self.options.platform}")
        try:
            self._connect().images.pull(ref, platform=self.options.platform)
        except Exception as e:  # any pull failure means the same to the user
            raise TargetError(
                f'target {self.name}: image "{ref}" is not on the engine and could not be pulled ({e}). '
                'Load it first (`docker load -i FILE`) or set "image_tarball" to its archive.'
            ) from e
        return ref

    def _load_tarball(self, path: Path, ref: str) -> str:
        """``docker load`` an archive once; a stamp in the cache remembers the image it gave."""
        import docker.errors

        from harness.images.cache import cache_root

        if not path.is_file():
            raise TargetError(f'target {self.name}: image tarball "{path}" does not exist; fix "image_tarball".')
        api = self.api
        if ref:
            with contextlib.suppress(docker.errors.ImageNotFound):
                api.inspect_image(ref)
                return ref
        st = path.stat()
        with self._engine("read the engine's identity"):
            engine = str(self._connect().info().get("ID", self._where()))
        key = hashlib.sha256(f"{engine}\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
        stamp = cache_root() / "docker" / f"load-{key[:20]}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, docker.errors.ImageNotFound):
            seen = json.loads(stamp.read_text())
            image_id = str(seen["id"])
            api.inspect_image(image_id)
            with contextlib.suppress(docker.errors.ImageNotFound):
                if api.inspect_image(str(seen["ref"]))["Id"] == image_id:
                    return str(seen["ref"])  # still the name it was loaded as
            return image_id
        self.progress(f"loading {path} into Docker ({st.st_size / 1e9:.2f} GB)")
        start = time.monotonic()
        loaded: list[str] = []
        with path.open("rb") as f, self._engine(f'load "{path}"'):
            response = api.post(
                _api_url(api, "/images/load"),
                params={"quiet": "1"},
                data=iter(lambda: f.read(_CHUNK), b""),
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=None,
            )
            _check_response(response, f'target {self.name}: docker load of "{path}"')
            for rec in _json_lines(response):
                if rec.get("error"):
                    raise TargetError(
                        f'target {self.name}: docker load of "{path}" failed: {rec["error"]}. It must be a '
                        "`docker save` archive (plain, .gz or .xz); a bare root filesystem tarball is not one."
                    )
                text = str(rec.get("stream", ""))
                for prefix in ("Loaded image: ", "Loaded image ID: "):
                    if text.startswith(prefix):
                        loaded.append(text[len(prefix) :].strip())
        if ref:
            chosen = ref
        elif len(loaded) == 1:
            chosen = loaded[0]
        else:
            raise TargetError(
                f'target {self.name}: "{path}" holds {len(loaded)} images ({", ".join(loaded) or "none"}); '
                'set "image_ref" to the one to run.'
            )
        with self._engine(f'find image "{chosen}" after loading "{path}"'):
            image_id = str(api.inspect_image(chosen)["Id"])
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"id": image_id, "ref": chosen, "path": str(path), "loaded": loaded}))
        for old in stamp.parent.glob("load-*.json"):  # forget archives that are gone
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if not Path(str(json.loads(old.read_text())["path"])).exists():
                    old.unlink()
        self.progress(f"loaded {chosen} in {time.monotonic() - start:.1f}s")
        return chosen

    def _import_rootfs(self, rootfs: Path, meta: ImageMeta) -> str:
        """Turn a cached root filesystem into ``leapfrog/...:<key>``, once per key and build."""
        import docker.errors
        import filelock

        from harness.images.cache import cache_root

        tag = image_tag(meta)
        api = self.api

        def current() -> bool:
            try:
                labels = api.inspect_image(tag)["Config"].get("Labels") or {}
            except docker.errors.ImageNotFound:
                return False
            return bool(labels.get("leapfrog.built") == meta.built)

        with self._engine(f'look for image "{tag}"'):
            if current():
                return tag
        locks = cache_root() / "docker"
        locks.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(locks / f"{tag.replace('/', '_').replace(':', '_')}.lock")):
            with self._engine(f'look for image "{tag}"'):
                if current():  # another run imported it while we waited
                    return tag
            labels = {"leapfrog": "1", "leapfrog.image": meta.name, "leapfrog.built": meta.built}
            self.progress(f"importing {meta.name} into Docker as {tag}")
            start = time.monotonic()

            def report(done: int, total: int) -> None:
                self.progress(f"importing {tag}: {done / 1e9:.2f} of {total / 1e9:.2f} GB")

            archive = load_archive(rootfs, tag, platform=self.options.platform, labels=labels, on_bytes=report)
            with self._engine(f'import "{rootfs}" as image "{tag}"'):
                response = api.post(
                    _api_url(api, "/images/load"),
                    params={"quiet": "1"},
                    data=archive,
                    headers={"Content-Type": "application/x-tar"},
                    stream=True,
                    timeout=None,
                )
                _check_response(response, f'target {self.name}: importing "{tag}"')
                for rec in _json_lines(response):
                    if rec.get("error"):
                        raise TargetError(f'target {self.name}: importing "{tag}" failed: {rec["error"]}')
                arch = api.inspect_image(tag).get("Architecture")
            want = _platform_parts(self.options.platform)[1]
            if arch != want:
                raise TargetError(
                    f'target {self.name}: the engine stored "{tag}" as {arch}, not {want}; '
                    "update Docker (docker.io 20.10 or newer)."
                )
            self.timings["import"] = round(time.monotonic() - start, 1)
            self.progress(f"imported {tag} in {self.timings['import']:.1f}s")
        return tag

    # ------------------------------------------------------------------ lifecycle

    def env(self) -> dict[str, str]:
        env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        if self.options.cpu:
            env["QEMU_CPU"] = self.options.cpu
        env.update(self.config.env)
        return env

    def _cleanup_stale(self) -> None:
        """Remove containers of this host's leapfrog runs whose process is gone (kill -9)."""
        with self._engine("list leapfrog containers"):
            found = self.api.containers(all=True, filters={"label": ["leapfrog=1", f"leapfrog.host={host_id()}"]})
        for c in found:
            if is_stale(c.get("Labels") or {}):
                with contextlib.suppress(Exception):
                    self.api.remove_container(c["Id"], force=True, v=True)

    def start(self) -> None:
        if self.container_id is not None:
            return
        self.stopped = False
        try:
            self._connect()
            self._cleanup_stale()
            t0 = time.monotonic()
            self.prepare()
            self.timings["image"] = round(time.monotonic() - t0, 2)
            self._create()
            t1 = time.monotonic()
            first = self.run(["true"], timeout=120)
            self.timings["first_command"] = round(time.monotonic() - t1, 2)
            if not first.ok:
                raise TargetError(
                    f"target {self.name}: the container cannot run commands (exit {first.exit_code}): "
                    f"{first.stderr.strip()[-500:]}"
                )
        except BaseException:
            with contextlib.suppress(TargetError):  # the first error is the one to report
                self.stop()
            raise

    @property
    def published_ports(self) -> list[int]:
        """The file's ``ports`` and those the run's suites asked for (suite.toml ``ports``)."""
        return sorted(set(self.options.ports) | set(self.requested_ports))

    def _create(self) -> None:
        o = self.options
        api = self.api
        ports = self.published_ports
        # A suite that serves on a port gets a bridge network for it: published
        # on the host's 127.0.0.1 only.  No suite asking, no network at all.
        network = o.network or bool(ports)
        safe = _TAG_UNSAFE.sub("-", self.name.lower()).strip("-.") or "target"
        host_config = api.create_host_config(
            network_mode="bridge" if network else "none",
            nano_cpus=int(o.cpus * 1e9) if o.cpus else None,
            mem_limit=o.memory or None,
            port_bindings=dict.fromkeys(ports, ("127.0.0.1", None)) or None,
            privileged=False,
            init=True,
            pids_limit=o.pids_limit or None,
            cap_drop=["ALL"],
            cap_add=sorted({*KEPT_CAPS, *(c.upper().removeprefix("CAP_") for c in o.cap_add)}),
            security_opt=["no-new-privileges"],
        )
        t0 = time.monotonic()
        with self._engine(f'create a container from "{self.image_ref}"'):
            created = api.create_container(
                self.image_ref,
                command=list(SLEEPER),
                name=f"leapfrog-{safe}-{self.run_id}",
                environment=self.env(),
                labels={
                    "leapfrog": "1",
                    "leapfrog.run": self.run_id,
                    "leapfrog.target": self.name,
                    "leapfrog.host": host_id(),
                    "leapfrog.hostname": socket.gethostname(),  # for people; the sweep uses leapfrog.host
                    "leapfrog.pid": str(os.getpid()),
                    "leapfrog.pid_start": process_start(os.getpid()) or "",
                },
                ports=ports or None,
                host_config=host_config,
                platform=o.platform,
                working_dir="/",
            )
            self.container_id = str(created["Id"])
            self.timings["create"] = round(time.monotonic() - t0, 2)
            api.start(self.container_id)
            self.timings["start"] = round(time.monotonic() - t0 - self.timings["create"], 2)
        self._check_alive("start")

    def _check_alive(self, during: str) -> None:
        """Raise a TargetError when the container is gone or stopped."""
        import docker.errors

        cid = self._require_container()
        try:
            state = self.api.inspect_container(cid)["State"]
        except docker.errors.NotFound as e:
            raise TargetError(
                f"target {self.name}: container {cid[:12]} disappeared during {during}; something outside "
                "leapfrog removed it (docker rm -f?). Run again."
            ) from e
        except Exception as e:  # the engine itself went away
            raise TargetError(
                f"target {self.name}: lost the Docker engine at {self._where()} during {during}: {e}. {ENGINE_HELP}"
            ) from e
        if not state.get("Running") or state.get("Status") in ("removing", "exited", "dead"):
            hint = ""
            with contextlib.suppress(Exception):
                logs = self.api.logs(cid, tail=20).decode("utf-8", "replace").strip()
                hint = f" Its last output: {logs[-500:]}" if logs else ""
                if "exec format error" in logs:
                    hint += (
                        " The engine cannot run riscv64 programs: register qemu-user with binfmt on the engine's host"
                        " (apt-get install qemu-user-static binfmt-support)."
                    )
            raise TargetError(
                f"target {self.name}: container {cid[:12]} stopped during {during} "
                f"(exit code {state.get('ExitCode')}, OOM killed: {state.get('OOMKilled')}).{hint}"
            )

    def stop(self) -> None:
        cid, self.container_id = self.container_id, None
        client, self.client = self.client, None
        self.stopped = True
        if client is None:
            return
        try:
            if cid is not None and not self.attached:  # another process owns an attached container
                import docker.errors

                try:
                    client.api.remove_container(cid, force=True, v=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as e:
                    if e.status_code != 409 or "in progress" not in str(e):  # someone else is removing it
                        raise TargetError(
                            f"target {self.name}: could not remove container {cid[:12]} ({e}); "
                            f"remove it with: docker rm -f {cid[:12]}"
                        ) from e
                except Exception as e:  # never leave silently: say which container is left
                    raise TargetError(
                        f"target {self.name}: could not remove container {cid[:12]} ({e}); "
                        f"remove it with: docker rm -f {cid[:12]}"
                    ) from e
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def handle(self) -> dict[str, Any]:
        return {
            "container": self._require_container(),
            "docker_host": self.options.docker_host,
            "ports": self.published_ports,
        }

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> DockerTarget:
        target = cls(config)
        target.container_id = str(handle.get("container", ""))
        target.requested_ports = [int(p) for p in handle.get("ports", [])]
        target.attached = True
        if not target.container_id:
            raise TargetError(f"target {config.name}: no container to attach to.")
        target._check_alive("attach")
        return target

    # ------------------------------------------------------------------ commands

    def _require_container(self) -> str:
        if self.container_id is None:
            raise TargetError(f"target {self.name}: not started.")
        return self.container_id

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        if not argv:
            raise TargetError(f"target {self.name}: run() needs a command; argv is empty.")
        cid = self._require_container()
        api = self.api
        token = secrets.token_hex(8)
        start = time.monotonic()
        with self._engine(f"start `{argv[0]}` in container {cid[:12]}"):
            exec_id = api.exec_create(
                cid,
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
                self._kill(token)
                reader.join(KILL_GRACE)
        except BaseException:  # Ctrl-C: leave nothing running in the container, then let it rise
            with contextlib.suppress(Exception):
                self._kill(token)
            _close(stream)
            raise
        _close(stream)  # also when it ended by itself: the SDK leaves the socket open
        reader.join(5)
        code = self._exit_status(exec_id, argv)
        if code == 128 + 9 and not timed_out:
            time.sleep(0.3)  # SIGKILL from outside: let the engine record a removal or stop first
        self._check_alive(f"`{' '.join(argv)[:200]}`")
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

    def _exit_status(self, exec_id: str, argv: list[str]) -> int | None:
        import docker.errors

        deadline = time.monotonic() + 10
        while True:
            try:
                info = self.api.exec_inspect(exec_id)
            except docker.errors.NotFound:
                return None  # the container went with it; _check_alive says so
            except Exception as e:  # the engine went away
                raise TargetError(
                    f"target {self.name}: lost the Docker engine at {self._where()} while `{argv[0]}` ran: {e}. "
                    f"{ENGINE_HELP}"
                ) from e
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            time.sleep(0.05)

    def _kill(self, token: str) -> None:
        """SIGKILL every process of the command marked ``token`` (a second exec)."""
        cid = self._require_container()
        with self._engine(f"kill a timed-out command in container {cid[:12]}"):
            self.api.exec_start(
                self.api.exec_create(cid, ["/bin/sh", "-c", KILLER, "leapfrog-kill", token], stdin=False)["Id"]
            )

    def _remote(self, remote: str) -> str:
        path = posixpath.normpath(posixpath.join("/", remote))
        if path == "/":
            raise TargetError(f'target {self.name}: "{remote}" names the root folder; name a file or folder in it.')
        return path

    def put(self, local: Path, remote: str) -> None:
        import docker.errors

        cid = self._require_container()
        path = self._remote(remote)
        parent, name = posixpath.split(path)
        if not local.exists():
            raise TargetError(f'target {self.name}: "{local}" does not exist on the host; nothing to copy.')
        with tempfile.TemporaryFile() as buf:
            tar_for_put(local, name, buf)
            for attempt in range(2):
                buf.seek(0)
                try:
                    with self._engine(f'copy "{local}" to "{path}"'):
                        self.api.put_archive(cid, parent, buf)
                    return
                except TargetError as e:
                    if attempt or not isinstance(e.__cause__, docker.errors.NotFound):
                        raise
                    self._check_alive(f'copying "{local}" in')
                    mk = self.run(["mkdir", "-p", parent], timeout=120)  # only the parent folder was missing
                    if not mk.ok:
                        raise TargetError(
                            f'target {self.name}: cannot make folder "{parent}": {mk.stderr.strip()[:300]}'
                        ) from e

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        import docker.errors

        cid = self._require_container()
        path = self._remote(remote)
        try:
            with self._engine(f'copy "{path}" out of the container'):
                stream, _stat = self.api.get_archive(cid, path)
                try:
                    extract_get(stream, posixpath.basename(path), local, shown=path, limit=limit)
                except TargetError as e:
                    raise TargetError(f"target {self.name}: {e}") from e
        except TargetError as e:
            if isinstance(e.__cause__, docker.errors.NotFound):
                self._check_alive(f'copying "{path}" out')
                raise TargetError(f'target {self.name}: "{path}" does not exist in the container.') from e
            raise

    def forward(self, port: int) -> tuple[str, int]:
        if port not in self.published_ports:
            raise TargetError(
                f"target {self.name}: port {port} inside the container is not published. List it in the "
                f'suite\'s "ports" (suite.toml), or set "network = true" and add it to "ports" in {self.config.file}.'
            )
        cid = self._require_container()
        with self._engine(f"read the published ports of container {cid[:12]}"):
            ports = self.api.inspect_container(cid)["NetworkSettings"]["Ports"] or {}
        for binding in ports.get(f"{port}/tcp") or []:
            if binding.get("HostPort"):
                return (binding.get("HostIp") or "127.0.0.1", int(binding["HostPort"]))
        raise TargetError(f"target {self.name}: the engine published no host port for {port}/tcp.")

    def facts(self) -> TargetFacts:
        return self.enrich_facts(probe_facts(self))

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        facts.emulation = self.emulation
        facts.cpu_model = self.options.cpu or "qemu-user default"
        facts.extra["docker_image"] = self.image_ref
        with contextlib.suppress(Exception):
            facts.extra["docker_engine"] = str(self.api.version().get("Version", ""))
        local = _where_is_local(self.options.docker_host or os.environ.get("DOCKER_HOST", ""))
        qemu = shutil.which(f"qemu-{self.config.arch}-static") if local else None
        if qemu:  # binfmt runs the host's qemu-user inside the container
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                ver = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False, timeout=30)
                if ver.stdout:
                    facts.extra["qemu"] = ver.stdout.splitlines()[0]
        return facts


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
