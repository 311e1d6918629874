"""pytest plugin for host-driven suites (``-p harness.hostplugin``).

leapfrog runs a host-driven suite with pytest on the host; this plugin gives
its tests the target the runner started:

``target``          the started :class:`~harness.targets.base.Target` (session scope):
                    ``run``, ``put``, ``get``, ``forward(port)``, ``facts()``
``suite_settings``  the suite's ``[settings]`` table (dict)

The runner passes ``LEAPFROG_TARGET_FILE`` (the target's TOML) and
``LEAPFROG_TARGET_HANDLE`` (JSON from ``Target.handle()``) in the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_target
from harness.targets import Target, backend_class


@pytest.fixture(scope="session")
def target() -> Target:
    path = os.environ.get("LEAPFROG_TARGET_FILE")
    handle = os.environ.get("LEAPFROG_TARGET_HANDLE")
    if not path or handle is None:
        pytest.fail("host-driven suites run under `leapfrog run` (LEAPFROG_TARGET_FILE is not set).")
    cfg = load_target(Path(path))
    return backend_class(cfg.kind).attach(cfg, json.loads(handle))


@pytest.fixture(scope="session")
def suite_settings() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(os.environ.get("LEAPFROG_SETTINGS", "{}") or "{}")
    return data
