"""Load the report's modules in the background while the cells run, when leapfrog's own process is idle.

Outside :mod:`harness.report`: importing this module must not import the report.
"""

from __future__ import annotations

import contextlib
import threading

from harness.targets._proc import WAITING


def warm_report() -> threading.Thread:
    """Import the report's modules (Jinja, pygal) and load its page template in a background thread.

    The thread starts its work once a command runs in a target and leapfrog's
    own process waits for it (:data:`harness.targets._proc.WAITING`; before
    that it would slow the cell's start), so the report at the end finds them
    loaded.  Whatever fails here is dropped: the import and the rendering at
    the end meet the same error and raise it as they always did (a failed
    import is not kept in ``sys.modules``).
    """

    def work() -> None:
        WAITING.wait()
        with contextlib.suppress(Exception):
            import harness.report  # noqa: F401 - the modules render_all uses
            from harness.htmlenv import env

            env().get_template("index.html.j2")

    thread = threading.Thread(target=work, name="leapfrog-warm-report", daemon=True)
    thread.start()
    return thread
