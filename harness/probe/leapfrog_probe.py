"""leapfrog's pytest plugin, ``-p leapfrog_probe``: the hooks and fixtures of ``leapfrog_hooks.py``, next to it.

pytest rewrites the asserts of every plugin named with ``-p``: it parses and
compiles that module from source at every start, whatever bytecode lies next to
it (about 50 ms for the plugin under qemu-user).  This module is the one pytest
rewrites, and it is short; ``leapfrog_hooks`` is imported the usual way, from the
bytecode shipped with it (``harness.probe_ship``).
"""

from leapfrog_hooks import *  # noqa: F403
from leapfrog_hooks import decide, phase_status  # noqa: F401  (named: suites import them from here)
