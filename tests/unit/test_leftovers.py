"""What a command leaves running ends with the target, and nothing else does (harness/targets/leftovers.py).

native runs on the host; ssh runs through the loopback SSH server of
test_contract.py (WholeSsh), which executes each command on this host, so the processes
a command leaves are visible here in /proc either way.  Every process a test
starts itself is killed in its teardown.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.config import TargetConfig
from harness.targets import leftovers
from harness.targets.base import Target
from harness.targets.native import NativeTarget
from harness.targets.ssh import SshTarget
from harness.targets.ssh_command import kill_command, tag_of
from tests.unit.test_contract import WholeSsh, _ssh

#: Starts ``sleep 300`` in a new session (as a daemon would) that writes its PID to $1 and outlives the command.
SETSID = 'setsid sh -c \'echo $$ > "$0"; exec sleep 300\' "$1" </dev/null >/dev/null 2>&1 &'
#: The same without leaving the process group (plain ``&``).
BACKGROUND = 'sh -c \'echo $$ > "$0"; exec sleep 300\' "$1" </dev/null >/dev/null 2>&1 &'
#: Forks twice: the sleep's parent is gone before the command ends.
DOUBLE_FORK = '( setsid sh -c \'echo $$ > "$0"; exec sleep 300\' "$1" </dev/null >/dev/null 2>&1 & ) ; true'


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _read_pid(path: Path) -> int:
    deadline = time.monotonic() + 10
    while True:
        text = path.read_text().strip() if path.exists() else ""
        if text.isdigit() and Path(f"/proc/{text}/cmdline").read_bytes().startswith(b"sleep\x00300\x00"):
            return int(text)
        assert time.monotonic() < deadline, f"the background sleep never wrote its PID to {path}"
        time.sleep(0.02)


class Pids:
    """The background sleeps a test starts (through a target or by itself); all killed at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pids: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def leave(self, target: Target, script: str = SETSID, *, timeout: float = 30) -> int:
        """Run ``script`` through ``target``; return the PID of the sleep it leaves running."""
        pidfile = self.tmp / f"pid{len(self.pids)}"
        wait = 'while [ ! -s "$1" ]; do sleep 0.01; done'  # until it has left the group: native kills the group
        done = target.run(["sh", "-c", f"{script}\n{wait}", "sh", str(pidfile)], timeout=timeout)
        assert done.ok, done
        pid = _read_pid(pidfile)
        self.pids.append(pid)
        return pid

    def unrelated(self, env: dict[str, str] | None = None) -> int:
        """A ``sleep 300`` this test starts itself, with ``env`` added to its environment."""
        proc = subprocess.Popen(["sleep", "300"], env={**os.environ, **(env or {})})
        self.procs.append(proc)
        self.pids.append(proc.pid)
        return proc.pid

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for pid in self.pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def pids(tmp_path: Path) -> Iterator[Pids]:
    p = Pids(tmp_path)
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def server() -> Iterator[WholeSsh]:
    s = WholeSsh()
    yield s
    s.close()


@pytest.fixture
def ssh_config(server: WholeSsh, tmp_path: Path) -> TargetConfig:
    return _ssh(server, tmp_path).config


@pytest.fixture(params=["native", "ssh"])
def make(request: pytest.FixtureRequest, native_config: TargetConfig) -> Iterator[Callable[[], Target]]:
    """Makes started targets of one kind; stops them all at the end."""
    made: list[Target] = []
    cfg = native_config if request.param == "native" else request.getfixturevalue("ssh_config")

    def new() -> Target:
        t: Target = NativeTarget(cfg) if request.param == "native" else SshTarget(cfg)
        t.start()
        made.append(t)
        return t

    yield new
    for t in made:
        t.stop()


# --------------------------------------------------------------------------- stop()


@pytest.mark.parametrize("script", [SETSID, DOUBLE_FORK], ids=["setsid", "double-fork"])
def test_stop_kills_what_a_command_left_running_and_spares_an_unrelated_process(
    make: Callable[[], Target], pids: Pids, script: str
) -> None:
    target = make()
    left = pids.leave(target, script)
    unrelated = pids.unrelated()
    assert _alive(left)  # the command has ended; its child has not
    target.stop()
    assert _gone(left), "stop() left the command's background process running"
    assert _alive(unrelated), "stop() killed a process the target did not start"
    target.stop()  # twice is quiet


def test_an_ssh_stop_kills_a_plain_background_child(ssh_config: TargetConfig, pids: Pids) -> None:
    """sshd leaves a command's process group alone when the command ends (native kills it there already)."""
    target = SshTarget(ssh_config)
    target.start()
    try:
        left = pids.leave(target, BACKGROUND)
        unrelated = pids.unrelated()
    finally:
        target.stop()
    assert _gone(left)
    assert _alive(unrelated)


def test_stop_spares_the_processes_of_another_target(make: Callable[[], Target], pids: Pids) -> None:
    one, other = make(), make()
    mine, theirs = pids.leave(one), pids.leave(other)
    one.stop()
    assert _gone(mine)
    assert _alive(theirs)
    other.stop()
    assert _gone(theirs)


def test_a_views_stop_spares_the_owner_and_the_owners_stop_ends_what_the_view_left(
    make: Callable[[], Target], pids: Pids
) -> None:
    """A host-driven test's server, started through the view, ends with the owner's stop, not the view's."""
    owner = make()
    owners = pids.leave(owner)
    view = type(owner).attach(owner.config, owner.handle())
    views = pids.leave(view)
    view.stop()
    view.stop()
    assert _alive(owners)
    assert _alive(views)
    assert owner.run(["echo", "owner"], timeout=30).stdout == "owner\n"
    owner.stop()
    assert _gone(owners)
    assert _gone(views)


def test_a_view_without_the_owners_family_ends_only_its_own(make: Callable[[], Target], pids: Pids) -> None:
    owner = make()
    owners = pids.leave(owner)
    view = type(owner).attach(owner.config, {})  # a handle from a leapfrog that did not pass the family
    views = pids.leave(view)
    view.stop()
    assert _gone(views)
    assert _alive(owners)


# --------------------------------------------------------------------------- a timeout


def test_a_timeout_kills_what_the_command_left_and_not_what_another_command_left(
    make: Callable[[], Target], pids: Pids, tmp_path: Path
) -> None:
    target = make()
    earlier = pids.leave(target)  # another command's, still running: a worker's, say
    pidfile = tmp_path / "slow"
    done = target.run(["sh", "-c", f"{SETSID} sleep 60", "sh", str(pidfile)], timeout=2)
    assert done.timed_out
    escaped = int(pidfile.read_text())  # written within the 2 s, before the timeout: it was running then
    pids.pids.append(escaped)
    assert _gone(escaped), "the timeout left the command's setsid child running"
    assert _alive(earlier), "the timeout killed what another command of the target left"


def test_an_ssh_timeout_scans_with_the_targets_python(ssh_config: TargetConfig) -> None:
    target = SshTarget(dataclasses.replace(ssh_config, python="/opt/py/bin/python3"))
    assert target.session.python == "/opt/py/bin/python3"


# --------------------------------------------------------------------------- ssh: the scan may fail


def test_an_ssh_stop_whose_scan_fails_warns_and_still_closes(
    ssh_config: TargetConfig, caplog: pytest.LogCaptureFixture
) -> None:
    target = SshTarget(dataclasses.replace(ssh_config, python="no-such-python3"))
    target.start()
    with caplog.at_level(logging.WARNING, logger="harness.targets.ssh"):
        target.stop()
    assert "could not kill what the commands left running" in caplog.text
    assert "no-such-python3" in caplog.text
    assert "def kill(" not in caplog.text  # the script itself is not repeated
    assert not target.session.connected


def test_what_a_failed_scan_prints_reaches_the_log_escaped(
    ssh_config: TargetConfig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # The machine's stderr is untrusted: an escape sequence in it is shown, not obeyed, in the terminal.
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\nprintf '\\033[2Jforged\\n' >&2\nexit 3\n")
    python.chmod(0o755)
    target = SshTarget(dataclasses.replace(ssh_config, python=str(python)))
    target.start()
    with caplog.at_level(logging.WARNING, logger="harness.targets.ssh"):
        target.stop()
    assert "exited with 3" in caplog.text
    assert "\\x1b[2Jforged" in caplog.text
    assert "\x1b" not in caplog.text


def test_an_ssh_stop_before_start_connects_to_nothing(ssh_config: TargetConfig) -> None:
    target = SshTarget(ssh_config)
    target.stop()
    assert not target.session.connected


# --------------------------------------------------------------------------- matching is exact


def test_only_a_whole_entry_of_the_family_matches(pids: Pids) -> None:
    """The tag as part of another variable, with more after it, or with a family alone is not ours."""
    family = leftovers.new_family()
    tag = leftovers.command_tag(family)
    ours = pids.unrelated({leftovers.NAME: tag})
    hostile = [
        pids.unrelated({"X": f"{leftovers.NAME}={tag}"}),
        pids.unrelated({leftovers.NAME: tag + "0"}),
        pids.unrelated({leftovers.NAME: tag + ".1"}),
        pids.unrelated({leftovers.NAME: family}),
        pids.unrelated({leftovers.NAME: family + "."}),
        pids.unrelated({leftovers.NAME: family.upper() + tag[16:]}),
        pids.unrelated({"X" + leftovers.NAME: tag}),
        pids.unrelated({leftovers.NAME: leftovers.command_tag(leftovers.new_family())}),
    ]
    time.sleep(0.2)  # each has exec'd sleep: its environ is the one given
    assert leftovers.kill("family", family) == 1
    assert _gone(ours)
    assert all(_alive(p) for p in hostile)


def test_a_tag_matches_only_its_own_command(pids: Pids) -> None:
    family = leftovers.new_family()
    tag, sibling = leftovers.command_tag(family), leftovers.command_tag(family)
    ours, theirs = pids.unrelated({leftovers.NAME: tag}), pids.unrelated({leftovers.NAME: sibling})
    time.sleep(0.2)
    assert leftovers.kill("tag", tag) == 1
    assert _gone(ours)
    assert _alive(theirs)


def test_carries_reads_nul_separated_entries() -> None:
    family = "0123456789abcdef"
    tag = family + ".fedcba9876543210"
    env = b"A=1\0LEAPFROG_RUN=" + tag.encode() + b"\0B=2\0"
    assert leftovers.carries(env, "family", family)
    assert leftovers.carries(env, "tag", tag)
    assert not leftovers.carries(env, "tag", family + ".fedcba987654321")
    assert not leftovers.carries(b"X=LEAPFROG_RUN=" + tag.encode(), "family", family)
    assert not leftovers.carries(b"", "family", family)


@pytest.mark.parametrize(
    ("mode", "value"),
    [("family", ""), ("family", "0123"), ("tag", "0123456789abcdef"), ("family", "*"), ("pgid", "0123456789abcdef")],
)
def test_kill_refuses_what_is_not_a_family_or_tag(mode: str, value: str) -> None:
    with pytest.raises(ValueError, match="is not a LEAPFROG_RUN family or tag"):
        leftovers.kill(mode, value)


def test_the_remote_scan_is_this_file_run_by_python(pids: Pids) -> None:
    family = leftovers.new_family()
    ours = pids.unrelated({leftovers.NAME: leftovers.command_tag(family)})
    time.sleep(0.2)
    argv = leftovers.scan_argv("python3", "family", family)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
    assert _gone(ours)
    bad = subprocess.run([*argv[:3], "family", "x"], capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == 2
    assert "not a LEAPFROG_RUN family or tag" in bad.stderr


def test_the_ssh_kill_command_adds_the_tag_scan_only_for_a_valid_tag() -> None:
    tag = leftovers.command_tag(leftovers.new_family())
    assert "python3" not in kill_command(42)
    assert kill_command(42, tag).startswith("kill -s KILL -- -42 ")
    assert f"tag {tag} >/dev/null" in kill_command(42, tag)
    assert kill_command(42, tag, "/opt/py/bin/python3").split("; ")[2].startswith("/opt/py/bin/python3 -c ")
    with pytest.raises(ValueError, match="not a LEAPFROG_RUN tag"):
        kill_command(42, "0; reboot")
    assert tag_of({leftovers.NAME: tag}) == tag
    assert tag_of({leftovers.NAME: "0; reboot"}) is None
    assert tag_of(None) is None
