"""What a target accepts: its distribution, release, Python and wheel tags (:class:`Platform`)."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from packaging import tags as pkgtags

from harness.errors import ConfigError

#: The Python and glibc each distribution release ships (its wheels must fit both).
RELEASES: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, int]]] = {
    ("debian", "bookworm"): ((3, 11), (2, 36)),
    ("debian", "trixie"): ((3, 13), (2, 41)),
    ("debian", "forky"): ((3, 13), (2, 41)),
    ("debian", "sid"): ((3, 13), (2, 41)),
    ("debian", "testing"): ((3, 13), (2, 41)),
    ("debian", "unstable"): ((3, 13), (2, 41)),
    ("openeuler", "24.03-LTS"): ((3, 11), (2, 38)),
    ("openeuler", "24.03-LTS-SP1"): ((3, 11), (2, 38)),
}

DEBIAN_MIRROR = "http://deb.debian.org/debian"
OPENEULER_MIRROR = "https://repo.openeuler.org"


@dataclasses.dataclass(frozen=True)
class Platform:
    """What a target accepts: its distribution, Python, and wheel tags."""

    target: str
    distro: str  # "debian", "openeuler", or "" (native: no distribution packages)
    release: str
    arch: str  # the distribution's name for it (riscv64, amd64)
    python: tuple[int, int]
    tags: tuple[str, ...]  # wheel tags, most preferred first
    native: bool = False
    mirror: str = ""
    interpreter: str = "python3"  # native: the target's Python, asked for what is installed

    def marker_env(self) -> dict[str, str]:
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(self.arch, self.arch)
        if self.native:
            import platform

            machine = platform.machine()
        version = f"{self.python[0]}.{self.python[1]}"
        return {
            "python_version": version,
            "python_full_version": f"{version}.0",
            "platform_machine": machine,
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": "",
        }


def riscv64_tags(python: tuple[int, int], glibc: tuple[int, int], arch: str = "riscv64") -> tuple[str, ...]:
    """Wheel tags a glibc Linux with this Python accepts: manylinux_2_X_<arch> down to 2_17, then pure.

    musllinux wheels do not load on glibc, so a Debian or openEuler target never takes them.
    """
    platforms = [f"manylinux_{glibc[0]}_{m}_{arch}" for m in range(glibc[1], 16, -1)]
    interp = f"cp{python[0]}{python[1]}"
    out = [str(t) for t in pkgtags.cpython_tags(python, [interp, "abi3", "none"], platforms)]
    out += [str(t) for t in pkgtags.compatible_tags(python, interp, platforms)]
    return tuple(dict.fromkeys(out))


def platform_for(target: Any) -> Platform:
    """The :class:`Platform` of a ``TargetConfig``."""
    image = target.image
    if target.kind == "native" or image is None:
        return Platform(
            target=target.name,
            distro="",
            release="",
            arch=os.uname().machine,
            python=(sys.version_info[0], sys.version_info[1]),
            tags=tuple(str(t) for t in pkgtags.sys_tags()),
            native=True,
            interpreter=target.python,
        )
    known = RELEASES.get((image.distro, image.release))
    if known is None:
        raise ConfigError(
            f'{target.file}: leapfrog does not know the Python and glibc of {image.distro} "{image.release}"; '
            f"add it to harness/deps/platforms.py RELEASES (known: {', '.join(f'{d} {r}' for d, r in RELEASES)})."
        )
    python, glibc = known
    return Platform(
        target=target.name,
        distro=image.distro,
        release=image.release,
        arch=image.arch,
        python=python,
        tags=riscv64_tags(python, glibc, image.arch),
        mirror=image.mirror if image.distro == "debian" else OPENEULER_MIRROR,
    )
