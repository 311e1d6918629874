"""Reports rendered from a ``Run``: results.json first, then JUnit XML and HTML."""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.process
import warnings
from pathlib import Path
from typing import Any

from harness.model import Run
from harness.report.html import render_html
from harness.report.junit import junit_filename, write_junit

__all__ = ["load_run", "render_all", "render_html", "write_junit"]


def load_run(folder: Path) -> Run:
    from harness.errors import ConfigError

    path = folder / "results.json" if folder.is_dir() else folder
    try:
        return Run.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no results.json there; pass a report folder written by `leapfrog run`.") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a leapfrog results.json ({e}).") from e


#: From this many cases on, JUnit XML is written by a forked process while the
#: HTML renders here: both are CPU-bound pure Python (bench/scale.py).
PARALLEL_FROM = 20_000


def render_all(run: Run, out: Path, **html_options: Any) -> list[Path]:
    """Write JUnit XML per target and index.html beside results.json.

    ``html_options`` go to :func:`render_html` (``comparison``, ``history``).
    """
    child = _start_junit_process(run, out) if run.case_count() >= PARALLEL_FROM else None
    written = write_junit(run, out) if child is None else []
    index = render_html(run, out, **html_options)
    if child is not None:
        child.join()
        # A failed child leaves its traceback on stderr; writing here again
        # raises the real error (or succeeds, when the cause was the fork).
        written = [out / junit_filename(t.name) for t in run.targets] if child.exitcode == 0 else write_junit(run, out)
    written.append(index)
    return written


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
