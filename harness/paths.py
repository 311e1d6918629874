"""Where leapfrog keeps things on the host: every folder and file it owns is named here.

Under the cache root (``$LEAPFROG_CACHE``, else the user cache directory,
``~/.cache/leapfrog`` for root)::

    images/       built and fetched userlands (harness.images.cache)
    downloads/    fetched archives and disks, pins/ of trusted checksums
    runs/         work folders of running chroot targets
    qemu/<src>/   a qemu-user unpacked from a distribution's package
    native/       Debian's own dpkg and python3 for the host (native builds)
    probe-pyc/    the probe's bytecode, compiled by those and the host's own Python
    docker/       the engine host id, image-load stamps, build locks
    deps/         package indexes read by ``leapfrog deps``
    templates/    compiled report templates

Elsewhere: the history database (``$LEAPFROG_DB``, else
``<user data dir>/leapfrog/history.sqlite``) and the SSH ``known_hosts`` an
ssh target checks by default (``~/.ssh/known_hosts``).

Folders are made where a caller always needs them; the rest are made by the
code that writes into them.  Nothing here imports another leapfrog module.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    """``$LEAPFROG_CACHE`` or the user cache directory, with symbolic links resolved.

    Resolved once, here: the kernel lists mounts by their real path, so a cache
    reached through a link (``/root -> /var/roothome``) must be compared by it.
    """
    env = os.environ.get("LEAPFROG_CACHE")
    return Path(os.path.realpath(env if env else platformdirs.user_cache_dir("leapfrog")))


def _made(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return Path(os.path.realpath(d))


def images_dir() -> Path:
    """``<cache>/images``, made and resolved."""
    return _made(cache_root() / "images")


def downloads_dir() -> Path:
    """``<cache>/downloads``, made: fetched archives and disks."""
    d = cache_root() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def runs_dir() -> Path:
    """``<cache>/runs``, made and resolved: work folders of chroot targets live here."""
    return _made(cache_root() / "runs")


def qemu_dir(source: str) -> Path:
    """``<cache>/qemu/<source>``: the unpacked package (``root/``) and ``meta.json``, written last."""
    return cache_root() / "qemu" / source


def probe_pyc_dir() -> Path:
    """``<cache>/probe-pyc``: the probe's ``.pyc`` files, one folder per native interpreter (harness.probe_ship)."""
    return cache_root() / "probe-pyc"


def native_dir() -> Path:
    """``<cache>/native``: native copies of Debian's dpkg and python3, one folder per release and mirror."""
    return cache_root() / "native"


def docker_dir() -> Path:
    """``<cache>/docker``: the engine host id, image-load stamps and build locks."""
    return cache_root() / "docker"


def deps_dir() -> Path:
    """``<cache>/deps``, made: package indexes read by ``leapfrog deps``."""
    d = cache_root() / "deps"
    d.mkdir(parents=True, exist_ok=True)
    return d


def templates_dir() -> Path:
    """``<cache>/templates``: compiled report templates (the caller makes it, and does without it)."""
    return cache_root() / "templates"


def default_db() -> Path:
    """``$LEAPFROG_DB``, else ``<user data dir>/leapfrog/history.sqlite``."""
    env = os.environ.get("LEAPFROG_DB")
    return Path(env) if env else Path(platformdirs.user_data_dir("leapfrog")) / "history.sqlite"


def default_known_hosts() -> Path:
    """The ``known_hosts`` an ssh target checks when its file names none: ``~/.ssh/known_hosts``."""
    return Path("~/.ssh/known_hosts").expanduser()
