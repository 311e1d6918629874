"""The results channel is untrusted input: any line, value or file a target produces is at
worst a skipped line or an infra-error for that one cell, and the run still ends with
results.json, JUnit XML and index.html."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.report
from harness import cli, probe_lines
from harness import runner as runner_mod
from harness.cell import CellRunner
from harness.config import TargetConfig, load_suite
from harness.errors import TargetError
from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.plan import make_plan
from harness.probe_lines import parse_probe_lines
from harness.readback import NotRegularFile, read_regular
from harness.report import ReportError, render_all
from harness.runner import Runner, RunOptions
from harness.targets.base import Completed
from harness.targets.native import NativeTarget

BIG_INT = "1" + "0" * 400  # an int that overflows float()


def case_line(name: str, **fields: Any) -> str:
    """A case line; ``fields`` values are raw JSON text, so non-standard tokens (NaN) pass through."""
    body = ", ".join(f'"{k}": {v}' for k, v in {"status": '"passed"', "duration": "0.5", **fields}.items())
    return f'{{"event": "case", "name": "{name}", {body}}}'


HOSTILE_LINES = [
    case_line("t.py::big_int_duration", duration=BIG_INT),
    case_line("t.py::inf_duration", duration="1e999"),
    case_line("t.py::nan_duration", duration="NaN"),
    case_line("t.py::neg_inf_duration", duration="-Infinity"),
    case_line("t.py::string_inf_duration", duration='"inf"'),
    case_line("t.py::list_duration", duration="[1, 2]"),
    case_line(
        "t.py::odd_metrics",
        metrics='{"nan_ms": NaN, "inf_ms": Infinity, "ninf_ms": -Infinity, "big": ' + BIG_INT + ", "
        '"p50_ms": 1e308, "p90_ms": -1e308, "ok_ms": 2.5, "n": 3, "flag": true, "nested": {"a": [1]}, '
        '"none": null, "text": "fine"}',
    ),
    case_line("t.py::odd_status", status='{"x": 1}', message="[1, 2]", output="null"),
    '{"event": "facts", "facts": {"arch": ["x86_64"], "isa": 5, "extensions": {"a": 1}, "packages": [1, 2], '
    '"extra": "not a table", "kernel": null, "python": NaN, "os_name": {"a": "b"}}}',
    "[" * 200_000,  # nested deeper than the JSON parser goes: RecursionError
    "{" * 200_000,
    '{"event": "collected", "names": "not a list"}',
    '{"event": "case", "name": ' + BIG_INT + ', "status": "failed"}',
    "\udcff\udcfe not json",
    "x" * ((1 << 20) + 1),  # longer than any valid line
    "",
    "null",
    "[]",
    '"just a string"',
]


def test_hostile_lines_are_parsed_or_skipped_never_raised() -> None:
    out = parse_probe_lines(HOSTILE_LINES)
    got = {c.name: c for c in out.cases}
    for name in ("big_int_duration", "inf_duration", "nan_duration", "neg_inf_duration", "string_inf_duration"):
        assert got[f"t.py::{name}"].duration == 0.0, name
    metrics = got["t.py::odd_metrics"].metrics
    # NaN, the infinities, a 400-digit int and numbers past the uint64 range are dropped; the rest kept.
    assert metrics == {"ok_ms": 2.5, "n": 3, "flag": True, "nested": "{'a': [1]}", "none": "None", "text": "fine"}
    assert all(not isinstance(v, float) or math.isfinite(v) for c in out.cases for v in c.metrics.values())
    assert got["t.py::odd_status"].status is Status.ERROR
    assert got[BIG_INT].status is Status.FAILED  # a number as a name is just text
    # Every dropped value is named, and the 400-digit int is described, not printed.
    text = "\n".join(out.notes)
    assert "big_int_duration" in text
    assert "an integer of 401 digits" in text
    assert '"nan_ms"' in text
    assert BIG_INT not in text
    assert out.facts is not None
    facts = TargetFacts.from_dict(out.facts)
    assert facts.isa == "5"
    assert facts.arch == ""
    assert facts.extensions == []
    assert facts.packages == {}
    assert facts.extra == {}
    assert facts.python == ""


def test_int64_and_uint64_extremes_are_kept() -> None:
    """INT64_MIN is what x86 gives for a NaN cast to int: the very difference the platform suite records."""
    line = {"event": "case", "name": "t.py::test_cast", "status": "passed", "duration": 0.1,
            "metrics": {"int64_min": -(2**63), "int64_max": 2**63 - 1, "uint64_max": 2**64 - 1, "too_big": 2**64 + 1}}
    out = parse_probe_lines([json.dumps(line)])
    metrics = out.cases[0].metrics
    assert metrics == {"int64_min": -(2**63), "int64_max": 2**63 - 1, "uint64_max": 2**64 - 1}


def test_facts_of_any_shape_become_typed_fields() -> None:
    for raw in (None, [], "x", 5, {"extra": None}, {"packages": {"a": None, "b": 1.5, "c": [1]}}):
        facts = TargetFacts.from_dict(raw)
        facts.extra["qemu"] = "8.2"  # what enrich_facts of chroot and docker do
        facts.extra.setdefault("host", "h")  # and native
        assert isinstance(facts.packages, dict)
    assert TargetFacts.from_dict({"packages": {"a": None, "b": 1.5, "c": [1]}}).packages == {"b": "1.5"}
    assert TargetFacts.from_dict({"extensions": ["v", 1, None, {"a": 1}, math.inf]}).extensions == ["v", "1"]
    assert TargetFacts.from_dict({"kernel": True, "libc": "x" * 10_000}).kernel == "true"
    assert len(TargetFacts.from_dict({"libc": "x" * 10_000}).libc) == 2000


def test_results_json_read_back_keeps_only_finite_numbers() -> None:
    case = CaseResult.from_dict(
        {"name": "a", "status": "passed", "duration": math.nan, "metrics": {"x": math.inf, "y": 10**400, "z": 1}}
    )
    assert case.duration == 0.0
    assert case.metrics == {"z": 1}
    cell = CellResult.from_dict({"target": "t", "suite": "s", "verdict": "compatible", "wall": 10**400})
    assert cell.wall == 0.0


# Hypothesis reports a failure through a mypy_extensions API that warns; the
# failure itself must show, not an INTERNALERROR about that warning.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=200),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(min_value=-(10**500), max_value=10**500)
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=30),
                lambda children: (
                    st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
                ),
                max_leaves=12,
            ).map(lambda v: json.dumps(v, allow_nan=True)),
            st.fixed_dictionaries(
                {"event": st.sampled_from(["case", "facts", "start", "collected", "end"])},
                optional={
                    "name": st.one_of(st.text(max_size=20), st.integers(), st.none()),
                    "status": st.one_of(st.sampled_from([s.value for s in Status]), st.integers()),
                    "duration": st.one_of(st.floats(), st.integers(min_value=-(10**400), max_value=10**400), st.text()),
                    "metrics": st.dictionaries(
                        st.text(max_size=8), st.one_of(st.floats(), st.integers(min_value=-(10**400)), st.text())
                    ),
                    "facts": st.dictionaries(
                        st.sampled_from(["arch", "extensions", "packages", "extra", "kernel"]),
                        st.one_of(
                            st.floats(), st.text(), st.lists(st.integers()), st.dictionaries(st.text(), st.none())
                        ),
                    ),
                    "names": st.one_of(st.lists(st.text(max_size=10)), st.integers()),
                },
            ).map(lambda v: json.dumps(v, allow_nan=True)),
        ),
        max_size=8,
    )
)
def test_any_json_ish_lines_parse_to_finite_typed_results(lines: list[str]) -> None:
    out = parse_probe_lines(lines)
    for c in out.cases:
        assert isinstance(c.status, Status)
        assert math.isfinite(c.duration)
        assert c.duration >= 0
        for v in c.metrics.values():
            assert isinstance(v, (bool, int, float, str))
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v)
                assert abs(v) <= 2**64
        json.dumps(c.to_dict(), allow_nan=False)  # strict JSON: no NaN or Infinity written
    if out.facts is not None:
        facts = TargetFacts.from_dict(out.facts)
        facts.extra["x"] = "y"
        json.dumps(facts.to_dict(), allow_nan=False)


class ForgedFactsTarget(NativeTarget):
    """A target whose Python answers the facts script with ``self.answer``."""

    answer = ""

    def run(
        self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> Completed:
        if argv[0] == self.config.python:
            return Completed(argv, 0, None, self.answer, "", 0.1)
        return super().run(argv, timeout=timeout, env=env, cwd=cwd)


def test_facts_nested_past_the_parser_are_a_target_error(native_config: TargetConfig) -> None:
    target = ForgedFactsTarget(native_config)
    target.answer = "[" * 100_000 + "\n"
    with pytest.raises(TargetError, match="facts script printed no JSON"):
        target.facts()


@pytest.mark.parametrize("answer", ["[1, 2]", '{"extra": "x", "packages": [1], "arch": {}}', "null"])
def test_facts_script_output_of_any_shape_gives_typed_facts(native_config: TargetConfig, answer: str) -> None:
    target = ForgedFactsTarget(native_config)
    target.answer = answer + "\n"
    facts = target.facts()
    assert facts.extra.get("host")  # enrich_facts worked on the coerced table
    assert facts.packages == {}
    assert facts.arch == ""


# ------------------------------------------------------------------ the file itself


def test_read_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "real").write_text("secret\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    for name, what in (("fifo", "FIFO"), ("dir", "directory"), ("link", "symbolic link")):
        done = threading.Event()

        def read(name: str = name, what: str = what, done: threading.Event = done) -> None:
            with pytest.raises(NotRegularFile, match=what):
                read_regular(tmp_path / name)
            done.set()

        worker = threading.Thread(target=read, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert done.is_set(), f"reading a {what} blocked or failed"
    with pytest.raises(NotRegularFile, match="character device"):
        read_regular("/dev/zero")  # never read: it would never end
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing")
    (tmp_path / "big").write_bytes(b"a\n" * 1000)
    assert read_regular(tmp_path / "big", limit=10) == (b"a\n" * 5, True)
    assert read_regular(tmp_path / "big", offset=1990) == (b"a\n" * 5, False)


REPLACE = """
import os

def test_a():
    pass

def test_b(metrics):
    metrics["x"] = 1

def test_zz_replace():
    path = os.environ["LEAPFROG_RESULTS"]
    os.unlink(path)
    {how}
"""

HOW = {
    "directory": "os.mkdir(path)",
    "FIFO": "os.mkfifo(path)",
    "symbolic link": "os.symlink({forged!r}, path)",
}


class CopyBackTarget(NativeTarget):
    """The host, reached like a container or VM: no host path, results come back through ``get()``."""

    def local_path(self, remote: str) -> Path | None:
        return None


@pytest.mark.parametrize(
    ("how", "copy_back"),
    [("directory", False), ("FIFO", False), ("symbolic link", False), ("directory", True), ("FIFO", True)],
    ids=["host-path-directory", "host-path-FIFO", "host-path-link", "get-directory", "get-FIFO"],
)
def test_results_file_replaced_by_the_suite_is_refused(
    tmp_path: Path, write_suite, native_config: TargetConfig, how: str, copy_back: bool, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    forged = tmp_path / "forged.jsonl"  # what a link would make the host read
    forged.write_text(json.dumps({"event": "case", "name": "forged::case", "status": "passed"}) + "\n")
    folder = write_suite("replace", {"test_r.py": REPLACE.format(how=HOW[how].format(forged=str(forged)))})
    if copy_back:
        monkeypatch.setattr(runner_mod, "make_target", lambda cfg, **_kw: CopyBackTarget(cfg))
    plan = make_plan([native_config], [load_suite(folder)])
    out = tmp_path / "out"
    run = Runner(plan, RunOptions(out=out, retries=0)).execute()
    (cell,) = run.cells
    names = {c.name for c in cell.cases}
    assert "forged::case" not in names
    assert cell.verdict is Verdict.INFRA_ERROR, cell.message
    assert "LEAPFROG_RESULTS" in cell.message
    if not copy_back or how == "directory":  # get() of a link or FIFO already refuses, in its own words
        assert f"is a {how}" in cell.message
    written = render_all(run, out)
    assert {p.name for p in written} == {"junit-native.xml", "index.html"}
    json.loads((out / "results.json").read_text())


def test_too_many_cases_keeps_the_first_and_is_infra_error(
    tmp_path: Path, write_suite, native_config: TargetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(probe_lines, "MAX_CASES", 10)
    body = "import pytest\n@pytest.mark.parametrize('i', range(40))\ndef test_many(i):\n    pass\n"
    folder = write_suite("many", {"test_m.py": body})
    run = Runner(make_plan([native_config], [load_suite(folder)]), RunOptions(out=tmp_path / "o")).execute()
    (cell,) = run.cells
    assert len(cell.cases) == 10
    assert cell.verdict is Verdict.INFRA_ERROR
    assert "more than 10 cases" in cell.message
    assert len((tmp_path / "o" / "cases.jsonl").read_text().splitlines()) <= 10


def test_results_over_the_byte_cap_keep_what_was_read(
    tmp_path: Path, write_suite, native_config: TargetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(probe_lines, "MAX_RESULTS_BYTES", 4000)
    body = "import pytest\n@pytest.mark.parametrize('i', range(60))\ndef test_many(i):\n    print('x' * 100)\n"
    folder = write_suite("big", {"test_b.py": body})
    run = Runner(make_plan([native_config], [load_suite(folder)]), RunOptions(out=tmp_path / "o")).execute()
    (cell,) = run.cells
    assert cell.verdict is Verdict.INFRA_ERROR
    assert 0 < len(cell.cases) < 60
    assert "more than 4,000 bytes" in cell.message


# ------------------------------------------------------------------ a whole hostile run on the real path

FORGER = """
import json, os

FORGED = {lines!r}

def test_ok(metrics):
    metrics["p50_ms"] = 1.0

def test_forge():
    with open(os.environ["LEAPFROG_RESULTS"], "a", encoding="utf-8", errors="surrogateescape") as f:
        for line in FORGED:
            f.write(line + "\\n")
"""


def test_hostile_lines_from_a_suite_end_in_a_full_report(
    tmp_path: Path, write_suite, native_config: TargetConfig
) -> None:  # type: ignore[no-untyped-def]
    """Every hostile line above, written by a real suite into its results file, goes through the
    runner's reading, parsing, facts, saving and rendering: the run ends with every file, all valid."""
    folder = write_suite("forger", {"test_f.py": FORGER.format(lines=HOSTILE_LINES)})
    out = tmp_path / "out"
    run = Runner(make_plan([native_config], [load_suite(folder)]), RunOptions(out=out)).execute()
    (cell,) = run.cells
    names = {c.name for c in cell.cases}
    assert {"test_f.py::test_ok", "test_f.py::test_forge", "t.py::big_int_duration", "t.py::odd_metrics"} <= names
    assert "an integer of 401 digits" in cell.message  # the dropped values are named on the cell
    facts = run.targets[0].facts
    assert facts is not None
    # The probe's own facts line comes last (taken beside the cases, written at the session's end): the
    # forged one (coerced field by field: test above) does not override it.
    assert facts.isa.startswith("x86-64")
    assert facts.emulation == "native"
    assert facts.extra.get("host")  # enrich_facts worked on the coerced table
    render_all(run, out)

    def no_constants(name: str) -> None:
        raise AssertionError(f"results.json holds {name}")

    saved = json.loads((out / "results.json").read_text(), parse_constant=no_constants)
    assert Run.from_dict(saved).case_count() == len(cell.cases)
    ET.parse(out / "junit-native.xml")
    assert (out / "index.html").stat().st_size > 0
    for line in (out / "cases.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=no_constants)


# ------------------------------------------------------------------ re-runs of a host-driven suite

HOST_FLAKY = """
from pathlib import Path

def test_flaky(target):
    marker = Path({marker!r})
    first = not marker.exists()
    marker.write_text("x")
    assert not first, "fails the first time only"
"""


class InsideOnlyTarget(NativeTarget):
    """A target whose inside is not the host: a pytest started in it cannot see host paths."""

    ran: list[list[str]]

    def run(
        self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> Completed:
        self.ran.append(argv)
        if "pytest" in argv:
            return Completed(argv, 4, None, "", "ERROR: file or directory not found", 0.1)
        return super().run(argv, timeout=timeout, env=env, cwd=cwd)


def test_reruns_of_a_host_driven_suite_run_on_the_host(
    tmp_path: Path, write_suite, native_config: TargetConfig
) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite(
        "hostflaky", {"test_h.py": HOST_FLAKY.format(marker=str(tmp_path / "seen"))}, toml='kind = "host-driven"\n'
    )
    (cell_plan,) = make_plan([native_config], [load_suite(folder)]).cells
    target = InsideOnlyTarget(native_config)
    target.ran = []
    events: list[str] = []
    result = CellRunner(
        target, cell_plan, RunOptions(out=tmp_path / "o", reruns=1), lambda kind, _data: events.append(kind)
    ).run()
    assert [a for a in target.ran if "pytest" in a] == []  # neither the first pass nor the re-run ran inside
    (case,) = result.cases
    assert case.status is Status.PASSED, result.log
    assert case.flaky
    assert events.count("case") == 1  # the re-run's result is not announced a second time


# ------------------------------------------------------------------ the report is never lost


def small_run() -> Run:
    return Run(
        run_id="r-untrusted",
        started="2026-01-01T00:00:00+00:00",
        baseline="native",
        targets=[TargetInfo("native", "native")],
        cells=[CellResult("native", "s", Verdict.COMPATIBLE, [CaseResult("t.py::a", Status.PASSED, 0.1)])],
    )


@pytest.mark.parametrize("broken", ["render_html", "write_junit"])
def test_one_part_failing_still_writes_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    def boom(*_a: object, **_k: object) -> Any:
        raise ValueError("cannot convert float NaN to integer")

    monkeypatch.setattr(harness.report, broken, boom)
    with pytest.raises(ReportError, match="NaN") as err:
        render_all(small_run(), tmp_path)
    kept = "junit-native.xml" if broken == "render_html" else "index.html"
    assert [p.name for p in err.value.written] == [kept]
    assert (tmp_path / kept).exists()
    assert "ValueError" in (tmp_path / "report-error.txt").read_text()


def _project(tmp_path: Path, write_suite) -> Path:  # type: ignore[no-untyped-def]
    write_suite("mini", {"test_m.py": "def test_a(metrics):\n    metrics['v'] = 1\n"})
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "native.toml").write_text('kind = "native"\n')
    return tmp_path


def test_a_broken_history_database_is_a_warning_not_a_lost_report(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    root = _project(tmp_path, write_suite)
    db = tmp_path / "bad.sqlite"
    db.write_text("this is not sqlite" * 100)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        cli.main, ["--root", str(root), "run", "-t", "native", "-s", "mini", "--out", str(out), "--db", str(db)]
    )
    assert r.exit_code == 0, r.output
    assert {"index.html", "junit-native.xml", "results.json"} <= {p.name for p in out.iterdir()}
    assert "not recorded in the history" in r.output
    assert "bad.sqlite" in r.output


def test_a_locked_history_database_is_recorded_after_the_report(
    tmp_path: Path, write_suite, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from harness import history

    root = _project(tmp_path, write_suite)
    out = tmp_path / "out"
    seen: list[bool] = []

    def locked(*_a: object, **_k: object) -> None:
        seen.append((out / "index.html").exists())
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(history, "record", locked)
    r = CliRunner().invoke(cli.main, ["--root", str(root), "run", "-t", "native", "-s", "mini", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert seen == [True]  # the report was on disk before the history was written
    assert "database is locked" in r.output


def test_a_report_part_that_fails_is_exit_2_with_the_rest_written(
    tmp_path: Path, write_suite, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from harness import history

    root = _project(tmp_path, write_suite)
    out = tmp_path / "out"
    before = len(history.run_ids())

    def boom(*_a: object, **_k: object) -> Any:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(harness.report, "render_html", boom)
    r = CliRunner().invoke(cli.main, ["--root", str(root), "run", "-t", "native", "-s", "mini", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "index.html" in r.output
    assert "Traceback" not in r.output
    assert (out / "junit-native.xml").exists()
    assert (out / "results.json").exists()
    assert len(history.run_ids()) == before + 1  # the run is in the history all the same
