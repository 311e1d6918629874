"""How many workers a cell ran with, and how they were asked for: in results.json and on the report's cell page.

results.json keeps ``workers`` (processes that ran), ``workers_asked`` (``--workers``,
else suite.toml's ``workers``, else 1: a count or "auto") and ``workers_note`` (why
the cell ran serially though more were asked for); the cell's head in the HTML
report shows them as "workers 2 (auto)".  Files written before these keys existed
still load, render and compare.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness import lanes, workflow
from harness.config import TargetConfig, load_suite
from harness.history import Rules
from harness.model import CellResult, Run, Verdict
from harness.plan import make_plan
from harness.report import render_all
from harness.report.cells import workers_text
from harness.results import load_run
from harness.runner import Runner, RunOptions
from tests.report_sample import sample_run

QUICK = {"test_q.py": "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n\n\ndef test_c():\n    pass\n"}


def cell_pages(out: Path) -> dict[str, str]:
    """Each cell page's text (tags dropped), by its heading "<suite> on <target>"."""
    pages = {}
    for page in sorted((out / "cells").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        heading = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
        assert heading is not None, page
        pages[re.sub(r"<[^>]+>", "", heading.group(1)).strip()] = re.sub(r"<[^>]+>", "", html)
    return pages


def render_split(run: Run, out: Path) -> dict[str, str]:
    out.mkdir()
    render_all(run, out, inline_max_cases=0)  # every cell on its own page
    return cell_pages(out)


@pytest.mark.parametrize(
    ("workers", "asked", "note", "want"),
    [
        (2, "auto", "", "2 (auto)"),
        (1, "auto", "one usable core", "1 (auto: one usable core)"),
        (3, 4, "", "3 (asked 4)"),
        (1, 4, "suite.toml says parallel = false", "1 (asked 4: suite.toml says parallel = false)"),
        (2, 2, "", "2"),
        (1, None, "", "1"),  # an older results.json does not say
    ],
)
def test_workers_text(workers: int, asked: int | str | None, note: str, want: str) -> None:
    cell = CellResult("rv", "s", Verdict.COMPATIBLE, workers=workers, workers_asked=asked, workers_note=note)
    assert workers_text(cell) == want


def test_the_runner_records_what_was_asked_and_the_cell_page_shows_it(
    tmp_path: Path,
    write_suite,  # type: ignore[no-untyped-def]
    native_config: TargetConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lanes, "host_cores", lambda: 2)  # "auto" on the native target: the host's cores
    split = load_suite(write_suite("split", QUICK))
    serial = load_suite(write_suite("serial", QUICK, toml="parallel = false\n"))
    out = tmp_path / "out"
    Runner(make_plan([native_config], [split, serial]), RunOptions(out=out, workers="auto")).execute()
    saved = {c["suite"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert (saved["split"]["workers"], saved["split"]["workers_asked"], saved["split"]["workers_note"]) == (
        2,
        "auto",
        "",
    )
    assert (saved["serial"]["workers"], saved["serial"]["workers_asked"]) == (1, "auto")
    assert saved["serial"]["workers_note"] == "suite.toml says parallel = false"
    pages = render_split(load_run(out), tmp_path / "report")
    assert "workers 2 (auto)" in pages["split on native"]
    assert "workers 1 (auto: suite.toml says parallel = false)" in pages["serial on native"]


def _old(run: Run) -> dict[str, Any]:
    """``run`` as a results.json written before cells said how many workers ran them."""
    data = run.to_dict()
    for cell in data["cells"]:
        for key in ("workers", "workers_asked", "workers_note"):
            del cell[key]
    return data


def test_an_older_results_json_without_workers_loads_renders_and_compares(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for folder, run_id in ((old, "20261128-0900"), (new, "20261129-0900")):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(_old(sample_run(run_id))), encoding="utf-8")
    run = load_run(old)
    assert {(c.workers, c.workers_asked, c.workers_note) for c in run.cells} == {(1, None, "")}
    assert run.to_dict()["cells"][0]["workers_asked"] == 1  # written again: as it ran
    pages = render_split(run, tmp_path / "report")
    assert pages
    assert all("workers 1" in text and "workers 1 (" not in text for text in pages.values())
    comparison = workflow.compare_runs(str(old), str(new), db=tmp_path / "history.db", rules=Rules())
    assert (comparison.base_run_id, comparison.run_id) == ("20261128-0900", "20261129-0900")


def test_results_json_keeps_workers_asked_and_refuses_nonsense() -> None:
    cell = CellResult("rv", "s", Verdict.COMPATIBLE, workers=2, workers_asked="auto", workers_note="")
    again = CellResult.from_dict(json.loads(json.dumps(cell.to_dict())))
    assert (again.workers, again.workers_asked, again.workers_note) == (2, "auto", "")
    for bad in ("many", True, -3, 0, 2.5, None, ["auto"]):
        data = {**cell.to_dict(), "workers_asked": bad}
        assert CellResult.from_dict(data).workers_asked is None
