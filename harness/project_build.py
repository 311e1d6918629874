"""``--build-in-target``: build a ``--project``'s wheels inside the target, before the run's cells.

Each target with builds pending (:class:`harness.project.Pending`) is started
once, as the run starts it (same package set, so the same cached image: its
toolchain came in through the suite's packages), and for every
:class:`~harness.project_sdist.BuildItem`:

1. the sdist (or the project's folder) is put into a fresh folder of the target;
2. ``python3 -m pip wheel --no-deps --no-build-isolation --no-index`` builds it
   there, under emulation, within :data:`BUILD_TIMEOUT` seconds (nothing is
   fetched: the build requirements are the image's packages);
3. the one wheel made is copied back to the host (at most :data:`WHEEL_LIMIT`
   bytes) and unpacked into the suite's site like a downloaded wheel.

What each build took, made or said goes into the project's dependency table
(``builds`` of the target's column) and the build's log beside the suite.  A
build that fails, times out, or a target that cannot start makes that cell
``not-run`` with the reason (for a compiler error, its first error line):
never a crash.  On ``native`` the same steps run on the host with its compiler.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from packaging.utils import canonicalize_name

from harness import guest
from harness.errors import LeapfrogError
from harness.plan import Plan
from harness.project import SITE, Pending, write_deps_file
from harness.project_sdist import BuildItem
from harness.project_wheel import ProjectError, requires_dist, unpack_wheel, wheel_metadata
from harness.targets import Target, make_target

#: Seconds one build may take in the target (compiling under emulation is slow).
BUILD_TIMEOUT = 1800.0
#: Bytes of a built wheel copied back; of a build's log kept beside the suite.
WHEEL_LIMIT = 512 << 20
LOG_LIMIT = 256 << 10
#: Characters of the error line a not-run cell gives.
ERROR_LINE = 300
PIP_ENV = {
    "PIP_NO_CACHE_DIR": "1",
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_ROOT_USER_ACTION": "ignore",
}
_COMPILER = re.compile(
    r"^\s*(\S+?:\d+(?::\d+)?: (?:fatal )?error: .+|\S*(?:gcc|g\+\+|cc|c\+\+|clang)\S*: (?:fatal )?error: .+)$"
)
_EXCEPTION = re.compile(r"^\s*([A-Za-z_.]*(?:Error|Exception): .+)$")
_ERROR = re.compile(r"^\s*((?:error|ERROR): .+)$")
#: pip's own summary lines: they say a build failed, not why.
_GENERIC = re.compile(
    r"subprocess-exited-with-error|metadata-generation-failed|Failed (?:to )?build|failed-wheel-build"
)


def first_error(output: str) -> str:
    """The line that says why a build failed: the compiler's first error, else the first exception, else
    the first ``error:`` line that is not pip's summary, else the last line."""
    lines = output.splitlines()
    for pattern in (_COMPILER, _EXCEPTION, _ERROR):
        for line in lines:
            m = pattern.match(line)
            if m and not _GENERIC.search(line):
                return m.group(1).strip()[:ERROR_LINE]
    rest = [line.strip() for line in lines if line.strip()]
    return rest[-1][:ERROR_LINE] if rest else ""


def _wheel_name(listing: str, item: BuildItem) -> str:
    names = [n for n in listing.split("\n") if n]
    wheels = [n for n in names if re.fullmatch(r"[A-Za-z0-9_.+-]+\.whl", n)]
    if len(wheels) != 1:
        raise ProjectError(f"pip made {len(wheels)} wheel(s) for {item.source.name}, not one: {names[:5]}")
    return wheels[0]


def build_one(target: Target, item: BuildItem, base: str, host_dir: Path, logs: Path) -> None:
    """Build ``item`` in the started ``target`` (under ``base``); fill in its seconds, wheel or error."""
    python = target.config.python
    src = f"{base}/src/{item.source.name}"
    out = f"{base}/out/{item.name}"
    target.put(item.source, src)
    argv = [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src]
    done = target.run(argv, timeout=BUILD_TIMEOUT, env=PIP_ENV, cwd=base)
    item.seconds = done.wall
    text = done.stdout + done.stderr
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{item.name}.log"
    log.write_text(f"$ {' '.join(argv)}\n{text[-LOG_LIMIT:]}", encoding="utf-8", errors="replace")
    what = f"building {item.requirement} ({item.source.name}) in the target"
    if done.timed_out:
        item.error = f"{what} did not finish in {BUILD_TIMEOUT:.0f} s and was stopped (log: {log})"
        return
    if done.exit_code != 0:
        ended = f"signal {done.signal}" if done.exit_code is None else f"exit {done.exit_code}"
        line = first_error(text) or f"pip ended with {ended}"
        item.error = f"{what} failed after {item.seconds:.0f} s: {line} (log: {log})"
        return
    listing = target.run([python, "-c", "import os, sys; print('\\n'.join(os.listdir(sys.argv[1])))", out], timeout=120)
    try:
        if not listing.ok:
            raise ProjectError(f"listing {out} failed (exit {listing.exit_code}): {listing.stderr.strip()[-300:]}")
        name = _wheel_name(listing.stdout, item)
        wheel = host_dir / name
        target.get(f"{out}/{name}", wheel, limit=WHEEL_LIMIT)
        meta = wheel_metadata(wheel)
    except (LeapfrogError, OSError) as e:
        item.error = f"{what} made no wheel leapfrog could read back: {e}"
        return
    if canonicalize_name(meta.get("Name", "")) != item.name:
        item.error = f"{what} made {name}, which is not {item.name}"
        return
    item.wheel = wheel


def _check_requirements(p: Pending, known: set[str]) -> None:
    """A built wheel asking for a distribution the plan did not resolve (dynamic metadata): say so."""
    for item in p.items:
        if item.wheel is None or item.error:
            continue
        extra = [r for r in requires_dist(wheel_metadata(item.wheel), (), item.wheel.name) if r.marker is None]
        unknown = [str(r) for r in extra if canonicalize_name(r.name) not in known]
        if unknown:
            item.error = (
                f"{item.wheel.name}, built in the target, requires {', '.join(unknown)}, which its sdist did not "
                "declare, so leapfrog did not resolve it; pin it in the project's dependencies"
            )


def _finish(p: Pending, plan: Plan) -> None:
    """Unpack what was built, record every build in the table, and make the cell not-run if one failed."""
    failed = [i.error for i in p.items if i.error or i.wheel is None]
    p.column["builds"] = [i.to_dict() for i in p.items]
    if failed:
        reason = "a dependency could not be built on this target: " + "; ".join(e or "not built" for e in failed) + "."
        p.column["not_run"] = reason
        for n, cell in enumerate(plan.cells):
            if cell.key == (p.target.name, p.suite):
                plan.cells[n] = dataclasses.replace(cell, suite=dataclasses.replace(cell.suite, not_run=reason))
    else:
        for item in p.items:
            assert item.wheel is not None
            unpack_wheel(item.wheel, p.folder / SITE)
    write_deps_file(p.deps_file, p.column)


def _build_all(target: Target, group: list[Pending], say: Callable[[str], None]) -> None:
    """Build every item of ``group`` in the started ``target``; an sdist two projects need is built once."""
    base = target.make_temp_dir()
    made: dict[Path, BuildItem] = {}
    try:
        for p in group:
            builds = p.folder.parent.parent / "builds" / p.folder.name  # wheels and logs, beside the suites
            builds.mkdir(parents=True, exist_ok=True)
            for item in p.items:
                first = made.get(item.source)
                if first is not None:
                    item.seconds, item.wheel, item.error = first.seconds, first.wheel, first.error
                    continue
                say(f"building {item.source.name} in the target")
                build_one(target, item, base, builds, builds)
                made[item.source] = item
                say(f"{item.source.name}: {'built' if item.wheel else 'not built'} in {item.seconds or 0:.1f} s")
    finally:
        target.remove_tree(base)


def run_builds(plan: Plan, pending: list[Pending], out: Path, *, progress: Callable[[str], None]) -> None:
    """Start each target with builds pending once, build them, and finish every pending cell (see the module)."""
    targets: dict[str, list[Pending]] = {}
    for p in pending:
        targets.setdefault(p.target.name, []).append(p)
    for name, group in targets.items():
        cfg = group[0].target

        def say(message: str, name: str = name) -> None:
            progress(f"{name}: {message}")

        try:
            target = make_target(cfg, packages=plan.packages_for(cfg), progress=say)
            try:
                guest.ready(target, cfg, plan, out=out, say=say)
                _build_all(target, group, say)
            finally:
                target.stop()
        except LeapfrogError as e:
            for item in (i for p in group for i in p.items):
                if item.wheel is None and not item.error:
                    item.error = f"target {name} could not be started to build {item.source.name} in: {e}"
        for p in group:
            known = {str(r.get("name", "")) for r in p.column.get("requirements", [])} | {i.name for i in p.items}
            _check_requirements(p, known)
            _finish(p, plan)
