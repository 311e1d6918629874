"""Images: build, find and cache the userlands targets run."""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import filelock

from harness.config import ImageSpec
from harness.errors import ImageError
from harness.images import debian
from harness.images.cache import (
    RECIPE_VERSION,
    CachedImage,
    ImageMeta,
    build_lock,
    find_base,
    find_image,
    image_key,
)
from harness.mounts import JOURNAL, unmount_and_remove, unmount_under
from harness.paths import images_dir

__all__ = ["CachedImage", "ensure_image", "ensure_rootfs", "packages_for"]


def packages_for(spec: ImageSpec, extra: list[str]) -> list[str]:
    """The full package list of an image: base + the spec's own + ``extra``."""
    base = debian.BASE_PACKAGES if spec.distro == "debian" else []
    if spec.distro == "debian" and spec.mirror.startswith("https://"):
        base = [*base, *debian.HTTPS_PACKAGES]
    return sorted(set(base) | set(spec.packages) | set(extra))


def ensure_image(
    spec: ImageSpec,
    packages: list[str],
    *,
    progress: Callable[[str], None] | None = None,
    layering: bool = True,
) -> CachedImage:
    """Return a cached image holding ``packages``, building it if needed.

    A cached image with a superset of the packages is reused as it is; else the
    cached image sharing the most packages is copied and the missing ones are
    added with apt (``layering``; the result keeps the base's extras, so it is
    a superset); else mmdebstrap builds it from scratch.
    """
    if spec.source != "build":
        raise ImageError(f'image source "{spec.source}" has no root filesystem folder to build.')
    if spec.distro == "openeuler":
        from harness.images import dnf_rootfs  # dnf, the way openEuler's riscv64 root filesystems are built

        return dnf_rootfs.ensure_image(spec, packages, progress=progress)
    if spec.distro != "debian":
        raise ImageError(
            f'leapfrog builds Debian and openEuler images only; distro "{spec.distro}" images are supplied '
            "(see `leapfrog images fetch`)."
        )
    pkgs = packages_for(spec, packages)
    found = find_image(spec.distro, spec.release, spec.arch, spec.mirror, pkgs)
    if found:
        return found
    base = find_base(spec.distro, spec.release, spec.arch, spec.mirror, pkgs) if layering else None
    if base is not None:
        pkgs = sorted(set(pkgs) | set(base.meta.packages))  # what the layered image will hold
    key = image_key(spec.distro, spec.release, spec.arch, spec.mirror, pkgs)
    name = f"{spec.distro}-{spec.release}-{spec.arch}-{key}"
    root = images_dir()
    sweep_interrupted_builds()
    with build_lock(name, progress=progress):
        found = find_image(spec.distro, spec.release, spec.arch, spec.mirror, pkgs)
        if found:  # another run built it while we waited
            return found
        folder = root / name
        unmount_and_remove(folder)  # leftovers of an interrupted build, mounts first
        folder.mkdir(parents=True)
        start = time.monotonic()
        phases: dict[str, float] = {}
        try:
            if base is not None:
                extra = sorted(set(pkgs) - set(base.meta.packages))
                if progress:
                    progress(f"building {name}: {base.meta.name} + {', '.join(extra)}")
                dest = folder / "rootfs"
                debian.layer_rootfs(
                    base.rootfs, dest, spec.release, spec.arch, extra, progress=progress, mirror=spec.mirror
                )
            else:
                if progress:
                    progress(f"building {name} with mmdebstrap ({len(pkgs)} packages)")
                phases = debian.build_rootfs(
                    spec.release, spec.arch, spec.mirror, pkgs, folder / "rootfs", progress=progress
                )
        except BaseException:
            unmount_and_remove(folder)
            raise
        meta = ImageMeta(
            key=key,
            distro=spec.distro,
            release=spec.release,
            arch=spec.arch,
            mirror=spec.mirror,
            packages=pkgs,
            recipe=RECIPE_VERSION,
            built=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.monotonic() - start, 1),
            base=base.meta.key if base else "",
            phases=phases,
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


def ensure_rootfs(
    spec: ImageSpec,
    packages: list[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The root filesystem folder of an image with ``packages``; treat it as read-only."""
    return ensure_image(spec, packages, progress=progress).rootfs
