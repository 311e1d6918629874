"""``python -m harness.cli``: the same as the ``leapfrog`` command."""

from harness.cli import main

main()
