"""The ``docker load`` archive of a root filesystem, made without Docker.

One layer with numeric owners, devices, symlinks, hard links and file
capabilities, and the architecture from ``platform``, streamed without a
temporary file (``docker import`` would be simpler, but engines before 24
ignore its platform and label the image amd64).  The docker backend sends it
to the engine (:mod:`harness.images.docker_image`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TargetError
from harness.userland import PATH

if TYPE_CHECKING:
    from harness.images.cache import ImageMeta

#: PID 1's child in a leapfrog container (the image's command): keeps it up; commands come through exec.
SLEEPER = ["sleep", "infinity"]
BLOCK = tarfile.BLOCKSIZE
#: Bytes read from a file at a time while streaming.
CHUNK = 1 << 20
#: What may not stand in an image or container name.
NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def image_tag(meta: ImageMeta) -> str:
    """``leapfrog/<distro>-<release>-<arch>:<key>``: the Docker image of a cached rootfs."""
    repo = NAME_UNSAFE.sub("-", f"{meta.distro}-{meta.release}-{meta.arch}".lower()).strip("-.")
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


def platform_parts(platform: str) -> tuple[str, str, str]:
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
                    chunk = f.read(min(left, CHUNK))
                    if not chunk:
                        raise TargetError(f'"{e.path}" shrank while it was copied into a Docker image; build it again.')
                    left -= len(chunk)
                    digest.update(chunk)
                    yield chunk
            fill = _pad(e.size)
            digest.update(fill)
            yield fill
            sent += e.size + len(fill)
        if on_bytes and sent - reported >= total // 10:
            reported = sent
            on_bytes(sent, total)
    end = b"\0" * (2 * BLOCK)
    digest.update(end)
    yield end + _pad(total)
    os_, arch, variant = platform_parts(platform)
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
