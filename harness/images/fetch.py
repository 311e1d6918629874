"""Download an image with resume and checksum verification (``leapfrog images fetch``).

Downloads go to ``<cache>/downloads/<file name>``; a partial download is kept
as ``<name>.part`` and resumed with an HTTP Range request.  The SHA-256 is
checked before the file takes its final name, so a file under its final name
is always whole and verified.  ``.xz`` files are decompressed next to it, and
the decompressed file is used only while the stamp beside it names the digest
of the archive it came from.

Where the digest comes from, first match wins:

- ``sha256`` given by the caller (the ``[image]`` table's ``sha256``);
- a pin recorded by an earlier fetch of the same URL
  (``<downloads>/pins/<hash of the url>.json``): no network is needed when the
  verified file is already there, so a VM starts offline;
- with ``trust_sha256sum``, the ``<url>.sha256sum`` published beside the file on
  the same mirror, read once (trust on first use) and pinned.

Without any of these the download is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import lzma
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ImageError
from harness.paths import downloads_dir

CHUNK = 1 << 20
_SHA = re.compile(r"\b([0-9a-fA-F]{64})\b")


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


def pin_path(url: str, folder: Path | None = None) -> Path:
    """Where the digest first trusted for ``url`` is recorded."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    return (folder or downloads_dir()) / "pins" / f"{key}.json"


def pinned_sha256(url: str, folder: Path | None = None) -> str:
    """The digest recorded for ``url`` by an earlier fetch, or ""."""
    try:
        pin = json.loads(pin_path(url, folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(pin, dict) or pin.get("url") != url:
        return ""
    digest = str(pin.get("sha256", ""))
    return digest.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", digest) else ""


def _record_pin(url: str, digest: str, source: str, folder: Path) -> None:
    path = pin_path(url, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "url": url,
        "sha256": digest,
        "source": source,
        "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(prefix=".pin-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _sha256sum_of(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        with _open(url + ".sha256sum", 0, 60) as resp:
            text = resp.read(1 << 16).decode("utf-8", "replace")
    except _Complete as e:  # pragma: no cover - a 416 for a fresh request cannot happen
        raise ImageError(f"could not read {url}.sha256sum.") from e
    return parse_sha256sum(text, name)


def fetch_image(
    url: str,
    sha256: str = "",
    *,
    trust_sha256sum: bool = False,
    dest_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[Path, str]:
    """Download ``url`` verified against a known digest (see the module help); (path, digest)."""
    folder = dest_dir or downloads_dir()
    if sha256:
        return fetch(url, sha256, dest_dir=folder, progress=progress), sha256.lower()
    pinned = pinned_sha256(url, folder)
    if pinned:
        try:
            return fetch(url, pinned, dest_dir=folder, progress=progress), pinned
        except ImageError as e:
            raise ImageError(
                f"{e} The digest was pinned at the first fetch ({pin_path(url, folder)}); if the mirror published "
                "a new build under the same name, check it and remove that file to trust its new .sha256sum."
            ) from e
    if not trust_sha256sum:
        raise ImageError(
            f'{url} has no SHA-256 to check the download against. Set "sha256" in the [image] table to the '
            'digest you expect, or set "trust_sha256sum = true" there to take it from '
            f"{url}.sha256sum on the same mirror at the first fetch; it is then pinned in "
            f"{pin_path(url, folder)} and every later fetch must match it."
        )
    digest = _sha256sum_of(url)
    path = fetch(url, digest, dest_dir=folder, progress=progress)
    _record_pin(url, digest, f"{url}.sha256sum", folder)
    return path, digest


def fetch_verified(
    url: str,
    sha256: str = "",
    *,
    trust_sha256sum: bool = False,
    dest_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """:func:`fetch_image` without the digest."""
    path, _ = fetch_image(url, sha256, trust_sha256sum=trust_sha256sum, dest_dir=dest_dir, progress=progress)
    return path


def decompress_xz(path: Path, sha256: str = "") -> Path:
    """``x.qcow2.xz`` -> ``x.qcow2`` beside it, made again unless it came from this very archive.

    A stamp ``x.qcow2.source-sha256`` beside it holds the digest of the archive
    (``sha256``, else hashed here); a decompressed file whose stamp is missing
    or names another digest is never used.
    """
    if path.suffix != ".xz":
        return path
    digest = (sha256 or sha256_of(path)).lower()
    out = path.with_suffix("")
    stamp = out.with_name(out.name + ".source-sha256")
    try:
        if out.is_file() and stamp.read_text(encoding="ascii").strip() == digest:
            return out
    except (OSError, UnicodeDecodeError):
        pass
    stamp.unlink(missing_ok=True)  # first: a crash below must not leave an old stamp on a new file
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with lzma.open(path) as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        os.replace(tmp, out)
    except lzma.LZMAError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ImageError(f"{path} is not a valid .xz archive ({e}); remove it and fetch it again.") from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    stamp_tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}")
    stamp_tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(stamp_tmp, stamp)
    return out
