"""Reports rendered from a ``Run``: results.json first, then JUnit XML and HTML."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.process
import traceback
import warnings
from pathlib import Path
from typing import Any

from harness.errors import LeapfrogError
from harness.model import Run
from harness.report.html import render_html
from harness.report.junit import junit_filename, write_junit
from harness.results import load_run  # re-exported: it lives beside the results writer
from harness.triage import apply_triage

__all__ = ["ReportError", "load_run", "render_all", "render_html", "write_junit"]


class ReportError(LeapfrogError):
    """One part of the report could not be written; the others were.  ``written`` lists them."""

    def __init__(self, message: str, written: list[Path]) -> None:
        super().__init__(message)
        self.written = written


#: From this many cases on, JUnit XML is written by a forked process while the
#: HTML renders here: both are CPU-bound pure Python (bench/scale.py).
PARALLEL_FROM = 20_000


def render_all(run: Run, out: Path, **html_options: Any) -> list[Path]:
    """Write JUnit XML per target and index.html beside results.json.

    ``html_options`` go to :func:`render_html` (``comparison``, ``history``).
    Each part is written even when the other fails; then :class:`ReportError`
    names what failed (its traceback is in ``report-error.txt``) and lists
    what was written.
    """
    failed: list[tuple[str, BaseException]] = []
    written: list[Path] = []
    try:
        _triage(run, out)
    except Exception as e:  # the JUnit XML and HTML are still written, without triage
        failed.append(("the triage", e))
    child = _start_junit_process(run, out) if run.case_count() >= PARALLEL_FROM else None
    if child is None:
        try:
            written += write_junit(run, out)
        except Exception as e:  # any bug on odd values: the HTML is still written
            failed.append(("the JUnit XML", e))
    try:
        written.append(render_html(run, out, **html_options))
    except Exception as e:
        failed.append(("index.html", e))
    if child is not None:
        child.join()
        # A failed child leaves its traceback on stderr; writing here again
        # raises the real error (or succeeds, when the cause was the fork).
        try:
            got = [out / junit_filename(t.name) for t in run.targets] if child.exitcode == 0 else write_junit(run, out)
            written = got + written
        except Exception as e:
            failed.append(("the JUnit XML", e))
    if failed:
        raise _report_error(out, failed, written)
    return written


def _triage(run: Run, out: Path) -> None:
    """Triage every case (a pure function of the run); keep ``out/results.json`` in step when it changed."""
    if apply_triage(run) and (out / "results.json").is_file():
        tmp = out / "results.json.tmp"
        tmp.write_bytes(json.dumps(run.to_dict(), indent=1, ensure_ascii=False).encode("utf-8", "replace"))
        tmp.replace(out / "results.json")


def _report_error(out: Path, failed: list[tuple[str, BaseException]], written: list[Path]) -> ReportError:
    details = "".join("".join(traceback.format_exception(e)) for _what, e in failed)
    note = ""
    try:
        (out / "report-error.txt").write_text(details, encoding="utf-8", errors="replace")
        note = f" (traceback in {out / 'report-error.txt'})"
    except OSError:
        pass
    parts = "; ".join(f"{what}: {type(e).__name__}: {str(e)[:300]}" for what, e in failed)
    kept = ", ".join(p.name for p in written) or "nothing else"
    return ReportError(
        f"could not write {parts}{note}. Written: results.json, {kept}. This is a leapfrog bug: please report it "
        f'with results.json; re-render with "leapfrog report {out}" once it is fixed.',
        written,
    )


def _start_junit_process(run: Run, out: Path) -> multiprocessing.process.BaseProcess | None:
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    proc = multiprocessing.get_context("fork").Process(target=write_junit, args=(run, out), daemon=True)
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; the child
        # only serialises ``run`` into files and takes no lock another thread holds.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            proc.start()
        except OSError:
            return None
    return proc
