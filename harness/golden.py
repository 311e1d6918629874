"""Regenerate a suite's golden outputs by running its ``make_golden.py`` in a target.

The default target is ``debian-trixie-amd64``: the same Debian package versions
as the riscv64 images, without emulation, so goldens differ from riscv64 only by
architecture.  The script imports the suites' helpers (``leapfrog_checks``
with the golden writer, ``leapfrog_suite``), put next to it in the target as
for a suite run.  Files the script creates or changes in the suite copy are
copied back into the suite folder; nothing else is touched.
"""

from __future__ import annotations

import filecmp
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.config import SuiteConfig, TargetConfig
from harness.errors import ConfigError, LeapfrogError, TargetError
from harness.plan import make_plan
from harness.probe import SUITE_HELPERS
from harness.targets import make_target
from harness.targets._common import GET_LIMIT

SCRIPT = "make_golden.py"
SKIP_DIRS = {"__pycache__", ".pytest_cache"}


def changed_files(before: Path, after: Path) -> list[Path]:
    """Relative paths of regular files in ``after`` that are new or differ from ``before``."""
    out = []
    for path in sorted(after.rglob("*")):
        rel = path.relative_to(after)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file() or path.is_symlink():
            continue
        old = before / rel
        if not old.exists() or not filecmp.cmp(old, path, shallow=False):
            out.append(rel)
    return out


def regenerate(
    suite: SuiteConfig,
    target_cfg: TargetConfig,
    *,
    timeout: float = 3600,
    progress: Callable[[str], None] | None = None,
    limit: int = GET_LIMIT,
) -> list[Path]:
    """Run make_golden.py in the target; copy back what it wrote.  Returns the changed paths.

    The suite folder comes back through ``get()`` by its one rule: links and
    special files the script made are skipped, and a folder of more than
    ``limit`` bytes is an error that changes nothing in the suite.
    """
    if not (suite.path / SCRIPT).exists():
        raise ConfigError(f"{suite.path / SCRIPT}: suite {suite.name!r} has no golden script.")
    plan = make_plan([target_cfg], [suite])
    target = make_target(target_cfg, packages=plan.packages_for(target_cfg), progress=progress)
    target.start()
    try:
        base = target.run(["mktemp", "-d"], timeout=60).stdout.strip()
        target.put(suite.path, f"{base}/suite")
        for helper in SUITE_HELPERS:
            target.put(helper, f"{base}/probe/{helper.name}")
        env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{base}/probe"}
        done = target.run([target_cfg.python, SCRIPT], timeout=timeout, cwd=f"{base}/suite", env=env)
        if not done.ok:
            raise LeapfrogError(
                f"{suite.path / SCRIPT} failed on {target_cfg.name} (exit {done.exit_code}):\n{done.stderr[-4000:]}"
            )
        with tempfile.TemporaryDirectory(prefix="leapfrog-golden-") as tmp:
            back = Path(tmp) / "suite"
            try:
                target.get(f"{base}/suite", back, limit=limit)
            except TargetError as e:
                raise TargetError(
                    f"{suite.path / SCRIPT} ran on {target_cfg.name}, but its suite folder could not be copied "
                    f"back, so no golden file was changed: {e}"
                ) from e
            changed = changed_files(suite.path, back)
            for rel in changed:
                dest = suite.path / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(back / rel, dest)
        return changed
    finally:
        target.stop()
