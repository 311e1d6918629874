"""What one ``qemu-vm`` boot starts from: the QEMU command line, and supplied disks.

A supplied disk (``[image] source = "qcow2"`` with ``path`` or ``url``, as
openEuler publishes them) boots through its own firmware: one file in
``image.firmware`` is a ``-bios`` payload, two are UEFI code and variables
for pflash (the variables are copied per boot).  leapfrog's key is not in such
an image, so it logs in as ``user`` with the password from the environment
variable named by ``password_env``, and trusts the host key it sees first in
each boot.  Disks leapfrog builds itself are :mod:`harness.images.vm_disk`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError, ImageError
from harness.images import fetch
from harness.images.vm_disk import BootMedia
from harness.kinds import QemuVmOptions, SshOptions

if TYPE_CHECKING:
    from harness.config import TargetConfig


def qemu_argv(
    o: QemuVmOptions, media: BootMedia, overlay: Path, port: int, flash_vars: Path | None = None
) -> list[str]:
    """The QEMU command line for one boot (without the serial console, which ``start()`` adds).

    ``flash_vars`` is this boot's writable copy of ``media.flash_vars``.
    """
    argv = [
        "qemu-system-riscv64",
        "-machine", o.machine,
        "-bios", media.bios or o.bios,
        "-smp", str(o.cpus),
        "-m", o.memory,
    ]  # fmt: skip
    if o.cpu:
        argv += ["-cpu", o.cpu]
    if media.kernel is not None:
        argv += ["-kernel", str(media.kernel)]
        if media.initrd is not None:
            argv += ["-initrd", str(media.initrd)]
        argv += ["-append", media.append]
    if media.flash_code is not None:
        argv += ["-drive", f"if=pflash,unit=0,format=raw,readonly=on,file={media.flash_code}"]
        if flash_vars is not None:
            argv += ["-drive", f"if=pflash,unit=1,format=raw,file={flash_vars}"]
    argv += [
        "-drive", f"file={overlay},format=qcow2,if=none,id=hd0,cache=unsafe",
        "-device", "virtio-blk-device,drive=hd0",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-device,netdev=n0",
        "-object", "rng-random,filename=/dev/urandom,id=rng0",
        "-device", "virtio-rng-device,rng=rng0",
        "-display", "none",
        "-monitor", "none",
        "-no-reboot",
    ]  # fmt: skip
    return [*argv, *o.extra_args]


def supplied_media(config: TargetConfig, progress: Callable[[str], None]) -> tuple[BootMedia, SshOptions]:
    """A supplied qcow2 disk (fetched if it is a URL) and how to log in to it."""
    spec = config.image
    o: QemuVmOptions = config.options
    assert spec is not None
    if spec.source != "qcow2":
        raise ConfigError(
            f'{config.file}: kind "qemu-vm" boots Debian images that leapfrog builds (source "build") '
            f'or a supplied disk (source "qcow2"); source "{spec.source}" is not supported.'
        )
    if not o.password_env:
        raise ConfigError(
            f'{config.file}: a supplied qcow2 image has no leapfrog key in it; set "password_env" '
            "to the NAME of an environment variable holding the login password."
        )
    code = vars_ = None
    bios = ""
    trust = spec.trust_sha256sum
    firmware = [_supplied(config.file, f, "", trust_sha256sum=trust, progress=progress) for f in spec.firmware]
    if len(firmware) == 1:
        bios = str(firmware[0])  # an image's own OpenSBI/U-Boot payload
    elif len(firmware) == 2:
        code, vars_ = firmware  # UEFI: code and variables in pflash
    elif firmware:
        raise ConfigError(
            f'{config.file}: key "image.firmware" lists {len(firmware)} files; give one (a -bios payload) '
            "or two (UEFI code and variables for pflash)."
        )
    supplied = _supplied(config.file, spec.path or spec.url, spec.sha256, trust_sha256sum=trust, progress=progress)
    media = BootMedia(supplied, "qcow2", bios=bios, flash_code=code, flash_vars=vars_)
    # The image brings its own host key, often made on first boot: trust it on first use,
    # per boot, then check it strictly for the rest of that boot.
    login = SshOptions(host="127.0.0.1", user=o.user, password_env=o.password_env, accept_new_host_key=True)
    return media, login


def _supplied(file: Path, where: str, sha256: str, *, trust_sha256sum: bool, progress: Callable[[str], None]) -> Path:
    """A local path as is; a URL fetched (checksum verified) and decompressed into the cache.

    Once fetched, a URL needs no network: its digest is ``sha256`` or the one
    pinned at the first fetch, and the decompressed disk is used only if it
    came from an archive with that digest.  ``file`` is the target file, for messages.
    """
    if not where:
        raise ConfigError(f'{file}: the [image] table needs "path" or "url" for source "qcow2".')
    if "://" not in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f'{file}: image file "{where}" does not exist.')
        return path
    progress(f"fetching {where}")
    try:
        path, digest = fetch.fetch_image(where, sha256, trust_sha256sum=trust_sha256sum)
    except ImageError as e:
        raise ImageError(f"{file}: {e}") from e
    return fetch.decompress_xz(path, digest)
