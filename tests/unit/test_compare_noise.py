"""Regressions that clear the noise: floors, the history's spread, the repeats' spread, verdict changes.

Hand-built runs recorded in a temporary history database; the numbers are the
ones two back-to-back runs of one commit gave on a shared machine (issue 12).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import history
from harness.cli import main
from harness.compare import diff, regressions
from harness.model import CaseResult, CellResult, Metric, Run, Status, TargetInfo, Verdict
from harness.records import Rules, Snapshot, Spread
from harness.report import render_html

TLS = "test_ssl.py::test_tls_rejects_wrong_hostname"
SHA = "test_hash_compress.py::test_sha256_million_a"
SLOW = "test_work.py::test_one_second"


def a_run(
    run_id: str,
    day: int,
    durations: dict[str, float],
    metrics: dict[str, dict[str, Metric]] | None = None,
    verdict: Verdict = Verdict.COMPATIBLE,
) -> Run:
    cases = [
        CaseResult(name, Status.PASSED, d, metrics=dict((metrics or {}).get(name, {}))) for name, d in durations.items()
    ]
    return Run(
        run_id=run_id,
        started=f"2026-01-{day:02d}T00:00:00",
        targets=[TargetInfo("rv", "chroot")],
        cells=[CellResult("rv", "platform", verdict, cases)],
    )


def record_history(db: Path, tls: list[float], sha: list[float], slow: list[float]) -> None:
    for i, (t, s, w) in enumerate(zip(tls, sha, slow, strict=True)):
        history.record(a_run(f"h{i}", i + 1, {TLS: t, SHA: 0.02, SLOW: w}, {SHA: {"sha256_mb_per_s": s}}), db=db)


def by_case(comparison: history.Comparison) -> dict[str, tuple[str, str]]:
    return {c.case: (c.kind, c.reason) for c in comparison.changes}


def test_back_to_back_noise_is_not_a_regression(tmp_path: Path) -> None:
    """0.033 s -> 0.052 s and 55.9 -> 34.4 MB/s: the old rules called both slower (exit 1)."""
    db = tmp_path / "h.sqlite"
    record_history(
        db, [0.030, 0.045, 0.060, 0.038, 0.033], [48.2, 34.0, 41.3, 52.0, 55.9], [1.0, 1.02, 0.97, 1.01, 1.0]
    )
    history.record(a_run("new", 20, {TLS: 0.052, SHA: 0.02, SLOW: 1.05}, {SHA: {"sha256_mb_per_s": 34.4}}), db=db)
    comp = history.compare_ids("h4", "new", db=db)
    changes = by_case(comp)
    assert regressions(comp) == []
    assert changes[TLS] == ("noise", "+19 ms < 50 ms floor")
    assert changes[f"{SHA} [sha256_mb_per_s]"] == ("noise", "within history spread 34–55.9 over 5 runs")
    assert SLOW not in changes  # 1.05× is no change at all


def test_injected_3x_slowdown_is_a_regression_with_its_reason(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    record_history(db, [0.033] * 5, [55.9] * 5, [0.95, 1.0, 1.05, 1.02, 1.0])
    history.record(a_run("new", 20, {TLS: 0.033, SHA: 0.02, SLOW: 3.0}, {SHA: {"sha256_mb_per_s": 55.9}}), db=db)
    comp = history.compare_ids("h4", "new", db=db)
    assert [(c.case, c.kind) for c in regressions(comp)] == [(SLOW, "slower")]
    assert (
        by_case(comp)[SLOW][1] == "3.0× ≥ 1.5×; +2.0 s ≥ 50 ms floor; beyond history spread 0.950s–1.050s over 5 runs"
    )


def test_a_slowdown_inside_the_history_spread_is_noise(tmp_path: Path) -> None:
    """+150 ms clears the floor, but this case has swung by 250 ms over the last five runs."""
    db = tmp_path / "h.sqlite"
    record_history(db, [0.03] * 5, [50.0] * 5, [0.15, 0.4, 0.2, 0.3, 0.2])
    history.record(a_run("new", 20, {TLS: 0.03, SHA: 0.02, SLOW: 0.35}, {SHA: {"sha256_mb_per_s": 50.0}}), db=db)
    assert by_case(history.compare_ids("h4", "new", db=db))[SLOW] == (
        "noise",
        "within history spread 0.150s–0.400s over 5 runs",
    )
    # Only the last N runs give the spread: with the last two (0.3, 0.2) it is a regression.
    comp = history.compare_ids("h4", "new", db=db, rules=Rules(history=2))
    assert by_case(comp)[SLOW][0] == "slower"


def test_spread_reads_earlier_runs_of_the_same_cell_only(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    record_history(db, [0.03, 0.04, 0.05], [50.0] * 3, [1.0, 2.0, 3.0])
    broken = a_run("broken", 10, {SLOW: 9.0}, verdict=Verdict.INFRA_ERROR)
    history.record(broken, db=db)
    new = a_run("new", 11, {SLOW: 1.0})
    history.record(new, db=db)
    history.record(a_run("later", 12, {SLOW: 7.0}), db=db)
    with history.connect(db) as conn:
        seen = history.spread(conn, "new", new.started, {("rv", "platform")}, last=2)
        other = history.spread(conn, "new", new.started, {("rv", "other-suite")})
    assert seen.durations[("rv", "platform", SLOW)] == {"h1": 2.0, "h2": 3.0}  # not broken, new or later
    assert seen.metrics[("rv", "platform", SHA, "sha256_mb_per_s")] == {"h1": 50.0, "h2": 50.0}
    assert other == Spread()


def test_floor_and_no_history() -> None:
    """Without history the floor decides; a rate, which has no floor, is not judged."""

    def snap(slow: float, rate: float) -> Snapshot:
        return Snapshot({("rv", "s", SLOW): ("passed", slow, "")}, {("rv", "s", SHA, "sha256_mb_per_s"): rate})

    comp = diff(snap(1.0, 55.9), snap(3.0, 18.0), base_id="a", new_id="b")
    assert by_case(comp) == {
        SLOW: ("slower", "3.0× ≥ 1.5×; +2.0 s ≥ 50 ms floor; no spread in the history yet"),
        f"{SHA} [sha256_mb_per_s]": (
            "noise",
            "not judged: a rate needs 3 earlier runs for its spread, the history has 1",
        ),
    }
    assert by_case(diff(snap(1.0, 1), snap(3.0, 1), base_id="a", new_id="b", rules=Rules(min_change=2.5)))[SLOW] == (
        "noise",
        "+2.0 s < 2.5 s floor",
    )
    faster = diff(snap(3.0, 1), snap(1.0, 1), base_id="a", new_id="b")
    assert by_case(faster)[SLOW][0] == "faster"


def test_a_median_over_repeats_must_clear_its_p90() -> None:
    def snap(median: float, p90: float) -> Snapshot:
        key = ("rv", "s", "test_latency[mlp]")
        return Snapshot({(*key,): ("passed", 0.01, "")}, {(*key, "median_ms"): median, (*key, "p90_ms"): p90})

    noisy = by_case(diff(snap(10.0, 20.0), snap(16.0, 25.0), base_id="a", new_id="b"))
    assert noisy["test_latency[mlp] [median_ms]"] == ("noise", "within the repeats' spread (p90 - median 10 ms)")
    real = by_case(diff(snap(10.0, 11.0), snap(30.0, 33.0), base_id="a", new_id="b"))
    assert real["test_latency[mlp] [median_ms]"] == (
        "slower",
        "3.0× ≥ 1.5×; +20 ms ≥ 1 ms floor; beyond the repeats' spread (p90 - median 3 ms)",
    )
    # The p90 itself is a single timing: +22 ms is under the 50 ms floor.
    assert real["test_latency[mlp] [p90_ms]"] == ("noise", "+22 ms < 50 ms floor")


def test_a_verdict_change_is_a_change_and_a_worse_one_a_regression() -> None:
    def snap(verdict: str) -> Snapshot:
        return Snapshot({("rv", "s", "a"): ("passed", 1.0, "")}, {}, {("rv", "s"): verdict})

    worse = diff(snap("compatible"), snap("partial"), base_id="a", new_id="b")
    assert [(c.target, c.suite, c.case, c.kind, c.before, c.after) for c in worse.changes] == [
        ("rv", "s", "", "verdict-worse", "compatible", "partial")
    ]
    assert regressions(worse) == worse.changes
    better = diff(snap("infra-error"), snap("compatible"), base_id="a", new_id="b")
    assert [c.kind for c in better.changes] == ["verdict-better"]
    assert regressions(better) == []
    assert [c.kind for c in diff(snap("not-run"), snap("infra-error"), base_id="a", new_id="b").changes] == ["verdict"]


def test_after_an_infra_error_run_the_next_run_is_a_change(tmp_path: Path) -> None:
    """The demo bug: a first run that ended in infra-error (no cases), then a compatible one,
    was reported as "Nothing changed since" the first."""
    db = tmp_path / "h.sqlite"
    first = Run("first", "2026-01-01T00:00:00", targets=[TargetInfo("rv", "chroot")])
    first.cells = [CellResult("rv", "platform", Verdict.INFRA_ERROR, [], message="the chroot did not start")]
    history.record(first, db=db)
    second = a_run("second", 2, {TLS: 0.03})
    comparison, _rows = history.before_recording(second, db=db)
    assert comparison is not None
    assert [(c.kind, c.before, c.after) for c in comparison.changes] == [
        ("verdict-better", "infra-error", "compatible")
    ]
    page = render_html(second, tmp_path / "report", comparison=comparison).read_text()
    assert "Nothing changed since" not in page
    assert "Better cell verdicts" in page
    history.record(second, db=db)
    res = CliRunner().invoke(main, ["compare", "first", "second", "--db", str(db)])
    assert res.exit_code == 0, res.output
    assert "verdict-better" in res.output
    assert "rv / platform: infra-error -> compatible" in res.output


def test_compare_cli_prints_the_test_that_decided(tmp_path: Path) -> None:
    folders = []
    for run in (
        a_run("base", 1, {TLS: 0.033, SHA: 0.02, SLOW: 1.0}, {SHA: {"sha256_mb_per_s": 55.9}}),
        a_run("new", 2, {TLS: 0.052, SHA: 0.02, SLOW: 3.0}, {SHA: {"sha256_mb_per_s": 34.4}}),
    ):
        folder = tmp_path / run.run_id
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(run.to_dict()))
        folders.append(str(folder))
    db = ["--db", str(tmp_path / "empty.sqlite")]
    res = CliRunner().invoke(main, ["compare", *folders, *db])
    assert res.exit_code == 1
    assert f"slower         rv / platform / {SLOW}: 1.000s -> 3.000s (x3.00)  [3.0× ≥ 1.5×; +2.0 s" in res.output
    assert f"noise          rv / platform / {TLS}: 0.033s -> 0.052s (x1.58)  [+19 ms < 50 ms floor]" in res.output
    assert "1 regression(s): 0 new failure(s), 0 worse verdict(s), 1 slower; 2 change(s) within the noise" in res.output
    res = CliRunner().invoke(main, ["compare", *folders, *db, "--min-change", "2.5"])
    assert res.exit_code == 0, res.output
    assert "[+2.0 s < 2.5 s floor]" in res.output
    res = CliRunner().invoke(main, ["compare", *folders, *db, "--min-history", "1"])
    assert "sha256_mb_per_s]: 55.9 -> 34.4 (x1.62)  [1.6× ≥ 1.5×; no spread in the history yet]" in res.output


def test_the_terminal_lists_the_first_noise_changes_then_counts_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import show
    from harness.records import CaseChange, Comparison

    changes = [
        CaseChange("rv", "upstream", f"t.py::test_{i}", "noise", "0.1s", "0.12s", 1.2, "+20 ms < 50 ms floor")
        for i in range(25)
    ]
    show.changes(Comparison(base_run_id="b", run_id="n", changes=changes))
    shown = capsys.readouterr().out
    assert shown.count("\n  noise ") == show.NOISE_SHOWN
    assert "… and 15 more within the noise (--show-noise lists them)" in shown
    show.changes(Comparison(base_run_id="b", run_id="n", changes=changes), show_noise=True)
    assert capsys.readouterr().out.count("\n  noise ") == 25
