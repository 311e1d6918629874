"""``leapfrog repro RUN_DIR CASE``: run one case of a report again, where it ran, with its whole output.

The target is started as the run started it (its target file, the run's
suites, so the same packages, and the image recorded in results.json), the
suite and the probe are put in as the runner puts them
(:meth:`harness.cell.CellRunner.prepare`), and pytest runs only that case,
its output streamed to the terminal without a size bound.  ``--shell`` opens
an interactive shell in the target at the suite's folder instead.  The target
is always stopped, also on Ctrl-C.

A report folder is input from wherever it came from: the target, suite and
case it names must exist in the project, a case's file must lie inside its
suite folder, and the recorded image is only ever compared with the names of
cached images, never used as a path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, ImageError, TargetError
from harness.model import Run, Status

if TYPE_CHECKING:
    from harness.config import Project, SuiteConfig, TargetConfig

#: Options of the run's command line that say where the project was.
PROJECT_OPTIONS = ("--root", "--targets-dir", "--suites-dir")
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
_CONTROL = {*range(0x00, 0x20), 0x7F}


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (a terminal would obey it, a shell line would break)."""
    return any(ord(ch) in _CONTROL for ch in text)


def repro_command(
    run_dir: str | Path,
    target: str,
    suite: str,
    case: str,
    *,
    shell: bool = False,
    case_timeout: float | None = None,
    options: Sequence[str] = (),
) -> str:
    """The one shell line that reproduces ``case`` of ``suite`` on ``target`` from the report in ``run_dir``.

    Every name is quoted (``shlex.join``); a name starting with "-" comes after
    ``--``, so it is never read as an option.  ``options`` are global options
    (``--suites-dir DIR``) put before ``repro``.  "" when a name holds a
    control character: such a line could not be pasted safely.
    """
    names = [str(run_dir), target, suite, case, *options]
    if any(has_control(n) for n in names):
        return ""
    argv = [*options, "repro", "-t", target, "-s", suite]
    if shell:
        argv.append("--shell")
    if case_timeout is not None:
        argv += ["--case-timeout", f"{case_timeout:g}"]
    positional = [str(run_dir), case]
    if any(p.startswith("-") for p in positional):
        argv.append("--")
    return "leapfrog " + shlex.join([*argv, *positional])  # a line to print, not a program leapfrog runs


# ------------------------------------------------------------------ reading the report


@dataclasses.dataclass(frozen=True)
class Pick:
    """The case to reproduce, as results.json names it."""

    target: str
    suite: str
    case: str
    status: str  # in the run


def load_results(run_dir: Path) -> Run:
    """The run in ``run_dir/results.json``; a ConfigError naming the file when it is not one."""
    from harness.results import load_run

    if not run_dir.is_dir():
        raise ConfigError(
            f'"{run_dir}" is not a folder; pass the report folder of a `leapfrog run` (it holds results.json).'
        )
    return load_run(run_dir)


def pick_case(run: Run, case: str, *, target: str | None = None, suite: str | None = None, where: str = "") -> Pick:
    """The one cell of ``run`` that holds ``case`` (narrowed by ``target`` and ``suite``).

    When several hold it, the one where it did not pass on a target other
    than the baseline is taken, if that is one; else a ConfigError lists the
    ``-t``/``-s`` that choose.
    """
    where = where or "results.json"
    for what, name in (("case", case), ("target", target or ""), ("suite", suite or "")):
        if has_control(name):
            raise ConfigError(f"the {what} name {name!r} holds a control character; leapfrog repro refuses it.")
    hits: list[Pick] = []
    for cell in run.cells:
        if (target is not None and cell.target != target) or (suite is not None and cell.suite != suite):
            continue
        hits.extend(Pick(cell.target, cell.suite, c.name, c.status.value) for c in cell.cases if c.name == case)
    if not hits:
        from harness.tomlread import suggest

        scope = "".join([f' on target "{target}"' if target else "", f' in suite "{suite}"' if suite else ""])
        names = {c.name for cell in run.cells for c in cell.cases}
        raise ConfigError(
            f'{where} has no case "{case}"{scope}{suggest(case, names)}; give the case name as the report shows it '
            "(the pytest node id under the suite folder, e.g. test_x.py::test_y)."
        )
    if len(hits) > 1:
        bad = [h for h in hits if h.target != run.baseline and Status(h.status).is_bad]
        if len(bad) == 1:
            return bad[0]
        choices = ", ".join(f"-t {shlex.quote(h.target)} -s {shlex.quote(h.suite)}" for h in (bad or hits)[:10])
        raise ConfigError(f'case "{case}" is in {len(hits)} cells of {where}; choose one with {choices}.')
    return hits[0]


def recorded_options(argv: Sequence[object]) -> dict[str, str]:
    """``--root``, ``--targets-dir``, ``--suites-dir`` and ``--case-timeout`` as the run's argv gave them."""
    words = [str(a) for a in argv][:10_000]
    found: dict[str, str] = {}
    for i, word in enumerate(words):
        for flag in (*PROJECT_OPTIONS, "--case-timeout"):
            if word == flag and i + 1 < len(words):
                found.setdefault(flag, words[i + 1])
            elif word.startswith(flag + "="):
                found.setdefault(flag, word[len(flag) + 1 :])
    return found


def project_dirs(run: Run, given: dict[str, Path | None], where: str) -> dict[str, Path | None]:
    """Where to load the project from: the folders given to repro, else those the run's command line named.

    A folder from results.json is used only when it is a folder from here;
    else a ConfigError says to pass it.
    """
    recorded = recorded_options(run.argv)
    out: dict[str, Path | None] = {}
    for flag in PROJECT_OPTIONS:
        key = flag[2:].replace("-", "_")
        value = given.get(key)
        if value is None and flag in recorded:
            path = Path(recorded[flag]).expanduser()
            if has_control(recorded[flag]) or not path.is_dir():
                raise ConfigError(
                    f'{where}: the run was started with {flag} "{recorded[flag]}", which is not a folder from here; '
                    f"pass it to leapfrog before the command: leapfrog {flag} DIR repro ..."
                )
            value = Path(os.path.realpath(path))
        out[key] = value
    return out


def recorded_case_timeout(run: Run, pick: Pick | None = None) -> float | None:
    """The timeout the case ran under: its own auto timeout when the run recorded one, else
    the run's ``--case-timeout`` when that was a number of seconds (None: the suite's own)."""
    if pick is not None:
        cell = run.cell(pick.target, pick.suite)
        case = next((c for c in cell.cases if c.name == pick.case), None) if cell else None
        seconds = (case.timeout or {}).get("seconds") if case is not None else None
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 1 <= seconds <= 1e6:
            return float(seconds)
    raw = recorded_options(run.argv).get("--case-timeout")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and 1 <= value <= 1e6 else None


def runnable_node(name: str, cases: Collection[str]) -> str:
    """The pytest node that runs ``name``: itself, or for a child case (``<case>::<more>``,
    recorded by that case, as the upstream suite's tests are) the longest case it is under."""
    parts = name.split("::")
    for i in range(len(parts) - 1, 1, -1):
        prefix = "::".join(parts[:i])
        if prefix in cases:
            return prefix
    return name


def check_case_path(suite: SuiteConfig, case: str) -> None:
    """The case's file (its node id before "::") must be a file inside the suite folder."""
    file_part = case.split("::", 1)[0]
    pure = PurePosixPath(file_part)
    folder = Path(os.path.realpath(suite.path))
    path = Path(os.path.realpath(folder / file_part))
    if (
        not file_part
        or pure.is_absolute()
        or ".." in pure.parts
        or "\\" in file_part
        or not path.is_relative_to(folder)
        or not path.is_file()
    ):
        raise ConfigError(
            f'case "{case}": "{file_part}" is not a file of suite "{suite.name}" ({suite.path}); the suite changed '
            "since the run, or the report names a case of another suite."
        )


# ------------------------------------------------------------------ the image the run used


def pin_image(cfg: TargetConfig, recorded: str, *, suites: Sequence[str], say: Callable[[str], None]) -> TargetConfig:
    """``cfg`` made to start the image the run recorded (``TargetInfo.image``).

    chroot: the cached image of that name, or an ImageError saying how to
    rebuild it.  docker: that image reference.  Other kinds, and a run that
    recorded no image (results.json of an older leapfrog): ``cfg`` as it is.
    """
    if not recorded:
        if cfg.kind in ("chroot", "docker"):
            say(f"results.json records no image for {cfg.name} (an older leapfrog); using the one a run would choose")
        return cfg
    if cfg.kind == "chroot":
        if cfg.options.rootfs:
            return cfg  # the target file names its root filesystem itself
        from harness.images.cache import list_images
        from harness.paths import images_dir

        for img in list_images():
            if img.meta.name == recorded:
                say(f"image {img.meta.name} (as in the run)")
                return dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, rootfs=str(img.rootfs)))
        raise ImageError(
            f'the run used image "{recorded}" for target {cfg.name}, and it is no longer in the cache '
            f"({images_dir()}). Build it again with: leapfrog images build -t {shlex.quote(cfg.name)} -s "
            f"{shlex.quote(','.join(suites))} (the same suites give the same packages), then run leapfrog repro "
            "again; or run the suites again with `leapfrog run` and reproduce from that report."
        )
    if cfg.kind == "docker":
        say(f"image {recorded} (as in the run)")
        return dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, image_ref=recorded, image_tarball=""))
    return cfg


# ------------------------------------------------------------------ reproducing


@dataclasses.dataclass
class Outcome:
    exit: int  # 0 pass, 1 fail, 2 the case could not run
    status: str  # the case's status now, "" when none was recorded
    message: str  # one line for the user


def outcome(status: str, pytest_exit: int) -> Outcome:
    """The exit code of repro from the case's status now (from the probe) and pytest's exit status."""
    if status:
        good = Status(status).is_good
        return Outcome(EXIT_PASS if good else EXIT_FAIL, status, f"the case {status}")
    if pytest_exit in (4, 5):
        return Outcome(
            EXIT_ERROR, "", f"pytest found no such case (exit {pytest_exit}): the suite changed since the run"
        )
    if pytest_exit > 128:
        return Outcome(EXIT_FAIL, Status.CRASHED.value, f"the Python process died (signal {pytest_exit - 128})")
    if pytest_exit == 0:
        return Outcome(EXIT_PASS, "", "pytest passed (the probe recorded nothing)")
    return Outcome(EXIT_FAIL, "", f"pytest ended with exit code {pytest_exit} and the probe recorded no result")


def reproduce(
    project: Project,
    run: Run,
    pick: Pick,
    *,
    shell: bool = False,
    case_timeout: float | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> Outcome:
    """Start the target as the run did, run ``pick`` (or a shell) with the terminal attached; always stop it."""
    from harness.cell import CellRunner
    from harness.guest import lacking
    from harness.plan import PlannedCell, make_plan
    from harness.readback import cases_in
    from harness.runner import Runner, RunOptions
    from harness.terminal import attached

    info = run.target(pick.target)
    if info is None:
        raise ConfigError(f'results.json has cells of target "{pick.target}" but does not describe that target.')
    (cfg,) = project.pick_targets([pick.target])
    if cfg.kind != info.kind:
        raise ConfigError(
            f'target "{cfg.name}" is kind "{cfg.kind}" in {cfg.file}, but the run had kind "{info.kind}"; '
            "reproduce with the target file the run used."
        )
    (suite,) = project.pick_suites([pick.suite])
    check_case_path(suite, pick.case)
    # The run's suites on this target decide the packages, so the image is the same.
    names = [c.suite for c in run.cells if c.target == pick.target and c.suite in project.suites]
    suites = project.pick_suites(names or [pick.suite])
    cfg = pin_image(cfg, info.image, suites=[s.name for s in suites], say=say)
    plan = make_plan([cfg], suites)
    with tempfile.TemporaryDirectory(prefix="leapfrog-repro-") as tmp:
        options = RunOptions(out=Path(tmp) / "out", case_timeout=case_timeout, argv=[])

        def emit(kind: str, data: dict[str, Any]) -> None:
            if kind == "progress":
                say(str(data.get("message", "")))

        runner = Runner(plan, options, emit=emit)
        say(f"starting {cfg.name}")
        target, _facts = runner.start_target(cfg.name)  # started exactly as a run starts it
        try:
            planned = PlannedCell(cfg, suite)
            cells = CellRunner(target, planned, options, emit, missing=lacking(planned, runner.missing[cfg.name]))
            where = target if shell else cells.where
            if shell and cells.host_driven:  # the shell is in the target: the suite alone goes there
                cells.where = target
            base = where.make_temp_dir()
            try:
                argv, env = cells.prepare(base)
                cwd = f"{base}/suite"
                cell = run.cell(pick.target, pick.suite)
                node = runnable_node(pick.case, {c.name for c in cell.cases} if cell else set())
                if node != pick.case:
                    say(f"{pick.case} is recorded by {node}: running that")
                one = [*argv[:-1], f"{cwd}/{node}"]
                if shell:
                    say(f"shell in {cfg.name} at {cwd}; the case runs with: {shlex.join(one)}")
                    code = attached(
                        where, ["/bin/sh", *(["-i"] if sys.stdin.isatty() else [])], env=env, cwd=cwd, interactive=True
                    )
                    return Outcome(EXIT_PASS if code == 0 else EXIT_FAIL, "", f"the shell exited with status {code}")
                env["LEAPFROG_DONE"] = ""
                say(f"running {pick.case} on {cfg.name} ({suite.name}); it {pick.status} in the run")
                code = attached(where, one, env=env, cwd=cwd, interactive=False)
                cases = cases_in(where, base, "results.jsonl", Path(tmp))
                status = next((c.status.value for c in cases if c.name == pick.case), "")
                return outcome(status, code)
            finally:
                with contextlib.suppress(TargetError):
                    where.remove_tree(base)
        finally:
            runner.stop_target(cfg.name)
