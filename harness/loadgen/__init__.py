"""Host-side load for serving suites: a server in the target, MLPerf LoadGen on the host.

A host-driven serving suite starts a model server *inside* a target, reaches it
through ``target.forward(port)`` and loads it from the host with MLPerf LoadGen
(``pip install mlcommons-loadgen``; module ``mlperf_loadgen``).  This module is
what such a suite (and ``bench/loadgen_capacity.py``) shares:

:class:`TargetService`   a long-running command in a target, run in a background
                         thread and stopped with a second command (``kill``)
:func:`listen_address`   where a server inside a target should listen
:class:`JsonClient`      keep-alive HTTP/JSON client (httpx), safe across threads
:func:`run_scenario`     one LoadGen test (SingleStream, Server or Offline) whose
                         SUT hands each query to a thread pool, so the load
                         generator never waits on the network
:func:`parse_summary`    LoadGen's ``mlperf_log_summary.txt`` as a :class:`Summary`
:func:`percentile`       LoadGen's own percentile rule, for cross-checks
:func:`max_abs_error`    a served answer against its golden value

LoadGen and httpx are imported only when used, so the rest of leapfrog works
without them.  The modules, by job: ``summary`` (numbers and LoadGen's summary
log), ``scenario`` (one LoadGen test), ``service`` (a server in a target and
its client).
"""

from __future__ import annotations

from harness.loadgen.scenario import Handler, ScenarioResult, ScenarioSettings, artifacts_root, run_scenario
from harness.loadgen.service import LOG_LIMIT, JsonClient, TargetService, listen_address, wait_until
from harness.loadgen.summary import (
    SCENARIOS,
    ServingError,
    Summary,
    golden_mismatch,
    max_abs_error,
    parse_summary,
    percentile,
)

__all__ = [
    "LOG_LIMIT",
    "SCENARIOS",
    "Handler",
    "JsonClient",
    "ScenarioResult",
    "ScenarioSettings",
    "ServingError",
    "Summary",
    "TargetService",
    "artifacts_root",
    "golden_mismatch",
    "listen_address",
    "max_abs_error",
    "parse_summary",
    "percentile",
    "run_scenario",
    "wait_until",
]
