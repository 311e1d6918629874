"""openEuler images: recognise them, and install what suites need with dnf.

leapfrog does not build openEuler images: they are supplied in openEuler's own
forms (the published riscv64 container tarball, or a qcow2 with firmware) and
fetched with ``leapfrog images fetch``.  Which Python packages an openEuler
release has for riscv64 is not certain (see docs/openeuler.md), so
provisioning *asks the guest*: ``dnf list`` what is available, installs that,
and reports what is missing.  A suite whose package is missing is not failed:
its cases that need it are skipped with the reason "package not available for
this target" (the probe does that from ``LEAPFROG_MISSING_PACKAGES``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from harness.commands import Runs
from harness.config import check_package_names
from harness.errors import TargetError
from harness.model import TargetFacts

#: ``name.arch  version  repo`` rows of ``dnf list``; headers and notices are skipped.
_ROW = re.compile(r"^(?P<name>[A-Za-z0-9_.+-]+)\.(?P<arch>noarch|riscv64|x86_64|aarch64|src)\s+\S+\s+\S+")


def is_openeuler(facts: TargetFacts | None, os_release: dict[str, str] | None = None) -> bool:
    """os-release says ID="openEuler" (mixed case: compare case-insensitively)."""
    ids = []
    if facts is not None:
        ids.append(facts.os_id)
    if os_release:
        ids.append(os_release.get("ID", ""))
    return any(i.strip().strip('"').casefold() == "openeuler" for i in ids)


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def parse_dnf_list(text: str) -> set[str]:
    """Package names in ``dnf list available|installed`` output (lines may wrap)."""
    names: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _ROW.match(line)
        if m:
            names.add(m.group("name"))
            continue
        # dnf wraps a long name onto its own line, version and repo on the next.
        bare = re.fullmatch(r"([A-Za-z0-9_.+-]+)\.(noarch|riscv64|x86_64|aarch64)", line.strip())
        if bare and i + 1 < len(lines) and lines[i + 1].startswith((" ", "\t")):
            names.add(bare.group(1))
    return names


@dataclasses.dataclass
class Provisioned:
    installed: list[str]
    already: list[str]
    missing: list[str]
    log: str = ""


def provision(target: Runs, packages: list[str], *, timeout: float = 1800) -> Provisioned:
    """Install ``packages`` in a started openEuler target with dnf; report what it lacks.

    ``target`` is any started :class:`harness.targets.base.Target` (only its name and ``run()`` are used).
    """
    if not packages:
        return Provisioned([], [], [])
    # Checked when suite.toml is read, and again here: a name starting with "-" would be an option.
    check_package_names(packages, "openeuler", "packages.openeuler")
    log: list[str] = []
    have = target.run(["rpm", "-q", "--qf", "%{NAME}\\n", "--", *packages], timeout=120)
    already = sorted(set(have.stdout.split()) & set(packages))
    wanted = [p for p in packages if p not in already]
    if not wanted:
        return Provisioned([], already, [])
    listing = target.run(["dnf", "list", "--available", "--quiet", "--", *wanted], timeout=timeout)
    log.append(f"$ dnf list --available {shlex.join(wanted)}\n{listing.stdout}{listing.stderr}")
    if listing.exit_code not in (0, 1):  # 1: none of the names matched
        raise TargetError(
            f"target {target.name}: `dnf list` failed (exit {listing.exit_code}): {listing.stderr.strip()[-500:]}; "
            "check the repositories configured in the image (network, /etc/yum.repos.d)."
        )
    available = parse_dnf_list(listing.stdout)
    present = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if present:
        inst = target.run(["dnf", "install", "-y", "--setopt=install_weak_deps=False", "--", *present], timeout=timeout)
        log.append(f"$ dnf install {shlex.join(present)}\n{inst.stdout[-4000:]}{inst.stderr[-4000:]}")
        if not inst.ok:
            raise TargetError(
                f"target {target.name}: `dnf install {' '.join(present)}` failed (exit {inst.exit_code}): "
                f"{inst.stderr.strip()[-800:]}"
            )
    return Provisioned(present, already, missing, "\n".join(log))
