"""Where each of a project's dependencies can come from, on each target.

A project's requirements (PEP 621 ``[project].dependencies`` with the chosen
``optional-dependencies`` extras and PEP 735 ``dependency-groups``, or a
``requirements.txt``) are parsed with ``packaging``.  For every requirement and
target this module says what each source offers and whether it fits the
specifier:

- the target's distribution: the Debian ``Packages`` index of the release and
  architecture (signature of ``InRelease`` checked with ``gpgv``, the index
  checked against its SHA-256 there), or openEuler's ``repodata``;
- PyPI: a wheel whose tags the target accepts (riscv64 targets:
  ``manylinux_2_X_riscv64`` up to the release's glibc, and ``none-any``;
  ``native``: the host interpreter's own tags), or only an sdist, or nothing;
- on ``native`` only: the version already installed in the interpreter.

Sources are answered through two small callables (``Sources``), so the unit
tests feed recorded fixtures and never touch the network.

The package, by job (each module imports only those listed before it):

- :mod:`~harness.deps.requirements`: reading ``requirements.txt`` and ``pyproject.toml``;
- :mod:`~harness.deps.versions`: distribution versions read as PEP 440;
- :mod:`~harness.deps.platforms`: what a target accepts (:class:`Platform`);
- :mod:`~harness.deps.resolver`: each source's offer and the one taken (:func:`resolve`);
- :mod:`~harness.deps.indexes`: parsing Debian and openEuler indexes;
- :mod:`~harness.deps.live`: fetching, verifying and caching them, and PyPI (:class:`LiveSources`);
- :mod:`~harness.deps.table`: the report of ``leapfrog deps`` (terminal, JSON, HTML).
"""

from __future__ import annotations

from harness.deps.indexes import (
    DepsError,
    IndexInfo,
    inrelease_date,
    inrelease_sha256,
    parse_packages,
    parse_primary,
    primary_location,
)
from harness.deps.live import (
    DEBIAN_KEYRING,
    INDEX_MAX_AGE,
    MAX_DOWNLOAD,
    PYPI_JSON,
    LiveSources,
    debian_index,
    deps_cache,
    openeuler_index,
    verify_inrelease,
)
from harness.deps.platforms import DEBIAN_MIRROR, OPENEULER_MIRROR, RELEASES, Platform, platform_for, riscv64_tags
from harness.deps.requirements import ProjectInfo, read_project, read_requirements, requirements_of
from harness.deps.resolver import (
    CHOICES,
    DEBIAN_NAMES,
    TAKEN_FROM,
    Offer,
    Resolution,
    Sources,
    debian_candidates,
    openeuler_candidates,
    resolve,
)
from harness.deps.table import DepsReport, TargetDeps, build_report, cell_text, others_text, render_html, rich_table
from harness.deps.versions import comparable, debian_upstream, fits

__all__ = [
    "CHOICES",
    "DEBIAN_KEYRING",
    "DEBIAN_MIRROR",
    "DEBIAN_NAMES",
    "INDEX_MAX_AGE",
    "MAX_DOWNLOAD",
    "OPENEULER_MIRROR",
    "PYPI_JSON",
    "RELEASES",
    "TAKEN_FROM",
    "DepsError",
    "DepsReport",
    "IndexInfo",
    "LiveSources",
    "Offer",
    "Platform",
    "ProjectInfo",
    "Resolution",
    "Sources",
    "TargetDeps",
    "build_report",
    "cell_text",
    "comparable",
    "debian_candidates",
    "debian_index",
    "debian_upstream",
    "deps_cache",
    "fits",
    "inrelease_date",
    "inrelease_sha256",
    "openeuler_candidates",
    "openeuler_index",
    "others_text",
    "parse_packages",
    "parse_primary",
    "platform_for",
    "primary_location",
    "read_project",
    "read_requirements",
    "render_html",
    "requirements_of",
    "resolve",
    "rich_table",
    "riscv64_tags",
    "verify_inrelease",
]
