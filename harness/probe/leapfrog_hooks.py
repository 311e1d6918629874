"""leapfrog's pytest plugin, loaded in the target with ``-p leapfrog_probe`` (which imports this module).

Stdlib and pytest only: this file runs on the target's Python (3.8+).

It appends one JSON line per event to the file named by ``LEAPFROG_RESULTS``
and flushes it at once, so a process that dies mid-suite loses nothing that
already finished::

    {"event": "collected", "names": ["test_x.py::test_a", "..."]}
    {"event": "case", "name": "...", "status": "passed", "duration": 0.1,
     "message": "", "output": "", "metrics": {"p99_ms": 3.2}}
    {"event": "end", "exitstatus": 0}

Environment:

``LEAPFROG_RESULTS``       where to write (required for any output)
``LEAPFROG_OUTPUT_LIMIT``  bytes of captured output kept per case (default 65536)
``LEAPFROG_CASE_TIMEOUT``  seconds a case may take; then it is ``timeout``
``LEAPFROG_CASE_TIMEOUTS`` a JSON file ``{"default": s, "cases": {nodeid: s}}``:
                           each case's own timeout (``case_timeout = "auto"``);
                           a case not in it gets ``default``
``LEAPFROG_DONE``          a file of node ids already recorded: deselected
                           (how the runner resumes after a crash; leapfrog_session.py)
``LEAPFROG_FACTS``         report the target's facts first (value: comma list
                           of package names whose versions to include)
``LEAPFROG_MISSING_PACKAGES`` packages the target's distribution lacks: a test
                           module that cannot import because of them is
                           ``skipped`` with that reason, not an error
``LEAPFROG_MAX_CHILD_CASES`` child cases one case may record (default 20000)
``LEAPFROG_WORKER``        ``K/N``: keep worker K's share of the cases (leapfrog_session.py)

Child cases: a case that runs tests of its own (the ``upstream`` suite runs a
package's test suite in a subprocess) appends them to the ``child_cases``
fixture; each is recorded as a case named ``<this case>::<child name>``, just
before the case itself, with its status, duration and a bounded message.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Set

import pytest

_OUT: Optional[Any] = None
_LIMIT = int(os.environ.get("LEAPFROG_OUTPUT_LIMIT", "65536") or 65536)
_MESSAGE_LIMIT = 8192
_TIMEOUT = float(os.environ.get("LEAPFROG_CASE_TIMEOUT", "0") or 0)
#: Per-case timeouts (LEAPFROG_CASE_TIMEOUTS), read in pytest_configure.
_TIMEOUTS: Dict[str, float] = {}
#: The timeout of the case running now (for the message).
_CURRENT = 0.0
#: Grace after the soft timeout before faulthandler ends the process (a case
#: stuck in C code never returns to Python to see the soft one).
_HARD_GRACE = float(os.environ.get("LEAPFROG_HARD_GRACE", "30") or 30)
TIMEOUT_MARK = "leapfrog-case-timeout"
#: Child cases one case may record; past it they are counted in its ``child_cases_dropped`` metric.
_CHILD_LIMIT = int(os.environ.get("LEAPFROG_MAX_CHILD_CASES", "20000") or 20000)
#: Bytes of message kept per child case (thousands of them may come from one case).
_CHILD_MESSAGE_LIMIT = 4096
#: Characters of a child's whole name (the runner keeps 1000): longer ones are cut and given a hash.
_CHILD_NAME_LIMIT = 900
_CHILD_STATUSES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "timeout")


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past LEAPFROG_CASE_TIMEOUT."""


def _emit(record: Dict[str, Any]) -> None:
    if _OUT is None:
        return
    _OUT.write(json.dumps(record, ensure_ascii=True, default=str) + "\n")
    _OUT.flush()


def _bound(text: str, limit: int) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    return kept + "\n[... truncated by leapfrog: %d bytes dropped ...]" % (len(data) - limit)


def _clean_metric(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:  # numpy scalars and the like
        item = value.item()
        if isinstance(item, (bool, int, float, str)):
            return _clean_metric(item)
    except Exception:
        pass
    return str(value)


class _State:
    def __init__(self) -> None:
        self.status: Optional[str] = None
        self.message = ""
        self.output: List[str] = []
        self.duration = 0.0
        self.metrics: Dict[str, Any] = {}
        self.children: List[Any] = []


_STATE: Dict[str, _State] = {}


def pytest_configure(config: Any) -> None:
    global _OUT
    global _WATCHDOG
    path = os.environ.get("LEAPFROG_RESULTS")
    if path and _OUT is None:
        _OUT = open(path, "a", encoding="utf-8")
    _load_timeouts()
    shortest = min([t for t in [_TIMEOUT, *_TIMEOUTS.values()] if t > 0], default=0.0)
    if shortest > 0 and _WATCHDOG is None:
        _WATCHDOG = _Watchdog(shortest + _HARD_GRACE)
        _WATCHDOG.start()


def _load_timeouts() -> None:
    """Read LEAPFROG_CASE_TIMEOUTS: its ``default`` replaces LEAPFROG_CASE_TIMEOUT; bad entries are ignored."""
    global _TIMEOUT
    path = os.environ.get("LEAPFROG_CASE_TIMEOUTS")
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except (OSError, ValueError) as e:
        note = "leapfrog: per-case timeouts not read from %s (%s); every case gets %g s\n"
        sys.stderr.write(note % (path, e, _TIMEOUT))
        return

    def seconds(value: Any) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        return float(value) if ok else 0.0

    if not isinstance(table, dict):
        return
    if seconds(table.get("default")):
        _TIMEOUT = seconds(table["default"])
    cases = table.get("cases")
    if isinstance(cases, dict):
        for name, value in cases.items():
            if seconds(value):
                _TIMEOUTS[str(name)] = seconds(value)


def pytest_sessionstart(session: Any) -> None:
    """With LEAPFROG_FACTS set (a comma list of Python distributions whose versions to include), report what
    the target is from this very process, a forked child of it taking them while the cases run
    (leapfrog_session.py): no separate interpreter start (about a second under qemu-user)."""
    if os.environ.get("LEAPFROG_FACTS") is not None:
        import leapfrog_session

        leapfrog_session.start_facts(_emit)


def pytest_unconfigure(config: Any) -> None:
    global _OUT
    if _OUT is not None:
        _OUT.close()
        _OUT = None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    """This worker's share of the cases (LEAPFROG_WORKER), less those done (LEAPFROG_DONE): leapfrog_session.py,
    imported only when there is a share to keep or a file of cases done (a first pass of one process has neither)."""
    done = os.environ.get("LEAPFROG_DONE")
    if os.environ.get("LEAPFROG_WORKER") or (done and os.path.exists(done)):
        import leapfrog_session

        leapfrog_session.select(config, items)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: Any) -> None:
    """The cases about to run, in order: the first without a result is the one that was running if the process dies."""
    names = [i.nodeid for i in session.items]
    selected = sys.modules.get("leapfrog_session")  # a worker's positions in the whole collection, if it split one
    _emit(dict(selected.collected(session.items) if selected else {}, event="collected", names=names))


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        text = str(report.longreprtext)
        missing = os.environ.get("LEAPFROG_MISSING_PACKAGES", "")
        if missing and ("ModuleNotFoundError" in text or "ImportError" in text):
            # The target's distribution has no package for this: a finding, not a failure.
            status = "skipped"
            message = "package not available for this target: %s\n\n%s" % (missing, text)
        else:
            status, message = "error", "collection failed: " + text
        _emit(
            {
                "event": "case",
                "name": report.nodeid or "<collection>",
                "status": status,
                "duration": 0.0,
                "message": _bound(message, _MESSAGE_LIMIT),
                "output": "",
                "metrics": {},
            }
        )


@pytest.fixture
def metrics(request: Any) -> Dict[str, Any]:
    """A dict for numbers a case wants in the report: ``metrics["p99_ms"] = 3.2``."""
    state = _STATE.setdefault(request.node.nodeid, _State())
    return state.metrics


@pytest.fixture
def child_cases(request: Any) -> List[Any]:
    """A list for the tests a case ran itself, each recorded as a case of its own.

    Append ``{"name": ..., "status": ..., "duration": s, "message": ...}``;
    ``status`` is one of passed, failed, error, skipped, xfailed, xpassed,
    timeout (anything else is ``error``).  The case ``<this case>::<name>`` is
    recorded just before this case, whatever this case's own outcome.
    """
    return _STATE.setdefault(request.node.nodeid, _State()).children


def _child_name(parent: str, name: Any) -> str:
    """``parent::name`` on one line, at most ``_CHILD_NAME_LIMIT`` characters (a cut name ends in a hash)."""
    text = " ".join(str(name).split())
    full = "%s::%s" % (parent, text)
    if len(full) <= _CHILD_NAME_LIMIT:
        return full
    import hashlib  # here only: its import loads libcrypto (some 25 ms under qemu-user) for a rare cut name

    digest = hashlib.sha256(full.encode("utf-8", errors="replace")).hexdigest()[:12]
    return "%s...#%s" % (full[: _CHILD_NAME_LIMIT - 16], digest)


def _child_records(parent: str, state: _State) -> List[Dict[str, Any]]:
    """The valid child cases of ``parent``, bounded; the rest counted in its ``child_cases_dropped`` metric."""
    out: List[Dict[str, Any]] = []
    seen: Set[str] = set()
    dropped = 0
    for child in state.children:
        name = child.get("name") if isinstance(child, dict) else None
        if not isinstance(name, str) or not name.strip() or len(out) >= _CHILD_LIMIT:
            dropped += 1
            continue
        full = _child_name(parent, name)
        if full in seen or full == parent:
            dropped += 1
            continue
        seen.add(full)
        status = child.get("status")
        duration = child.get("duration")
        ok = isinstance(duration, (int, float)) and not isinstance(duration, bool) and math.isfinite(duration)
        out.append(
            {
                "event": "case",
                "name": full,
                "status": status if status in _CHILD_STATUSES else "error",
                "duration": round(max(0.0, float(duration)), 6) if ok else 0.0,
                "message": _bound(str(child.get("message") or ""), _CHILD_MESSAGE_LIMIT),
                "output": "",
                "metrics": {},
            }
        )
    if dropped:
        state.metrics["child_cases_dropped"] = dropped
    return out


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout("%s: case exceeded %g s" % (TIMEOUT_MARK, _CURRENT))


class _Watchdog(threading.Thread):
    """The hard case timeout: one thread for the session, re-armed per case.

    A case stuck in native code never returns to Python to see the SIGALRM
    soft timeout; past the grace the watchdog prints the marker and every
    thread's traceback, and ends the process (the runner marks the case
    ``timeout`` and resumes after it).  One thread, not one per case, and
    arming it is a plain assignment: thread starts and wake-ups are expensive
    under qemu-user.  The thread sleeps at most ``period`` at a time and every
    deadline is at least ``period`` after its arming, so it always wakes in time.
    """

    def __init__(self, period: float) -> None:
        super().__init__(name="leapfrog-watchdog", daemon=True)
        self.period = period
        self.deadline: Optional[float] = None

    def arm(self, timeout: float) -> None:
        """Due ``timeout`` plus the grace from now, and never sooner than ``period``."""
        self.deadline = time.monotonic() + max(timeout + _HARD_GRACE, self.period)

    def disarm(self) -> None:
        self.deadline = None

    def run(self) -> None:
        # Process-directed signals must never land here: a case that blocks a
        # signal in its own thread and waits for it (sigwait) would otherwise
        # see this thread take it, and die of its default action.
        try:
            every = signal.valid_signals() if hasattr(signal, "valid_signals") else range(1, 32)
            signal.pthread_sigmask(signal.SIG_BLOCK, every)
        except (AttributeError, OSError, ValueError):
            pass
        while True:
            deadline = self.deadline
            if deadline is None:
                time.sleep(self.period)
                continue
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(min(left, self.period))
                continue
            if self.deadline != deadline:  # re-armed or disarmed meanwhile
                continue
            sys.stderr.write("\n%s: hard timeout, ending the process\n" % TIMEOUT_MARK)
            sys.stderr.flush()
            faulthandler.dump_traceback(all_threads=True)
            os._exit(70)


_WATCHDOG: Optional[_Watchdog] = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    _STATE.setdefault(item.nodeid, _State())
    global _CURRENT
    _CURRENT = _TIMEOUTS.get(item.nodeid, _TIMEOUT)
    armed = _CURRENT > 0 and hasattr(signal, "setitimer")
    if armed:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, _CURRENT)
        if _WATCHDOG is not None:
            _WATCHDOG.arm(_CURRENT)
    try:
        yield
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if _WATCHDOG is not None:
                _WATCHDOG.disarm()
            signal.signal(signal.SIGALRM, previous)
    state = _STATE.pop(item.nodeid, _State())
    for record in _child_records(item.nodeid, state):  # before the case: a resumed run records them again
        _emit(record)
    _emit(
        {
            "event": "case",
            "name": item.nodeid,
            "status": state.status or "error",
            "duration": round(state.duration, 6),
            "message": _bound(state.message, _MESSAGE_LIMIT),
            "output": _bound("".join(state.output), _LIMIT),
            "metrics": {str(k): _clean_metric(v) for k, v in state.metrics.items()},
        }
    )


def _message(report: Any) -> str:
    """The one-line cause first (exception type and text), then pytest's full report."""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])
    text = str(getattr(report, "longreprtext", "") or "")
    crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", "")
    return "%s\n\n%s" % (crash, text) if crash else text


def pytest_runtest_logreport(report: Any) -> None:
    state = _STATE.setdefault(report.nodeid, _State())
    state.duration += float(getattr(report, "duration", 0.0) or 0.0)
    for title, content in getattr(report, "sections", []):
        if content and report.when == "teardown":
            state.output.append("----- %s -----\n%s\n" % (title, content))
    was_xfail = hasattr(report, "wasxfail")
    status = phase_status(report)
    if report.when == "call" and was_xfail and not report.failed:
        state.message = str(report.wasxfail)
    if report.failed or (report.skipped and not was_xfail):
        state.message = state.message or _message(report)
        if report.failed and TIMEOUT_MARK in state.message:
            status = "timeout"
    state.status = decide(state.status, status)


def phase_status(report: Any) -> Optional[str]:
    """What one phase's report says of its test: passed, failed, error, skipped, xfailed, xpassed, or None.

    The call phase says how the test went; a failed setup or teardown is an
    error; a skip in setup is a skip (an xfail when the test expected to fail).
    The ``upstream`` suite's plugin (``upstream_budget``) uses this too.
    """
    was_xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if was_xfail else "passed"
        if report.skipped:
            return "xfailed" if was_xfail else "skipped"
        return "failed"
    if report.failed:  # setup or teardown failed
        return "error"
    if report.skipped and report.when == "setup":
        return "xfailed" if was_xfail else "skipped"
    return None


def decide(current: Optional[str], status: Optional[str]) -> Optional[str]:
    """A test's one outcome once a phase said ``status``: the first phase that says
    something decides; a teardown error spoils a pass; a timeout overrides everything."""
    if status is not None and (
        current is None or status == "timeout" or (current in ("passed", "xpassed") and status == "error")
    ):
        return status
    return current


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    if os.environ.get("LEAPFROG_FACTS") is not None:
        import leapfrog_session

        leapfrog_session.poll_facts(_emit, wait=leapfrog_session.FACTS_WAIT)
    _emit({"event": "end", "exitstatus": int(exitstatus)})
