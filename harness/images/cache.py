"""Where images live, how they are named, and how builds are kept apart.

Layout under the cache root (:func:`harness.paths.cache_root`)::

    images/<distro>-<release>-<arch>-<key>/
        rootfs/        the root filesystem (complete only once meta.json exists)
        meta.json      what is in it; written last, so its presence means "done"
    images/<...>.lock  held while building, so two runs never build one image twice
    images/<...>.owner the pid holding that lock, named when a waiting run gives up

``key`` is a hash of (distro, release, arch, mirror, sorted packages, recipe
version): a second run asking for the same packages builds nothing.  A cached
image whose packages are a superset of what is asked is reused too.

A build folder may hold mounts while packages are layered in; they are listed
in its ``mounts.journal`` before they are made, and the folder is only ever
removed through :mod:`harness.mounts`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filelock

from harness.errors import ConfigError, ImageError
from harness.mounts import JOURNAL, unmount_and_remove, unmount_under
from harness.paths import images_dir

#: Bump when the way images are built changes, so old caches are not reused.
#: Not bumped for harness/images/nativebuild.py (native unpacking and byte-compiling, one initramfs):
#: its images hold the same files, every .pyc byte for byte (docs/design.md, "Images").
RECIPE_VERSION = 1


#: Seconds to wait for another run's build of the same image: a cold emulated build fits.
DEFAULT_LOCK_TIMEOUT = 3600.0


def lock_timeout() -> float:
    """``$LEAPFROG_LOCK_TIMEOUT`` seconds (default 3600): how long to wait for another run's image build."""
    raw = os.environ.get("LEAPFROG_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f'LEAPFROG_LOCK_TIMEOUT="{raw}" is not a positive number of seconds; '
            f"set it to e.g. {DEFAULT_LOCK_TIMEOUT:.0f} or unset it."
        )
    return value


def _holder(owner: Path) -> str:
    try:
        data = json.loads(owner.read_text(errors="replace"))
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"
    argv = str(data.get("argv", ""))[:200]
    return f"pid {pid}" + (f" ({argv})" if argv else "")


@contextlib.contextmanager
def build_lock(name: str, *, progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``images/<name>.lock`` (waiting at most :func:`lock_timeout` seconds), so one image is built once.

    The holder's pid goes into ``images/<name>.owner``, so a run that gives up
    waiting names who holds the lock.
    """
    root = images_dir()
    owner = root / f"{name}.owner"
    timeout = lock_timeout()
    lock = filelock.FileLock(str(root / f"{name}.lock"), timeout=timeout)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if progress:
            progress(f"waiting for the build lock of {name}, held by {_holder(owner)}")
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise ImageError(
                f"gave up after {timeout:.0f}s waiting for {root / (name + '.lock')}: {_holder(owner)} is "
                f"building image {name}; wait for it to finish or stop it, or raise LEAPFROG_LOCK_TIMEOUT."
            ) from None
    try:
        tmp = root / f"{name}.owner.tmp{os.getpid()}"
        tmp.write_text(json.dumps({"pid": os.getpid(), "argv": " ".join(sys.argv)}))
        tmp.replace(owner)
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """What a cached image holds.  Stored as ``meta.json`` beside ``rootfs/``."""

    key: str
    distro: str
    release: str
    arch: str
    mirror: str
    packages: list[str]
    recipe: int
    built: str = ""  # ISO time
    build_seconds: float = 0.0
    base: str = ""  # key of the image this one was layered on, if any
    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per build phase, in order
    #: Of ``packages``, those the repository lacks (openEuler built with dnf): their suites' cases are skipped.
    missing: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.distro}-{self.release}-{self.arch}-{self.key}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def image_key(distro: str, release: str, arch: str, mirror: str, packages: list[str]) -> str:
    blob = json.dumps(
        {
            "distro": distro,
            "release": release,
            "arch": arch,
            "mirror": mirror,
            "packages": sorted(set(packages)),
            "recipe": RECIPE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class CachedImage:
    meta: ImageMeta
    path: Path  # the image folder

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def size_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.rootfs):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_size
        return total


def list_images() -> list[CachedImage]:
    out = []
    for meta_file in sorted(images_dir().glob("*/meta.json")):
        try:
            meta = ImageMeta.from_dict(json.loads(meta_file.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # a half-written or foreign folder is not an image
        out.append(CachedImage(meta=meta, path=meta_file.parent))
    return out


def find_image(distro: str, release: str, arch: str, mirror: str, packages: list[str]) -> CachedImage | None:
    """An exact match, else the smallest complete image with a superset of ``packages``."""
    want = set(packages)
    key = image_key(distro, release, arch, mirror, packages)
    candidates = []
    for img in list_images():
        m = img.meta
        if (m.distro, m.release, m.arch, m.mirror, m.recipe) != (
            distro,
            release,
            arch,
            mirror,
            RECIPE_VERSION,
        ):
            continue
        if m.key == key:
            return img
        if want <= set(m.packages):
            candidates.append(img)
    candidates.sort(key=lambda i: len(i.meta.packages))
    return candidates[0] if candidates else None


def find_base(distro: str, release: str, arch: str, mirror: str, packages: list[str]) -> CachedImage | None:
    """The cached image sharing the most packages with ``packages``: a base to layer on.

    Layering adds what is missing; what the base has beyond ``packages`` stays
    (a superset serves the request just as well, and later requests reuse it).
    """
    want = set(packages)
    best: CachedImage | None = None
    best_overlap = 0
    for img in list_images():
        m = img.meta
        if (m.distro, m.release, m.arch, m.mirror, m.recipe) != (distro, release, arch, mirror, RECIPE_VERSION):
            continue
        overlap = len(set(m.packages) & want)
        if overlap > best_overlap or (overlap == best_overlap and best and len(m.packages) < len(best.meta.packages)):
            best, best_overlap = img, overlap
    return best


def remove_image(img: CachedImage) -> None:
    """Delete an image folder; meta.json goes first so a half-removed image is never used.

    Mounts left inside by an interrupted build are unmounted first; a folder
    that still holds one is left in place (:class:`harness.mounts.MountError`).
    """
    (img.path / "meta.json").unlink(missing_ok=True)
    unmount_and_remove(img.path)


@dataclasses.dataclass(frozen=True)
class Built:
    """What building a root filesystem found out, for its ``meta.json``."""

    phases: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per build phase, in order
    missing: list[str] = dataclasses.field(default_factory=list)  # of the packages, those the repository lacks
    base: str = ""  # key of the image it was layered on, if any


def build_image(
    distro: str,
    release: str,
    arch: str,
    mirror: str,
    packages: list[str],
    build: Callable[[Path], Built],
    *,
    how: str,
    progress: Callable[[str], None] | None = None,
) -> CachedImage:
    """The image holding ``packages``, built by ``build(rootfs)`` unless another run built it while we waited.

    Under the image's build lock: what an interrupted build left is unmounted
    and removed, ``build`` fills ``<folder>/rootfs`` (the line "building
    <name><how>" comes first), and ``meta.json`` is written last, atomically.
    Whatever stops ``build`` (an error, Ctrl-C) unmounts and removes the folder.
    """
    key = image_key(distro, release, arch, mirror, packages)
    name = f"{distro}-{release}-{arch}-{key}"
    sweep_interrupted_builds()
    with build_lock(name, progress=progress):
        found = find_image(distro, release, arch, mirror, packages)
        if found:  # another run built it while we waited
            return found
        folder = images_dir() / name
        unmount_and_remove(folder)  # leftovers of an interrupted build, mounts first
        folder.mkdir(parents=True)
        start = time.monotonic()
        try:
            if progress:
                progress(f"building {name}{how}")
            built = build(folder / "rootfs")
        except BaseException:
            unmount_and_remove(folder)
            raise
        meta = ImageMeta(
            key=key,
            distro=distro,
            release=release,
            arch=arch,
            mirror=mirror,
            packages=packages,
            recipe=RECIPE_VERSION,
            built=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.monotonic() - start, 1),
            base=built.base,
            phases=built.phases,
            missing=built.missing,
        )
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta.to_dict(), indent=2))
        tmp.replace(folder / "meta.json")  # the image is complete from here on
        return CachedImage(meta=meta, path=folder)


def sweep_interrupted_builds() -> list[Path]:
    """Unmount and remove what builds killed mid-way (SIGKILL, OOM) left; returns the folders cleaned.

    A build folder with a mount journal and no meta.json is a leftover when
    nobody holds its build lock (a live build holds it; the kernel drops it
    when the process dies).
    """
    cleaned = []
    root = images_dir()
    for journal in sorted(root.glob(f"*/{JOURNAL}")):
        folder = journal.parent
        lock = filelock.FileLock(str(root / f"{folder.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            continue  # being built right now
        try:
            if (folder / "meta.json").exists():
                if not unmount_under(folder):
                    journal.unlink(missing_ok=True)
            else:
                unmount_and_remove(folder)
            cleaned.append(folder)
        finally:
            lock.release()
    return cleaned
