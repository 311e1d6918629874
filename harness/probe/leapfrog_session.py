"""What the probe does around the session: which collected cases this process runs (its worker's
share, less those already done), and the target's facts, collected beside the cases.

Stdlib and pytest only, next to ``leapfrog_probe.py`` in the target (its
``pytest_collection_modifyitems`` calls :func:`select`, its
``pytest_sessionstart`` :func:`start_facts`).

``LEAPFROG_WORKER=K/N``: this process is worker K (0-based) of N that share
the cell.  Every worker collects the whole suite and computes the same split
(:func:`worker_lanes`), then keeps its own share; its ``collected`` line says
which positions of the whole collection those cases hold, how many cases the
whole collection has and a digest of their names, so the runner can merge the
workers' results in the order one process gives and tell when the workers did
not collect the same cases.

``LEAPFROG_WORKER_WEIGHTS``: a JSON file ``{"cases": {nodeid: seconds}}`` of
expected durations; the split balances them.  Without it, cases are dealt
round-robin.

``LEAPFROG_DONE``: a file of node ids already recorded, deselected (how the
runner resumes after a crash).  A worker splits first and deselects after, so
every pass of one worker keeps a share of the same whole.

``LEAPFROG_FACTS``: the target's facts (``leapfrog_facts.collect``) are taken by
a forked child while the cases run, not before them (their numpy import alone
takes most of a second under qemu-user); the child writes them to a file of its
own and the probe, the results file's only writer, emits them at the session's
end, after every line a case wrote (a suite that forges a facts line does not
override them).  A pass that dies before its end loses them: the runner asks
again in the next pass, or runs the facts on their own.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

#: This worker's cases by name, with their positions in the whole collection.
_POSITIONS: Dict[str, int] = {}
#: The whole collection: how many cases, and a digest of their names in order.
_WHOLE: Dict[str, Any] = {}


def worker_lanes(names: List[str], workers: int, weights: Dict[str, float]) -> List[int]:
    """The worker (0 to ``workers - 1``) of each case in ``names``: a pure function, the same in every worker.

    With ``weights`` (expected seconds by name): longest first, each to the
    least loaded worker (ties: the earlier case, the lower worker); a case
    without a weight counts as the median of the known ones.  Without: round-robin.
    """
    if not weights:
        return [i % workers for i in range(len(names))]
    known = sorted(w for w in (weights.get(n) for n in names) if w is not None)
    typical = known[len(known) // 2] if known else 1.0
    cost = [weights.get(n, typical) for n in names]
    load = [0.0] * workers
    lanes = [0] * len(names)
    for i in sorted(range(len(names)), key=lambda i: (-cost[i], i)):
        k = min(range(workers), key=lambda j: (load[j], j))
        lanes[i] = k
        load[k] += cost[i]
    return lanes


def worker() -> Optional[List[int]]:
    """LEAPFROG_WORKER as [K, N]; None when unset, or not ``K/N`` with 0 <= K < N."""
    parts = os.environ.get("LEAPFROG_WORKER", "").split("/")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    k, n = int(parts[0]), int(parts[1])
    return [k, n] if 0 <= k < n else None


def weights() -> Dict[str, float]:
    """LEAPFROG_WORKER_WEIGHTS read; {} when unset or unreadable (then the split is round-robin)."""
    path = os.environ.get("LEAPFROG_WORKER_WEIGHTS")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            cases = json.load(f).get("cases", {})
        return {
            str(k): float(v)
            for k, v in cases.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        }
    except (OSError, ValueError, AttributeError) as e:
        sys.stderr.write("leapfrog: worker weights not read from %s (%s); cases dealt round-robin\n" % (path, e))
        return {}


def _deselect(config: Any, items: List[Any], keep: List[Any], drop: List[Any]) -> None:
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def select(config: Any, items: List[Any]) -> None:
    """Keep in ``items`` this worker's share (LEAPFROG_WORKER), less the cases done (LEAPFROG_DONE)."""
    me = worker()
    if me is not None:
        import hashlib  # here only: its import loads libcrypto (some 25 ms under qemu-user)

        names = [item.nodeid for item in items]
        digest = hashlib.sha256("\n".join(names).encode("utf-8", errors="replace")).hexdigest()[:16]
        _WHOLE.update(total=len(names), digest=digest)
        lanes = worker_lanes(names, me[1], weights())
        keep, drop = [], []
        for i, item in enumerate(items):
            if lanes[i] == me[0]:
                keep.append(item)
                _POSITIONS[item.nodeid] = i
            else:
                drop.append(item)
        _deselect(config, items, keep, drop)
    done_file = os.environ.get("LEAPFROG_DONE")
    if not done_file or not os.path.exists(done_file):
        return
    with open(done_file, encoding="utf-8") as f:
        done = {line.rstrip("\n") for line in f if line.strip()}
    keep, drop = [], []
    for item in items:
        (drop if item.nodeid in done else keep).append(item)
    _deselect(config, items, keep, drop)


def collected(items: List[Any]) -> Dict[str, Any]:
    """What the ``collected`` line adds for a worker: positions, the whole's size and digest ({} for one process)."""
    if not _WHOLE:
        return {}
    return dict(_WHOLE, positions=[_POSITIONS.get(item.nodeid, -1) for item in items])


#: The child taking the facts, and the file it writes them to.
_FACTS_CHILD: List[Any] = []
#: Seconds the session's end waits for the facts (the numpy child of leapfrog_facts is killed after 120 s).
FACTS_WAIT = 180.0


def _facts_record(wanted: List[str]) -> Dict[str, Any]:
    try:
        import leapfrog_facts

        return {"event": "facts", "facts": leapfrog_facts.collect(wanted)}
    except Exception as e:  # the runner falls back to a separate facts run
        return {"event": "facts-error", "error": repr(e)}


def start_facts(emit: Callable[[Dict[str, Any]], None]) -> None:
    """Take the facts LEAPFROG_FACTS asks for in a forked child; where fork is missing or fails, here and now."""
    wanted = [p for p in os.environ.get("LEAPFROG_FACTS", "").split(",") if p]
    results = os.environ.get("LEAPFROG_RESULTS")
    pid = -1
    if results and hasattr(os, "fork"):
        path = results + ".facts"
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns of fork() with the watchdog thread running
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            code = 1
            try:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(json.dumps(_facts_record(wanted), ensure_ascii=True, default=str))
                code = 0
            finally:
                os._exit(code)
        if pid > 0:
            _FACTS_CHILD[:] = [pid, path]
            return
    emit(_facts_record(wanted))


def poll_facts(emit: Callable[[Dict[str, Any]], None], wait: float = 0.0) -> None:
    """Emit the facts once the child is done, waiting ``wait`` seconds at most (then it is killed: facts-error)."""
    if not _FACTS_CHILD:
        return
    pid, path = _FACTS_CHILD
    deadline = time.monotonic() + wait
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 1
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if not done:
        if wait <= 0:
            return
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    del _FACTS_CHILD[:]
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f) if done and status == 0 else None
    except (OSError, ValueError):
        record = None
    emit(record if isinstance(record, dict) else {"event": "facts-error", "error": "the facts child failed"})
