"""Imports a module only the (absent) package python3-leapfrog-absent would install."""

import leapfrog_absent_module  # noqa: F401


def test_never_runs() -> None:
    raise AssertionError("the module cannot be imported, so this case is never collected")
