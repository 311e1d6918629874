"""Reports rendered from a ``Run``: results.json first, then JUnit XML and HTML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.model import Run
from harness.report.html import render_html
from harness.report.junit import write_junit

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


def render_all(run: Run, out: Path, **html_options: Any) -> list[Path]:
    """Write JUnit XML per target and index.html beside results.json.

    ``html_options`` go to :func:`render_html` (``comparison``, ``history``).
    """
    written = write_junit(run, out)
    written.append(render_html(run, out, **html_options))
    return written
