"""What ``leapfrog run`` loads before its cells run: only what it uses then (a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import known_issues
from harness.model import TargetFacts

ROOT = Path(__file__).resolve().parents[2]

#: Loaded only when used: the report at the end (or in the background, harness.report_warm), packaging for a
#: known issue with a package, filelock to fetch a qemu-user.
LATER = ("harness.report", "jinja2", "pygal", "packaging", "filelock")


def test_the_run_path_does_not_import_what_only_later_steps_use() -> None:
    code = (
        "import sys\n"
        "import harness.cli.cmd_run, harness.workflow, harness.runner, harness.targets.chroot, harness.config\n"
        f"print(' '.join(m for m in {LATER!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_known_issue_with_a_package_still_checks_the_version(tmp_path: Path) -> None:
    path = tmp_path / "known-issues.toml"
    path.write_text('[[issue]]\ncase = "*"\nreason = "old numpy"\npackage = "numpy<2"\n')
    (issue,) = known_issues.load(path)
    facts = TargetFacts(packages={"numpy": "1.26.4"})
    assert issue.matches("t", "s", "c", facts)
    assert not issue.matches("t", "s", "c", TargetFacts(packages={"numpy": "2.2.0"}))
