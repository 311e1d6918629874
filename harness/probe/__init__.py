"""What goes INTO a target: files copied in before a suite runs.

``leapfrog_probe.py`` is a pytest plugin (``-p leapfrog_probe``) that streams one
JSON line per case; ``facts.py`` prints what the target is as one JSON object
(with ``vector_facts.py`` next to it: :data:`FACTS_FILES`).
Suites import two helper modules (:data:`SUITE_HELPERS`):
``leapfrog_suite.py`` (stdlib and pytest only: settings, ``arch``, timing,
meta.json) and ``leapfrog_checks.py`` (golden comparisons and the golden
writer; it needs numpy, so only suites that have numpy import it).  None
imports anything from ``harness``: they run on the target's Python.
"""

from __future__ import annotations

from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent
PLUGIN_FILE = PROBE_DIR / "leapfrog_probe.py"
#: What the plugin imports: its hooks and fixtures (the plugin itself is a shim, as pytest compiles it from source).
HOOKS_FILE = PROBE_DIR / "leapfrog_hooks.py"
#: The plugin's case selection (a worker's share, less the cases done), put next to it.
SESSION_FILE = PROBE_DIR / "leapfrog_session.py"
FACTS_FILE = PROBE_DIR / "facts.py"
VECTOR_FACTS_FILE = PROBE_DIR / "vector_facts.py"
#: The facts' files and the names they take in the target, where ``facts.py`` imports the other by that name.
FACTS_FILES = {"leapfrog_facts.py": FACTS_FILE, "leapfrog_vector_facts.py": VECTOR_FACTS_FILE}
SUITE_FILE = PROBE_DIR / "leapfrog_suite.py"
CHECKS_FILE = PROBE_DIR / "leapfrog_checks.py"
#: The helpers a suite (its conftest.py, its make_golden.py) imports, put in the probe folder of the target.
SUITE_HELPERS = (SUITE_FILE, CHECKS_FILE)
