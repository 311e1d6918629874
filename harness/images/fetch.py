"""Download an image with resume and checksum verification (``leapfrog images fetch``).

Downloads go to ``<cache>/downloads/<file name>``; a partial download is kept
as ``<name>.part`` and resumed with an HTTP Range request.  The SHA-256 is
checked before the file takes its final name, so a file under its final name
is always whole and verified.  ``.xz`` files are decompressed next to it.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ImageError
from harness.images.cache import cache_root

CHUNK = 1 << 20
_SHA = re.compile(r"\b([0-9a-fA-F]{64})\b")


def downloads_dir() -> Path:
    d = cache_root() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def parse_sha256sum(text: str, name: str) -> str:
    """The digest for ``name`` from a ``sha256sum`` file (or the only digest in it)."""
    digests = []
    for line in text.splitlines():
        m = _SHA.search(line)
        if not m:
            continue
        if line.rstrip().endswith(name):
            return m.group(1).lower()
        digests.append(m.group(1).lower())
    if len(digests) == 1:
        return digests[0]
    raise ImageError(f"no SHA-256 for {name} in the checksum file ({len(digests)} digests found).")


def _open(url: str, start: int, timeout: float) -> Any:
    # The scheme was checked to be http(s) by fetch().
    req = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})  # noqa: S310
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left to send: the part file is complete
            raise _Complete from e
        raise ImageError(f"downloading {url} failed: HTTP {e.code} {e.reason}.") from e
    except (urllib.error.URLError, OSError) as e:
        raise ImageError(
            f"cannot reach {url} ({e}); check the network or download it by hand into {downloads_dir()}."
        ) from e


class _Complete(Exception):
    pass


def fetch(
    url: str,
    sha256: str,
    *,
    dest_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60,
) -> Path:
    """Download ``url`` (resuming a partial file), verify ``sha256``, return the path."""
    if not url.startswith(("http://", "https://")):
        raise ImageError(f'"{url}" is not an http(s) URL.')
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256 or ""):
        raise ImageError(f'image for {url} needs "sha256" (64 hex digits) so the download can be verified.')
    folder = dest_dir or downloads_dir()
    name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    final = folder / name
    if final.exists() and sha256_of(final) == sha256.lower():
        return final
    part = folder / f"{name}.part"
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
        with resp:
            if start and resp.status != 206:  # the server ignored Range: start over
                start = 0
            total_hdr = resp.headers.get("Content-Length")
            total = int(total_hdr) + start if total_hdr else None
            with part.open("ab" if start else "wb") as out:
                done = start
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
    except _Complete:
        pass
    got = sha256_of(part)
    if got != sha256.lower():
        part.unlink()
        raise ImageError(
            f"checksum mismatch for {url}: expected {sha256.lower()}, got {got}; the partial file was removed, "
            "run the fetch again."
        )
    part.replace(final)
    return final


def fetch_verified(
    url: str,
    sha256: str = "",
    *,
    dest_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """``fetch`` with the digest from ``sha256`` or, when empty, from ``<url>.sha256sum``.

    openEuler publishes a ``.sha256sum`` beside each image; reading it over
    HTTPS from the same server is trust on first use, and the README says so.
    """
    if not sha256:
        name = url.rstrip("/").rsplit("/", 1)[-1]
        try:
            with _open(url + ".sha256sum", 0, 60) as resp:
                text = resp.read(1 << 16).decode("utf-8", "replace")
        except _Complete as e:  # pragma: no cover - a 416 for a fresh request cannot happen
            raise ImageError(f"could not read {url}.sha256sum.") from e
        sha256 = parse_sha256sum(text, name)
    return fetch(url, sha256, dest_dir=dest_dir, progress=progress)


def decompress_xz(path: Path) -> Path:
    """``x.qcow2.xz`` -> ``x.qcow2`` beside it (kept; skipped when already there)."""
    if path.suffix != ".xz":
        return path
    out = path.with_suffix("")
    if out.exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    with lzma.open(path) as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    tmp.replace(out)
    return out
