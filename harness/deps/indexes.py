"""Reading distribution indexes: Debian's ``InRelease`` and ``Packages``, openEuler's ``repodata`` (no network)."""

from __future__ import annotations

import dataclasses
import re
from xml.etree import ElementTree

from packaging.version import Version

from harness.deps.versions import comparable
from harness.errors import LeapfrogError


class DepsError(LeapfrogError):
    """An index could not be fetched or verified."""


def inrelease_sha256(signed: str, path: str) -> tuple[str, int]:
    """(digest, size) of ``path`` (``main/binary-riscv64/Packages.xz``) in a signed InRelease's SHA256 list."""
    section = re.search(r"^SHA256:\n((?:[ \t].*\n?)*)", signed, re.MULTILINE)
    if section:
        for line in section.group(1).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == path and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                return parts[0], int(parts[1])
    raise DepsError(f"the signed InRelease lists no SHA256 for {path}; the mirror does not serve that index.")


def inrelease_date(signed: str) -> str:
    m = re.search(r"^Date:\s*(.+)$", signed, re.MULTILINE)
    return m.group(1).strip() if m else ""


def parse_packages(text: str) -> dict[str, str]:
    """A Debian ``Packages`` index -> {package: version} (the highest version when listed twice)."""
    out: dict[str, str] = {}
    name = version = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if name and version:
                old = out.get(name)
                ov, nv = (comparable(old) if old else None), comparable(version)
                if old is None or (ov is not None and nv is not None and nv > ov):
                    out[name] = version
            name = version = ""
        elif line.startswith("Package:"):
            name = line[8:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return out


@dataclasses.dataclass(frozen=True)
class IndexInfo:
    """Where a distribution index came from, for the report."""

    url: str
    date: str  # the release file's Date
    fetched: str  # when this host fetched it (ISO 8601)
    verified: str  # how it was checked


def parse_primary(data: bytes, arch: str) -> dict[str, str]:
    """openEuler's ``primary.xml`` -> {rpm name: version} for ``arch`` and noarch (the highest version)."""
    out: dict[str, str] = {}
    ns = "{http://linux.duke.edu/metadata/common}"
    # repodata is read from the distribution's own mirror; ElementTree (expat) resolves no external entities.
    root = ElementTree.fromstring(data)  # noqa: S314
    for pkg in root.iter(f"{ns}package"):
        name = pkg.findtext(f"{ns}name") or ""
        parch = pkg.findtext(f"{ns}arch") or ""
        ver = pkg.find(f"{ns}version")
        if not name or ver is None or parch not in (arch, "noarch"):
            continue
        version = ver.get("ver", "")
        old = out.get(name)
        if old is None or (comparable(version) or Version("0")) > (comparable(old) or Version("0")):
            out[name] = version
    return out


def primary_location(repomd: bytes) -> tuple[str, str]:
    """(href, sha256) of the primary metadata in ``repodata/repomd.xml``."""
    ns = "{http://linux.duke.edu/metadata/repo}"
    root = ElementTree.fromstring(repomd)  # noqa: S314 (see parse_primary)
    for data in root.iter(f"{ns}data"):
        if data.get("type") == "primary":
            loc = data.find(f"{ns}location")
            checksum = data.find(f"{ns}checksum")
            if loc is not None and loc.get("href"):
                sha = checksum is not None and checksum.get("type") == "sha256"
                digest = (checksum.text or "") if sha and checksum is not None else ""
                return str(loc.get("href")), digest.strip()
    raise DepsError("repomd.xml lists no primary metadata; the URL is not a yum/dnf repository.")
