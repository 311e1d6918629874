"""Helpers shared by backends: facts through the probe, safe archive extraction."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import TargetError
from harness.model import TargetFacts
from harness.probe import FACTS_FILE

if TYPE_CHECKING:
    from harness.targets.base import Target


def probe_facts(target: Target, packages: list[str] | None = None, *, timeout: float = 120) -> TargetFacts:
    """Run ``facts.py`` with the target's Python and parse its JSON."""
    tmp = target.run(["mktemp", "-d"], timeout=60)
    if not tmp.ok:
        raise TargetError(f"target {target.name}: mktemp failed: {tmp.stderr.strip()[:500]}")
    remote = tmp.stdout.strip() + "/facts.py"
    target.put(FACTS_FILE, remote)
    names = target.key_packages if packages is None else packages
    done = target.run([target.config.python, remote, *names], timeout=timeout)
    target.run(["rm", "-rf", tmp.stdout.strip()], timeout=60)
    if not done.ok:
        raise TargetError(
            f'target {target.name}: could not run "{target.config.python}" to read its facts '
            f"(exit {done.exit_code}, signal {done.signal}): {done.stderr.strip()[-1000:]}"
        )
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError) as e:  # RecursionError: "[[[[..." deeper than the parser goes
        raise TargetError(f"target {target.name}: facts script printed no JSON: {done.stdout[:500]!r}") from e
    facts = TargetFacts.from_dict(data)
    facts.emulation = target.emulation
    return facts


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files and folders only, never outside ``dest``.

    Links, devices, absolute names and ``..`` are refused with a TargetError:
    what comes back from a target is untrusted.
    """
    dest = dest.resolve()
    for member in tar.getmembers():
        name = member.name
        target_path = (dest / name).resolve()
        if os.path.isabs(name) or ".." in Path(name).parts or not (target_path == dest or dest in target_path.parents):
            raise TargetError(f'refused to copy "{name}" from the target: it points outside {dest}.')
        if not (member.isfile() or member.isdir()):
            raise TargetError(f'refused to copy "{name}" from the target: links and devices are not copied.')
    tar.extractall(dest, filter="data")
