"""Distribution versions read as PEP 440, to compare them with a requirement's specifier."""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


def debian_upstream(version: str) -> str:
    """A Debian version's upstream part: no epoch, no Debian revision (``1:2.2.4+ds-1`` -> ``2.2.4+ds``)."""
    v = version.split(":", 1)[1] if re.match(r"\d+:", version) else version
    return v.rsplit("-", 1)[0] if "-" in v else v


def comparable(version: str) -> Version | None:
    """A distribution version as PEP 440 (repack suffixes dropped, ``~rc1`` a pre-release), or None."""
    up = debian_upstream(version).split("+", 1)[0].replace("~", "")
    try:
        return Version(up)
    except InvalidVersion:
        m = re.match(r"\d+(\.\d+)*", up)
        return Version(m.group(0)) if m else None


def fits(spec: SpecifierSet, version: str) -> bool:
    v = comparable(version)
    return v is not None and spec.contains(v, prereleases=True)
