"""History database, compare, known issues and shard merging, on hand-made runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import history
from harness.cli import main
from harness.errors import ConfigError
from harness.known_issues import apply, load
from harness.merge import merge_runs
from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.workflow import exit_code


def run_with(run_id: str, started: str, statuses: dict[str, tuple[Status, float]], p99: float = 100.0) -> Run:
    cases = [CaseResult(name, st, d) for name, (st, d) in statuses.items()]
    cases[0].metrics["p99_ms"] = p99
    return Run(
        run_id=run_id,
        started=started,
        targets=[TargetInfo("rv", "chroot", facts=TargetFacts(arch="riscv64", packages={"numpy": "2.2.4"}))],
        cells=[CellResult("rv", "s", Verdict.PARTIAL, cases)],
    )


A = run_with(
    "A", "2026-01-01T00:00:00", {"a": (Status.PASSED, 1.0), "b": (Status.PASSED, 1.0), "c": (Status.FAILED, 1.0)}
)
B = run_with(
    "B",
    "2026-01-02T00:00:00",
    {"a": (Status.PASSED, 2.0), "b": (Status.FAILED, 1.0), "c": (Status.PASSED, 1.0), "d": (Status.PASSED, 0.1)},
    p99=300.0,  # +200 ms: clears the 50 ms floor (a single timing of +20 ms would be noise)
)


def test_record_compare_and_previous(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    history.record(A, db=db)
    history.record(B, db=db)
    history.record(B, db=db)  # recording again replaces, never duplicates
    assert history.run_ids(db=db) == ["A", "B"]
    assert history.previous_comparable(B, db=db) == "A"
    comp = history.compare_ids("A", "B", db=db)
    kinds = {(c.case, c.kind) for c in comp.changes}
    assert ("b", "new-failure") in kinds
    assert ("c", "fixed") in kinds
    assert ("a", "slower") in kinds
    assert ("d", "new") in kinds
    assert ("a [p99_ms]", "slower") in kinds
    assert {c.case for c in history.regressions(comp)} == {"a", "b", "a [p99_ms]"}
    (summary_a, summary_b) = history.summaries(db=db)
    assert summary_a.per_target["rv"][:2] == (2, 3)
    assert summary_b.per_target["rv"][:2] == (3, 4)
    with pytest.raises(ConfigError, match='no run "Z"'):
        history.compare_ids("A", "Z", db=db)


def test_compare_cli_exit_codes(tmp_path: Path) -> None:
    for r in (A, B):
        (tmp_path / r.run_id).mkdir()
        (tmp_path / r.run_id / "results.json").write_text(json.dumps(r.to_dict()))
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "A"), str(tmp_path / "B")])
    assert res.exit_code == 1
    assert "new-failure" in res.output
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "A"), str(tmp_path / "A")])
    assert res.exit_code == 0


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not sqlite" * 100)
    with pytest.raises(ConfigError, match=r"bad\.sqlite"):
        history.record(A, db=bad)


def test_known_issues(tmp_path: Path) -> None:
    f = tmp_path / "k.toml"
    f.write_text(
        '[[issue]]\ncase = "b"\ntarget = "r*"\nreason = "fcvt saturates"\nlink = "https://x/1"\n'
        '[[issue]]\ncase = "*"\npackage = "numpy>=3"\nreason = "never matches"\n'
    )
    issues = load(f)
    run = run_with("K", "2026", {"a": (Status.PASSED, 1.0), "b": (Status.FAILED, 1.0)})
    assert exit_code(run) == 1
    assert apply(issues, run.cells[0], run.targets[0].facts) == 1
    assert run.cells[0].cases[1].known_issue == "fcvt saturates <https://x/1>"
    assert exit_code(run) == 0  # the only failure is a known one
    f.write_text('[[issue]]\ncase = "b"\nreson = "x"\n')
    with pytest.raises(ConfigError, match=r'unknown key "issue\[0\].reson" \(did you mean "reason"\?\)'):
        load(f)
    f.write_text('[[issue]]\ncase = "b"\nreason = "x"\npackage = "numpy <<< 2"\n')
    with pytest.raises(ConfigError, match="not a requirement"):
        load(f)


def test_merge_shards_equals_whole() -> None:
    def cell(t: str, s: str, verdict: Verdict = Verdict.COMPATIBLE) -> CellResult:
        cases = [CaseResult(f"{t}-{s}-{i}", Status.PASSED, 0.1) for i in range(3)] if verdict != Verdict.NOT_RUN else []
        return CellResult(t, s, verdict, cases)

    keys = [(t, s) for t in ("n", "rv") for s in ("x", "y", "z")]
    whole = Run(
        "w",
        "2026",
        targets=[TargetInfo("n", "native"), TargetInfo("rv", "chroot")],
        cells=[cell(t, s) for t, s in keys],
    )
    shards = []
    for k in range(3):
        mine = [key for i, key in enumerate(sorted(keys)) if i % 3 == k]
        shards.append(Run(f"s{k}", f"2026-0{k}", targets=whole.targets, cells=[cell(t, s) for t, s in mine]))
    merged = merge_runs(shards)

    def flat(r: Run) -> list[tuple[str, str, str, str]]:
        return sorted((c.target, c.suite, k.name, k.status.value) for c in r.cells for k in c.cases)

    assert flat(merged) == flat(whole)
    with pytest.raises(ConfigError, match="shards must not overlap"):
        merge_runs([shards[0], shards[0]])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p99_ms", True),
        ("mp_spawn_pool_s", True),
        ("server_startup_s", True),
        ("tcp_echo_mb_per_s", False),  # ends in "_s", but a rate: more is better
        ("sha256_mb_per_s", False),
        ("mlp_offline_qps", False),
        ("samples_per_sec", False),
        ("max_abs_err", None),
    ],
)
def test_metric_direction(key: str, expected: bool | None) -> None:
    from harness.history import lower_is_better

    assert lower_is_better(key) is expected
