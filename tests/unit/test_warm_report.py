"""The report's modules load in a background thread once a command runs in a target (fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python(code: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_report_loads_only_once_a_command_waits_and_then_in_the_background() -> None:
    done = python(
        """
        import sys, time
        from harness import report_warm
        from harness.targets._proc import WAITING, run_process

        thread = report_warm.warm_report()
        time.sleep(0.3)
        assert "harness.report" not in sys.modules, "loaded before any command ran"
        assert not WAITING.is_set()
        assert run_process(["true"], timeout=30).exit_code == 0
        assert WAITING.is_set()
        thread.join(60)
        assert not thread.is_alive()
        for name in ("harness.report", "harness.report.charts", "jinja2", "pygal"):
            assert name in sys.modules, name
        from harness.htmlenv import env
        assert "index.html.j2" in [t.name for t in env().cache.values()]  # loaded and compiled
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


def test_a_warm_up_that_fails_is_silent_and_the_real_import_still_raises() -> None:
    done = python(
        """
        import sys
        sys.modules["pygal"] = None  # the report's chart library cannot be imported
        from harness import report_warm
        from harness.targets._proc import WAITING

        WAITING.set()
        report_warm.warm_report().join(60)
        assert "harness.report" not in sys.modules  # a failed import is not kept
        try:
            import harness.report
        except ImportError as e:
            print("raised:", e)
        """
    )
    assert done.stderr == ""  # no traceback of the warm-up thread
    assert done.stdout.startswith("raised: import of pygal halted"), done.stdout
