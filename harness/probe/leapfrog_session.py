"""Which collected cases one pytest process runs: its worker's share, less those already done.

Stdlib and pytest only, next to ``leapfrog_probe.py`` in the target (its
``pytest_collection_modifyitems`` calls :func:`select`).

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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional

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
