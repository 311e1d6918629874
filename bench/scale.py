"""Scale of results: merge and render 50,000 cases x 4 targets; record them in the history.

Generates four shard folders (one per target, 5 suites x 10,000 cases each),
then times, in this process: merging them, writing JUnit XML for every target,
rendering the HTML report, and recording the run in a fresh SQLite history.
Peak memory is the process's maximum resident set size.

    python3 bench/scale.py [--cases-per-target 50000] [--targets 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import report
from harness import history
from harness.merge import merge_folders
from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.report import render_all


def make_shard(folder: Path, target: str, n: int, suites: int) -> None:
    per = n // suites
    statuses = [Status.PASSED] * 97 + [Status.FAILED, Status.SKIPPED, Status.XFAILED]
    cells = []
    for s in range(suites):
        cases = [
            CaseResult(
                name=f"test_mod{i % 50}.py::test_case_{i}[param{i % 7}]",
                status=statuses[i % len(statuses)],
                duration=0.001 * (i % 13 + 1) * (8 if target != "native" else 1),
                message="AssertionError: 1 != 2" if i % len(statuses) == 97 else "",
                metrics={"p50_ms": 1.5, "p99_ms": 4.0} if i % 1000 == 0 else {},
            )
            for i in range(per)
        ]
        cells.append(CellResult(target, f"suite{s}", Verdict.PARTIAL, cases, wall=per * 0.002))
    run = Run(
        run_id=f"shard-{target}",
        started="2026-11-29T00:00:00+00:00",
        finished="2026-11-29T01:00:00+00:00",
        baseline="native",
        targets=[TargetInfo(target, "chroot", facts=TargetFacts(arch="riscv64", python="3.13"))],
        cells=cells,
    )
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(run.to_dict()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases-per-target", type=int, default=50_000)
    ap.add_argument("--targets", type=int, default=4)
    args = ap.parse_args()
    names = ["native"] + [f"riscv64-{i}" for i in range(1, args.targets)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = []
        for t in names:
            make_shard(root / t, t, args.cases_per_target, 5)
            shards.append(root / t)
        t0 = time.monotonic()
        merged: Run = merge_folders(shards)
        t1 = time.monotonic()
        out = root / "merged"
        out.mkdir()
        (out / "results.json").write_text(json.dumps(merged.to_dict()))
        t2 = time.monotonic()
        written = render_all(merged, out)
        t3 = time.monotonic()
        history.record(merged, db=root / "h.sqlite")
        t4 = time.monotonic()
        index_kb = (out / "index.html").stat().st_size / 1024
        total_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the JUnit writer
    report(
        "scale",
        {
            "cases": args.cases_per_target * args.targets,
            "targets": args.targets,
            "merge_s": round(t1 - t0, 2),
            "results_json_s": round(t2 - t1, 2),
            "render_junit_html_s": round(t3 - t2, 2),
            "merge_and_render_s": round(t3 - t0, 2),
            "history_record_s": round(t4 - t3, 2),
            "files_written": len(written),
            "index_html_kb": round(index_kb),
            "report_total_mb": round(total_mb, 1),
            "peak_rss_mb": round(peak_mb),
            "peak_rss_junit_process_mb": round(child_mb),
        },
    )


if __name__ == "__main__":
    main()
