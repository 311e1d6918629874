"""What goes INTO a target: stdlib-only files copied in before a suite runs.

``leapfrog_probe.py`` is a pytest plugin (``-p leapfrog_probe``) that streams one
JSON line per case; ``facts.py`` prints what the target is as one JSON object;
``leapfrog_checks.py`` holds the golden-output helpers suites import (it needs
numpy, so only suites that have numpy import it).  None imports anything from
``harness``: they run on the target's Python.
"""

from __future__ import annotations

from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent
PLUGIN_FILE = PROBE_DIR / "leapfrog_probe.py"
FACTS_FILE = PROBE_DIR / "facts.py"
CHECKS_FILE = PROBE_DIR / "leapfrog_checks.py"
