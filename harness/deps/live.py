"""The real sources: distribution indexes and PyPI over the network, verified and cached (:class:`LiveSources`)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import json
import lzma
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from harness.deps.indexes import (
    DepsError,
    IndexInfo,
    inrelease_date,
    inrelease_sha256,
    parse_packages,
    parse_primary,
    primary_location,
)
from harness.deps.platforms import DEBIAN_MIRROR, OPENEULER_MIRROR, Platform
from harness.deps.resolver import Sources

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
PYPI_JSON = "https://pypi.org/pypi/{name}/json"
#: A cached index younger than this is used without asking the mirror again.
INDEX_MAX_AGE = _dt.timedelta(hours=24)
#: Bytes read from any one download (a Packages.xz is ~10 MB, primary.xml.gz ~30 MB).
MAX_DOWNLOAD = 256 << 20


def deps_cache() -> Path:
    from harness.paths import deps_dir

    return deps_dir()


def _get(url: str, timeout: float = 60) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise DepsError(f'"{url}" is not an http(s) URL.')
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            data: bytes = resp.read(MAX_DOWNLOAD + 1)
    except urllib.error.HTTPError as e:
        raise DepsError(f"downloading {url} failed: HTTP {e.code} {e.reason}.") from e
    except (urllib.error.URLError, OSError) as e:
        raise DepsError(f"cannot reach {url} ({e}); check the network (leapfrog deps reads package indexes).") from e
    if len(data) > MAX_DOWNLOAD:
        raise DepsError(f"{url} is larger than {MAX_DOWNLOAD >> 20} MB; leapfrog refuses to read it.")
    return data


def verify_inrelease(path: Path, keyring: str = DEBIAN_KEYRING) -> str:
    """The signed text of an ``InRelease`` file, after ``gpgv`` checked it against the Debian archive keyring."""
    if shutil.which("gpgv") is None:
        from harness.hostreq import install_hint

        raise DepsError(f"verifying {path} needs gpgv, which is not installed; install with: {install_hint(['gpgv'])}.")
    if not Path(keyring).is_file():
        raise DepsError(f"verifying {path} needs {keyring}; install with: apt-get install debian-archive-keyring.")
    out = path.with_name(path.name + ".verified")
    out.unlink(missing_ok=True)
    done = subprocess.run(
        ["gpgv", "--keyring", keyring, "--output", str(out), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0 or not out.is_file():
        out.unlink(missing_ok=True)
        raise DepsError(
            f"the signature of {path} does not verify with {keyring} (gpgv exit {done.returncode}: "
            f"{done.stderr.strip()[-400:]}); the index is not used. Update debian-archive-keyring or check the mirror."
        )
    text = out.read_text(encoding="utf-8", errors="replace")
    out.unlink()
    return text


def debian_index(release: str, arch: str, mirror: str = DEBIAN_MIRROR) -> tuple[dict[str, str], IndexInfo]:
    """``main/binary-<arch>/Packages.xz`` of ``release``: cached under ``<cache>/deps/debian/`` for a day, verified.

    The InRelease's signature is checked with gpgv against the Debian archive
    keyring, and the Packages.xz against the SHA-256 the signed text lists; a
    cached copy is checked again against the cached, verified InRelease.
    """
    from harness.config import check_release

    check_release(release)
    folder = deps_cache() / "debian" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{mirror}") / release
    folder.mkdir(parents=True, exist_ok=True)
    rel_path = f"main/binary-{arch}/Packages.xz"
    base = f"{mirror.rstrip('/')}/dists/{release}"
    inrelease = folder / "InRelease"
    packages = folder / f"Packages-{arch}.xz"
    stamp = folder / f"Packages-{arch}.json"
    fresh = False
    with contextlib.suppress(OSError, ValueError, KeyError):
        fetched = _dt.datetime.fromisoformat(json.loads(stamp.read_text())["fetched"])
        fresh = _dt.datetime.now(_dt.UTC) - fetched < INDEX_MAX_AGE and packages.is_file() and inrelease.is_file()
    stale = ""
    for _attempt in range(2):
        if not fresh:
            try:
                data = _get(f"{base}/InRelease")
            except DepsError as e:
                if not (packages.is_file() and inrelease.is_file()):
                    raise
                stale = f"; the mirror was not reachable ({e}), so the cached index of an earlier day is used"
            else:
                tmp = folder / "InRelease.new"
                tmp.write_bytes(data)
                tmp.replace(inrelease)
        signed = verify_inrelease(inrelease)
        digest, size = inrelease_sha256(signed, rel_path)
        have = hashlib.sha256(packages.read_bytes()).hexdigest() if packages.is_file() else ""
        if have == digest:
            break
        if fresh:  # the cached index does not match its own InRelease: fetch both again
            fresh = False
            continue
        if stale:
            raise DepsError(f"{packages} does not match its cached InRelease and {base} cannot be reached{stale}.")
        data = _get(f"{base}/{rel_path}")
        got = hashlib.sha256(data).hexdigest()
        if got != digest or len(data) != size:
            raise DepsError(
                f"{base}/{rel_path} does not match the SHA-256 its signed InRelease lists "
                f"(expected {digest}, got {got}); the mirror may be mid-update, try again later."
            )
        tmp_pkg = folder / f"Packages-{arch}.xz.new"
        tmp_pkg.write_bytes(data)
        tmp_pkg.replace(packages)
        break
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if not fresh and not stale:
        stamp.write_text(json.dumps({"fetched": now, "date": inrelease_date(signed)}))
    with contextlib.suppress(OSError, ValueError, KeyError):
        now = json.loads(stamp.read_text())["fetched"]
    info = IndexInfo(
        url=f"{base}/{rel_path}",
        date=inrelease_date(signed),
        fetched=now,
        verified=f"InRelease signature (gpgv, {DEBIAN_KEYRING}) and SHA-256{stale}",
    )
    try:
        text = lzma.decompress(packages.read_bytes()).decode("utf-8", errors="replace")
    except lzma.LZMAError as e:
        raise DepsError(f"{packages} is not a valid .xz file ({e}); remove it and run again.") from e
    return parse_packages(text), info


def openeuler_index(release: str, arch: str, mirror: str = OPENEULER_MIRROR) -> tuple[dict[str, str], IndexInfo]:
    """openEuler's ``everything`` repository for ``release`` and ``arch`` (repomd.xml -> primary.xml.gz).

    Checked against the SHA-256 repomd.xml gives; repomd.xml itself is
    fetched over HTTPS (openEuler signs packages, not this metadata).
    """
    base = f"{mirror.rstrip('/')}/openEuler-{release}/everything/{arch}"
    repomd = _get(f"{base}/repodata/repomd.xml")
    href, digest = primary_location(repomd)
    data = _get(f"{base}/{href}")
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise DepsError(f"{base}/{href} does not match the SHA-256 in repomd.xml; try again later.")
    raw = gzip.decompress(data) if href.endswith(".gz") else data
    info = IndexInfo(
        url=f"{base}/{href}",
        date="",
        fetched=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        verified="SHA-256 from repomd.xml (HTTPS)" if digest else "HTTPS only",
    )
    return parse_primary(raw, arch), info


class LiveSources:
    """The real sources: mirrors and PyPI over the network, each index fetched once per process."""

    def __init__(self) -> None:
        self.indexes: dict[tuple[str, str, str], tuple[dict[str, str], IndexInfo]] = {}
        self.errors: dict[str, str] = {}  # target -> why its distribution index is missing
        self._pypi: dict[str, dict[str, Any] | None] = {}

    def distro(self, platform: Platform) -> dict[str, str]:
        key = (platform.distro, platform.release, platform.arch)
        if key not in self.indexes:
            try:
                if platform.distro == "debian":
                    self.indexes[key] = debian_index(platform.release, platform.arch, platform.mirror or DEBIAN_MIRROR)
                else:
                    self.indexes[key] = openeuler_index(platform.release, platform.arch)
            except DepsError as e:
                self.errors[platform.target] = str(e)
                return {}
        return self.indexes[key][0]

    def index_info(self, platform: Platform) -> IndexInfo | None:
        """Where ``platform``'s distribution index came from, once :meth:`distro` has read it."""
        index = self.indexes.get((platform.distro, platform.release, platform.arch))
        return index[1] if index else None

    def pypi(self, name: str) -> dict[str, Any] | None:
        canon = canonicalize_name(name)
        if canon not in self._pypi:
            try:
                url = PYPI_JSON.format(name=canon)
                data = json.loads(_get(url))
                for files in (data.get("releases") or {}).values():
                    for f in files:  # a PyPI mirror may give file URLs relative to the JSON's
                        f["url"] = urllib.parse.urljoin(url, str(f.get("url", "")))
                self._pypi[canon] = data
            except DepsError as e:
                if "HTTP 404" not in str(e):
                    raise
                self._pypi[canon] = None
        return self._pypi[canon]

    def installed(self, platform: Platform, name: str) -> str | None:
        """The version in the interpreter ``native`` runs (``python3`` on PATH), or None."""
        python = shutil.which(platform.interpreter) or platform.interpreter
        done = subprocess.run(
            [python, "-c", "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))", name],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            return None
        return done.stdout.strip() or None

    def sources(self) -> Sources:
        return Sources(distro=self.distro, pypi=self.pypi, installed=self.installed)
