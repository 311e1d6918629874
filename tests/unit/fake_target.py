"""A scripted fake target: the runner's retries, restarts and timeouts, tested without a container or VM.

A :class:`Script` says what each start of a target does (start, or raise) and
what each pytest run in it does (:class:`Step`: pass, fail, crash, a case
timeout, the cell's timeout, the target lost mid-run, Ctrl-C).  The runner
makes a new :class:`FakeTarget` at every (re)start, as it makes a new
container or VM; all of them play the one script of their target's name and
count into it, so a test asserts how often the target was started, stopped and
run.  Plug it in where the runner makes targets::

    fleet = Fleet({"rv": Script([lost("container removed"), passes("t.py::a")])})
    monkeypatch.setattr(harness.runner, "make_target", fleet.make)

The fake writes the probe's JSON lines into the file the runner names in
``LEAPFROG_RESULTS`` (a host folder: ``local_path`` is the identity), so the
runner reads them back through its real, untrusting code.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from harness.config import ImageSpec, TargetConfig
from harness.errors import TargetError
from harness.model import TargetFacts
from harness.probe_lines import TIMEOUT_MARK
from harness.targets._common import GET_LIMIT
from harness.targets.base import Completed, Target
from harness.targets.native import NativeTarget

#: What one pytest run does: writes result lines (the fake target, argv, env, timeout), returns how pytest ended.
Play = Callable[["FakeTarget", list[str], dict[str, str], float], Completed]


@dataclasses.dataclass(frozen=True)
class Step:
    """One scripted pytest run; ``name`` shows in failures."""

    name: str
    play: Play


def _write(env: dict[str, str], *records: dict[str, object]) -> None:
    with open(env["LEAPFROG_RESULTS"], "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


def _case(name: str, status: str, message: str = "") -> list[dict[str, object]]:
    return [
        {"event": "start", "name": name},
        {"event": "case", "name": name, "status": status, "duration": 0.01, "message": message},
    ]


def _ended(argv: list[str], env: dict[str, str], cases: list[tuple[str, str]], exit_code: int) -> Completed:
    _write(env, {"event": "collected", "names": [n for n, _s in cases]})
    for name, status in cases:
        _write(env, *_case(name, status, "assert 1 == 2" if status == "failed" else ""))
    _write(env, {"event": "end"})
    return Completed(argv, exit_code, None, f"{len(cases)} ran\n", "", 0.1)


def passes(*cases: str) -> Step:
    """pytest runs ``cases``, all pass, exit 0."""
    return Step(f"passes {cases}", lambda _t, argv, env, _to: _ended(argv, env, [(c, "passed") for c in cases], 0))


def fails(failing: str, *passing: str) -> Step:
    """``passing`` pass, ``failing`` fails, exit 1: a test failure, never retried."""
    cases = [(c, "passed") for c in passing] + [(failing, "failed")]
    return Step(f"fails {failing}", lambda _t, argv, env, _to: _ended(argv, env, cases, 1))


def _dies(argv: list[str], env: dict[str, str], before: tuple[str, ...], victim: str) -> None:
    _write(env, {"event": "collected", "names": [*before, victim]})
    for name in before:
        _write(env, *_case(name, "passed"))
    _write(env, {"event": "start", "name": victim})


def crashes(victim: str, *before: str) -> Step:
    """``before`` pass, then the interpreter dies of SIGSEGV in ``victim``."""

    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], _timeout: float) -> Completed:
        _dies(argv, env, before, victim)
        return Completed(argv, None, signal.SIGSEGV, "", "Fatal Python error: Segmentation fault", 0.1)

    return Step(f"crashes in {victim}", play)


def case_timeout(victim: str, *before: str) -> Step:
    """``before`` pass, then the probe's watchdog ends the process stuck in ``victim`` (exit 70)."""

    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], _timeout: float) -> Completed:
        _dies(argv, env, before, victim)
        return Completed(argv, 70, None, "", f"\n{TIMEOUT_MARK}: hard timeout, ending the process\n", 0.1)

    return Step(f"case timeout in {victim}", play)


def cell_timeout(victim: str, *before: str) -> Step:
    """``before`` pass, then the host kills pytest stuck in ``victim``: the cell's budget is spent."""

    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], timeout: float) -> Completed:
        _dies(argv, env, before, victim)
        return Completed(argv, None, signal.SIGKILL, "", "", timeout, timed_out=True)

    return Step(f"cell timeout in {victim}", play)


def lost(why: str = "the container was removed") -> Step:
    """The target breaks under pytest: ``run()`` raises TargetError (a container removed, a VM killed)."""

    def play(t: FakeTarget, _argv: list[str], _env: dict[str, str], _timeout: float) -> Completed:
        raise TargetError(f"target {t.name}: {why}.")

    return Step(f"lost: {why}", play)


def interrupted() -> Step:
    """Ctrl-C while pytest runs."""

    def play(_t: FakeTarget, _argv: list[str], _env: dict[str, str], _timeout: float) -> Completed:
        raise KeyboardInterrupt

    return Step("Ctrl-C", play)


@dataclasses.dataclass
class Script:
    """What one target does, start after start and pytest run after pytest run, and what happened."""

    #: One step per pytest run, in order; a run past the end fails the test.
    runs: list[Step] = dataclasses.field(default_factory=list)
    #: One entry per start: None starts, an exception is raised by ``start()``; past the end, starts.
    starts: list[BaseException | None] = dataclasses.field(default_factory=list)
    #: Raised by every ``stop()`` (after it counted), e.g. a dead target that does not stop cleanly.
    stop_error: BaseException | None = None
    started: int = 0
    stopped: int = 0
    #: (argv, env, timeout) of every pytest run, in order.
    pytest_runs: list[tuple[list[str], dict[str, str], float]] = dataclasses.field(default_factory=list)
    #: argv of every other command run.
    commands: list[list[str]] = dataclasses.field(default_factory=list)
    #: (host file, remote) of every file put in (folders are only recorded).
    puts: list[tuple[Path, str]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self._runs = deque(self.runs)
        self._starts = deque(self.starts)


class FakeTarget(Target):
    """A target that plays its :class:`Script`; its folders are host folders under one private root."""

    kind = "fake"

    def __init__(self, config: TargetConfig, script: Script, **kw: object) -> None:
        super().__init__(config)
        self.script = script
        self.root: Path | None = None

    def start(self) -> None:
        self.script.started += 1
        outcome = self.script._starts.popleft() if self.script._starts else None
        if outcome is not None:
            raise outcome
        self.root = Path(tempfile.mkdtemp(prefix="leapfrog-fake-"))
        self.image_id = f"fake-image-{self.name}"

    def stop(self) -> None:
        self.script.stopped += 1
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self.script.stop_error is not None:
            raise self.script.stop_error

    def run(
        self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> Completed:
        if self.root is None:
            raise TargetError(f"target {self.name}: not started.")
        if "pytest" not in argv:
            self.script.commands.append(argv)
            return Completed(argv, 0, None, "", "", 0.0)
        self.script.pytest_runs.append((argv, dict(env or {}), timeout))
        if not self.script._runs:
            raise AssertionError(f"target {self.name}: pytest ran more often than the script says")
        return self.script._runs.popleft().play(self, argv, dict(env or {}), timeout)

    def make_temp_dir(self) -> str:
        assert self.root is not None, "make_temp_dir before start"
        return tempfile.mkdtemp(dir=self.root)

    def remove_tree(self, path: str) -> None:
        if self.root is not None and Path(path).resolve().is_relative_to(self.root):
            shutil.rmtree(path, ignore_errors=True)

    def local_path(self, remote: str) -> Path | None:
        return Path(remote)

    def put(self, local: Path, remote: str) -> None:
        self.script.puts.append((Path(local), remote))
        if Path(local).is_file():
            Path(remote).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        shutil.copyfile(remote, local)

    def forward(self, port: int) -> tuple[str, int]:
        raise TargetError(f"target {self.name}: the fake target forwards no port.")

    def facts(self) -> TargetFacts:
        return TargetFacts(arch="riscv64", os_id="fake", emulation="fake")


@dataclasses.dataclass
class Fleet:
    """The scripts of every fake target, by target name; ``make`` stands in for ``harness.targets.make_target``."""

    scripts: dict[str, Script]
    made: int = 0

    def make(self, config: TargetConfig, **_kw: object) -> Target:
        self.made += 1
        return FakeTarget(config, self.scripts[config.name])


def fake_config(name: str = "rv", *, distro: str | None = None) -> TargetConfig:
    """A target file for a fake target; ``distro`` gives it an image of that distribution."""
    return TargetConfig(
        name=name,
        kind="fake",
        file=Path(f"<fake {name}>"),
        description="a scripted fake target",
        arch="riscv64",
        python="python3",
        env={},
        # openEuler images are supplied (a container): leapfrog's own dnf builds need a profile and a repository.
        image=ImageSpec(distro=distro, source="docker" if distro == "openeuler" else "build") if distro else None,
        options=NativeTarget.Options(),
    )
