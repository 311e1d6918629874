"""Images: build, find and cache the userlands targets run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.config import ImageSpec
from harness.errors import ImageError
from harness.images import debian
from harness.images.cache import Built, CachedImage, build_image, find_base, find_image, sweep_interrupted_builds

__all__ = ["CachedImage", "ensure_image", "ensure_rootfs", "packages_for", "sweep_interrupted_builds"]


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
    where = (spec.distro, spec.release, spec.arch, spec.mirror)
    pkgs = packages_for(spec, packages)
    found = find_image(*where, pkgs)
    if found:
        return found
    base = find_base(*where, pkgs) if layering else None
    if base is None:

        def build(dest: Path) -> Built:
            phases = debian.build_rootfs(spec.release, spec.arch, spec.mirror, pkgs, dest, progress=progress)
            return Built(phases=phases)

        return build_image(*where, pkgs, build, how=f" with mmdebstrap ({len(pkgs)} packages)", progress=progress)
    extra = sorted(set(pkgs) - set(base.meta.packages))

    def layer(dest: Path) -> Built:
        debian.layer_rootfs(base.rootfs, dest, spec.release, spec.arch, extra, progress=progress, mirror=spec.mirror)
        return Built(base=base.meta.key)

    full = sorted(set(pkgs) | set(base.meta.packages))  # what the layered image will hold
    return build_image(*where, full, layer, how=f": {base.meta.name} + {', '.join(extra)}", progress=progress)


def ensure_rootfs(
    spec: ImageSpec,
    packages: list[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The root filesystem folder of an image with ``packages``; treat it as read-only."""
    return ensure_image(spec, packages, progress=progress).rootfs
