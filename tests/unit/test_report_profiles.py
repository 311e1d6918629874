"""The profile comparison of the report: one image under several CPU models, compared case by case."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.model import CaseResult, CellResult, Status, TargetFacts, TargetInfo, Verdict
from harness.report import profiles as prof
from harness.report.html import render_html
from harness.report.targets import target_views
from tests.profile_sample import IMAGE, RVA20, RVA20_CPU, RVA23, profile_run
from tests.report_sample import EVIL, sample_run


def test_no_group_when_no_image_runs_under_two_cpu_models(tmp_path: Path) -> None:
    run = sample_run()  # four targets, no shared image
    assert prof.profile_groups(run) == []
    # Two targets on one image with the same CPU model are not profiles either.
    same = profile_run()
    assert same.targets[2].facts is not None
    same.targets[2].facts.cpu_model = RVA20_CPU
    assert prof.profile_groups(same) == []
    html = render_html(run, tmp_path).read_text()
    assert 'id="profiles"' not in html
    assert 'href="#profiles"' not in html


def test_the_group_names_its_image_profiles_and_reference() -> None:
    [group] = prof.profile_groups(profile_run())  # openeuler-docker's image has one model: no group
    assert group.image == IMAGE
    assert group.reference == "native"
    assert [(p.target, p.cpu_model, p.qemu) for p in group.profiles] == [
        (RVA20, RVA20_CPU, "10.0.13"),
        (RVA23, "rva23u64", "10.0.13"),
    ]
    assert group.profiles[1].blas.endswith("; core RISCV64_ZVL128B; 2 threads")
    assert group.profiles[0].simd == "not found RVV"
    assert group.notes == ["platform on debian-trixie-riscv64-rva20: infra-error, no cases to compare"]


def test_cases_whose_outcome_differs_with_each_profiles_status() -> None:
    links: list[tuple[str, str, str]] = []

    def href(target: str, suite: str, case: str) -> str:
        links.append((target, suite, case))
        return f"#{target}-{case}"

    [group] = prof.profile_groups(profile_run(), href)
    assert group.outcomes_total == 2
    fft, rvv = group.outcomes
    assert (fft.suite, fft.case, fft.reference) == ("numpy", "test_fft.py::test_rfft", "passed")
    assert fft.statuses == [
        ("passed", f"#{RVA20}-test_fft.py::test_rfft"),
        ("failed", f"#{RVA23}-test_fft.py::test_rfft"),
    ]
    assert (rvv.case, [s for s, _ in rvv.statuses], rvv.reference) == (
        "test_vector.py::test_rvv",
        ["skipped", "passed"],
        "",
    )
    # platform: rva20 has no cases, so rva23's one case is compared with nothing and is not a difference.
    assert all(r.suite == "numpy" for r in group.outcomes)
    assert (RVA23, "numpy", "test_fft.py::test_rfft") in links


def test_a_case_one_profile_lacks_is_absent_there() -> None:
    run = profile_run()
    cell = run.cell(RVA20, "numpy")
    assert cell is not None
    cell.cases = [c for c in cell.cases if c.name != "test_vector.py::test_rvv"]
    [group] = prof.profile_groups(run)
    rvv = next(r for r in group.outcomes if r.case == "test_vector.py::test_rvv")
    assert rvv.statuses == [("absent", ""), ("passed", "")]


def test_numbers_that_differ_golden_errors_first_with_the_relative_spread() -> None:
    [group] = prof.profile_groups(profile_run())
    rows = [(m.case, m.metric, m.kind, m.values, m.spread) for m in group.metrics]
    # svd's mismatches are 0 and 0.0: equal numbers, not listed.
    assert rows == [
        ("test_linalg.py::test_matmul", "max_abs_err", "golden error", ["1.000e-07", "2.000e-07"], "50 %"),
        ("test_linalg.py::test_matmul", "median_ms", "timing", ["50", "25"], "50 %"),
    ]
    assert group.metrics_total == 2
    assert group.metric_counts == {"golden error": 1, "value": 0, "timing": 1}


def test_speed_per_suite_against_the_first_profile_and_native() -> None:
    [group] = prof.profile_groups(profile_run())
    [numpy] = group.speed  # platform: only one profile has cases
    # matmul and svd passed on both profiles and on native; the fft case failed on rva23.
    assert numpy.cases == 2
    assert numpy.totals == ["6.0 s", "3.0 s"]
    assert numpy.medians == ["3.0 s", "1.5 s"]
    assert numpy.vs_first == ["×1.00", "×0.50"]
    assert numpy.vs_reference == ["×16.0", "×8.00"]
    assert (numpy.reference_total, numpy.reference_median) == ("375 ms", "188 ms")
    assert numpy.spread == f"{RVA20} ×2.00 over {RVA23}"


def test_speed_without_a_reference() -> None:
    run = profile_run()
    run.cells = [c for c in run.cells if c.target != "native"]
    run.targets = run.targets[1:]
    [group] = prof.profile_groups(run)
    assert group.reference == ""
    [numpy] = group.speed
    assert numpy.cases == 2
    assert numpy.vs_reference == ["", ""]
    assert numpy.reference_total == ""


def test_rows_are_capped_and_the_rest_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prof, "MAX_OUTCOME_ROWS", 3)
    monkeypatch.setattr(prof, "MAX_METRIC_ROWS", 4)
    run = profile_run()
    for target, status in ((RVA20, Status.PASSED), (RVA23, Status.FAILED)):
        cell = run.cell(target, "numpy")
        assert cell is not None
        cell.cases += [
            CaseResult(
                f"t.py::test_{i}", status, 0.1, metrics={"max_rel_err": i * (2 if status is Status.FAILED else 1)}
            )
            for i in range(1, 501)
        ]
    [group] = prof.profile_groups(run)
    assert (len(group.outcomes), group.outcomes_total) == (3, 502)
    assert (len(group.metrics), group.metrics_total) == (4, 502)
    assert [m.metric for m in group.metrics] == ["max_abs_err", "max_rel_err", "max_rel_err", "max_rel_err"]


def test_metric_kinds_and_spread() -> None:
    assert prof.metric_kind("logits.max_abs_err") == "golden error"
    assert prof.metric_kind("grad.net.0.weight.max_rel_err") == "golden error"
    assert prof.metric_kind("bernoulli.mismatches") == "golden error"
    assert prof.metric_kind("libm_worst_ulp") == "golden error"
    assert prof.metric_kind("p90_ms") == "timing"
    assert prof.metric_kind("tcp_echo_mb_per_s") == "timing"
    assert prof.metric_kind("gflops") == "timing"
    assert prof.metric_kind("vlen_bits") == "value"
    assert prof.relative_spread([1.0, 1.0]) == 0.0
    assert prof.relative_spread([0, 0.0]) == 0.0
    assert prof.relative_spread([-1.0, 1.0]) == 2.0
    assert prof.relative_spread([4, 3.0, 2]) == 0.5
    assert prof.relative_spread([1.0, "inf"]) is None
    assert prof.relative_spread([True, 1]) is None


def test_a_text_metric_that_differs_is_listed_without_a_spread() -> None:
    run = profile_run()
    for target, value in ((RVA20, "ENOSYS"), (RVA23, "ok")):
        cell = run.cell(target, "numpy")
        assert cell is not None
        cell.cases[1].metrics["riscv_hwprobe"] = value
    [group] = prof.profile_groups(run)
    row = next(m for m in group.metrics if m.metric == "riscv_hwprobe")
    assert (row.kind, row.values, row.spread) == ("value", ["ENOSYS", "ok"], "")


def test_the_section_in_the_page_names_both_profiles_and_is_escaped(tmp_path: Path) -> None:
    evil_case = f"test_fft.py::test_{EVIL}"
    run = profile_run(case_name=evil_case, profile_b=f"rva23{EVIL}")
    html = render_html(run, tmp_path).read_text()
    assert 'href="#profiles"' in html
    section = html[html.index('<h2 id="profiles">') : html.index('<h2 id="targets">')]
    assert RVA20 in section
    assert "rva23&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in section
    assert "<script" not in section
    assert "<img" not in section
    assert "\x1b" not in section  # ANSI colours dropped
    assert "\\x00red \\xdcff" in section  # control characters and a lone surrogate made visible
    assert "RISCV64_ZVL128B" in section
    assert re.search(r"×2\.00 over rva23", section)
    assert "×16.0" in section
    assert "375 ms" in section
    assert "1.000e-07" in section
    assert "50 %" in section
    # Each status links to the case row on the one-page report.
    assert section.count('<span class="badge s-failed">failed</span>') == 1
    assert 'href="#' in section


def test_the_section_says_how_many_rows_were_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prof, "MAX_OUTCOME_ROWS", 1)
    html = render_html(profile_run(), tmp_path).read_text()
    assert "2 cases — the first 1 are listed, 1 left out" in html


def test_profile_cells_of_a_split_report_link_to_cell_pages(tmp_path: Path) -> None:
    render_html(profile_run(), tmp_path, inline_max_cases=0, page_size=2)
    html = (tmp_path / "index.html").read_text()
    section = html[html.index('<h2 id="profiles">') :]
    assert re.search(r'href="cells/[^"]+\.html#[^"]+"><span class="badge s-failed">', section)


def test_the_target_table_shows_what_the_stack_does_with_vectors() -> None:
    run = profile_run()
    facts = run.targets[2].facts
    assert facts is not None
    facts.extra.update(
        {"numpy_blas": "blas 3.12.1", "threadpoolctl": f"no thread pools {EVIL}", "isa_source": "hwprobe"}
    )
    views = target_views(run, [t.name for t in run.targets], [], {})
    rows = dict(views[2].facts)
    assert rows["BLAS numpy was built with"] == "blas 3.12.1"
    assert rows["BLAS at run time"].startswith("OpenBLAS 0.3.29")
    assert rows["numpy SIMD"] == "found RVV"
    assert "\x1b" not in rows["threadpoolctl"]
    extra = dict(views[2].extra)
    assert "isa_source" in extra
    assert "blas_runtime" not in extra
    assert "numpy_simd" not in extra


def test_a_group_keeps_at_most_max_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prof, "MAX_PROFILES", 2)
    run = profile_run()
    extra = dataclasses.replace(run.targets[1], name="vlen512", facts=TargetFacts(cpu_model="rva23u64,vlen=512"))
    run.targets.append(extra)
    run.cells.append(CellResult("vlen512", "numpy", Verdict.COMPATIBLE, [CaseResult("t.py::a", Status.PASSED, 1.0)]))
    [group] = prof.profile_groups(run)
    assert [p.target for p in group.profiles] == [RVA20, RVA23]
    assert group.profiles_left_out == 1
    assert isinstance(run.targets[-1], TargetInfo)
