"""Known issues: failures expected on a target, with a reason and a link.

A TOML file (default ``known-issues.toml`` at the project root) lists them::

    [[issue]]
    case = "test_float_to_int.py::*"      # fnmatch pattern on the case name (required)
    suite = "platform"                    # fnmatch on the suite name (default "*")
    target = "debian-trixie-riscv64*"     # fnmatch on the target name (default "*")
    package = "numpy<2.3"                 # optional: only while the target's version matches
    reason = "fcvt saturates on RISC-V"   # required
    link = "https://example.org/bug/1"    # optional

A failed, errored, crashed or timed-out case that matches keeps its status,
and gets ``known_issue`` set: the report shows it apart from new failures and
the exit code does not count it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

from harness.errors import ConfigError
from harness.model import CellResult, TargetFacts
from harness.tomlread import build_dataclass, read_toml


@dataclasses.dataclass(frozen=True)
class KnownIssue:
    case: str
    reason: str
    suite: str = "*"
    target: str = "*"
    package: str = ""
    link: str = ""

    def label(self) -> str:
        return f"{self.reason} <{self.link}>" if self.link else self.reason

    def matches(self, target: str, suite: str, case: str, facts: TargetFacts | None) -> bool:
        if not (
            fnmatch.fnmatchcase(target, self.target)
            and fnmatch.fnmatchcase(suite, self.suite)
            and fnmatch.fnmatchcase(case, self.case)
        ):
            return False
        if not self.package:
            return True
        from packaging.requirements import Requirement  # only for an issue with a package: 10 ms at import
        from packaging.version import InvalidVersion, Version

        req = Requirement(self.package)
        have = (facts.packages if facts else {}).get(req.name, "")
        try:
            return bool(have) and req.specifier.contains(Version(have), prereleases=True)
        except InvalidVersion:
            return False


@dataclasses.dataclass(frozen=True)
class _File:
    issue: list[dict[str, str]] = dataclasses.field(default_factory=list)


def load(path: Path) -> list[KnownIssue]:
    data: _File = build_dataclass(_File, read_toml(path), file=path)
    out = []
    for i, table in enumerate(data.issue):
        if not isinstance(table, dict):
            raise ConfigError(f'{path}: "issue[{i}]" must be a table ([[issue]]).')
        issue: KnownIssue = build_dataclass(KnownIssue, table, file=path, where=f"issue[{i}].")
        if issue.package:
            from packaging.requirements import InvalidRequirement, Requirement

            try:
                Requirement(issue.package)
            except InvalidRequirement as e:
                raise ConfigError(
                    f'{path}: key "issue[{i}].package" is not a requirement like "numpy<2.3": {e}.'
                ) from e
        out.append(issue)
    return out


def apply(issues: list[KnownIssue], cell: CellResult, facts: TargetFacts | None) -> int:
    """Mark the bad cases of ``cell`` that a known issue covers; returns how many."""
    marked = 0
    for case in cell.cases:
        if not case.status.is_bad:
            continue
        for issue in issues:
            if issue.matches(cell.target, cell.suite, case.name, facts):
                case.known_issue = issue.label()
                marked += 1
                break
    return marked
