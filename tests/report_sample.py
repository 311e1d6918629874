"""Runs made by hand for the report tests: a realistic one, a hostile one and a big one."""

from __future__ import annotations

import random
from typing import Any

from harness.model import (
    CaseResult,
    CellResult,
    ProjectDeps,
    Run,
    Status,
    TargetFacts,
    TargetInfo,
    Verdict,
    verdict_for,
)
from harness.records import CaseChange, Comparison, RunSummary

#: Text that must never become markup, script, or break the page.
EVIL = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> ]]> \x00\x1b[31mred\x1b[0m \udcff "\''

TARGETS = {
    "native": ("native", "x86_64", "native"),
    "debian-trixie-riscv64": ("chroot", "riscv64", "qemu-user"),
    "debian-trixie-rv64-vm": ("qemu-vm", "riscv64", "qemu-system"),
    "openeuler-24.03-riscv64": ("docker", "riscv64", "qemu-user"),
}
SLOWDOWN = {"native": 1.0, "debian-trixie-riscv64": 9.0, "debian-trixie-rv64-vm": 22.0, "openeuler-24.03-riscv64": 11.0}
SUITES = ["platform", "numpy", "onnxruntime", "torch", "sklearn", "serving"]


def facts(target: str) -> TargetFacts:
    _, arch, emulation = TARGETS[target]
    rv = arch == "riscv64"
    euler = "openeuler" in target
    return TargetFacts(
        arch=arch,
        isa="rv64imafdcv_zicsr_zifencei_zba_zbb_zbs" if rv else "x86-64-v3",
        extensions=["i", "m", "a", "f", "d", "c", "v", "zba", "zbb", "zbs"] if rv else ["avx", "avx2", "fma", "sse4_2"],
        cpu_model="rv64,v=true,vlen=256" if rv else "",
        os_id="openEuler" if euler else "debian",
        os_name="openEuler 24.03 (LTS-SP1)" if euler else "Debian GNU/Linux 13 (trixie)",
        os_version="24.03" if euler else "13",
        kernel="6.12.9-riscv64" if emulation == "qemu-system" else "6.1.0-28-amd64",
        libc="glibc 2.38" if euler else "glibc 2.41",
        python="3.11.6" if euler else "3.13.5",
        emulation=emulation,
        packages={"numpy": "2.2.4", "onnxruntime": "1.21.0", "torch": "2.6.0", "scikit-learn": "1.6.1"},
        extra={"qemu": "qemu-riscv64 9.2.0"} if rv else {"cpu_count": "2"},
    )


def sample_run(run_id: str = "20261129-0900") -> Run:
    """Six suites on four targets with failures, known issues, flaky cases and latency metrics."""
    rnd = random.Random(7)
    cells = []
    for target in TARGETS:
        rv = target != "native"
        for suite in SUITES:
            if target == "debian-trixie-rv64-vm" and suite == "torch":
                cells.append(
                    CellResult(
                        target,
                        suite,
                        Verdict.INFRA_ERROR,
                        [],
                        wall=900.0,
                        attempts=2,
                        message="qemu-system-riscv64 stopped answering over SSH after 900 s (retried once).",
                    )
                )
                continue
            cases = []
            for i in range(12):
                base = rnd.uniform(0.002, 0.4)
                c = CaseResult(f"test_{suite}.py::test_case_{i:02d}", Status.PASSED, base * SLOWDOWN[target])
                if suite == "serving" and i < 3:
                    conc = 2**i
                    lat = 4.0 * SLOWDOWN[target] * (1 + i)
                    c.metrics = {
                        "concurrency": conc,
                        "requests": 400,
                        "latency_p50_ms": round(lat, 2),
                        "latency_p90_ms": round(lat * 1.7, 2),
                        "latency_p99_ms": round(lat * 2.9, 2),
                        "throughput_rps": round(1000 * conc / lat, 1),
                    }
                if rv and suite == "numpy" and i == 3:
                    c.status = Status.FAILED
                    c.message = "AssertionError: float64 matmul differs from golden by 3.2e-05 (tolerance 1e-06)"
                    c.known_issue = "OpenBLAS RVV kernel rounding <https://github.com/OpenMathLib/OpenBLAS/issues/4820>"
                if rv and suite == "onnxruntime" and i in (5, 6):
                    c.status = Status.CRASHED if i == 5 else Status.FAILED
                    sigill = "died (SIGILL): illegal instruction in libonnxruntime.so"
                    c.message = sigill if i == 5 else "E   assert 0.93 > 0.98"
                    c.output = "2026-11-29 09:12:01 [W:onnxruntime] vector extension probe failed\n" * 3
                if suite == "platform" and i == 7 and target == "openeuler-24.03-riscv64":
                    c.flaky = True
                    c.message = "flaky: failed, then passed on re-run 1. First failure:\nConnectionResetError"
                if suite == "sklearn" and i == 11:
                    c.status = Status.SKIPPED
                    c.message = "Skipped: needs scipy >= 1.14"
                cases.append(c)
            cells.append(CellResult(target, suite, verdict_for(cases), cases, wall=sum(c.duration for c in cases) + 3))
    return Run(
        run_id=run_id,
        started="2026-11-29T09:00:00+00:00",
        finished="2026-11-29T09:41:27+00:00",
        leapfrog_version="0.3.0",
        host="ci-runner-7",
        argv=["leapfrog", "run", "--suite", "all"],
        baseline="native",
        targets=[
            TargetInfo(name, kind, description=f"{name} ({emu})", arch=arch, facts=facts(name))
            for name, (kind, arch, emu) in TARGETS.items()
        ],
        cells=cells,
    )


def sample_comparison(run: Run) -> Comparison:
    return Comparison(
        base_run_id="20261128-0900",
        run_id=run.run_id,
        changes=[
            CaseChange(
                "debian-trixie-riscv64",
                "onnxruntime",
                "test_onnxruntime.py::test_case_05",
                "new-failure",
                "passed",
                "crashed",
            ),
            CaseChange(
                "debian-trixie-riscv64", "sklearn", "test_sklearn.py::test_case_02", "fixed", "failed", "passed"
            ),
            CaseChange(
                "debian-trixie-riscv64", "torch", "test_torch.py::test_case_04", "slower", "1.210s", "2.050s", 1.69
            ),
            CaseChange(
                "native", "serving", "test_serving.py::test_case_01 [latency_p99_ms]", "slower", "11.6", "16.2", 1.4
            ),
            CaseChange("native", "platform", "test_platform.py::test_case_09", "faster", "0.400s", "0.200s", 0.5),
        ],
    )


def sample_history(run: Run, runs: int = 8) -> list[RunSummary]:
    out = []
    for i in range(runs):
        per = {}
        for t in TARGETS:
            total = 72 if t != "debian-trixie-rv64-vm" else 60
            passed = total - (6 - i % 3 if t != "native" else i % 2)
            per[t] = (passed, total, 20.0 * SLOWDOWN[t] * (1 + 0.05 * (i % 4)))
        out.append(RunSummary(run_id=f"2026112{i}-0900", started=f"2026-11-2{i}T09:00:00+00:00", per_target=per))
    return out


def hostile_run() -> Run:
    """Every string a target can send is hostile."""

    def cases() -> list[CaseResult]:
        return [
            CaseResult(
                f"t.py::test_{EVIL}",
                Status.FAILED,
                0.2,
                message=EVIL,
                output=EVIL,
                metrics={f"{EVIL}_p50_ms": 1.0, f"{EVIL}_p99_ms": 2.0, EVIL: EVIL},
            ),
            CaseResult(
                "t.py::test_known", Status.FAILED, 0.1, message=EVIL, known_issue=f"{EVIL} <javascript:alert(1)>"
            ),
            CaseResult("t.py::test_known_link", Status.FAILED, 0.1, known_issue=f"{EVIL} <https://example.org/i/1>"),
            CaseResult("t.py::test_ok", Status.PASSED, 0.1, metrics={"p50_ms": 1.5, "p90_ms": 2.5, "p99_ms": 4.0}),
        ]

    evil_facts = TargetFacts(
        arch=EVIL,
        isa=EVIL,
        extensions=[EVIL],
        cpu_model=EVIL,
        os_name=EVIL,
        kernel=EVIL,
        libc=EVIL,
        python=EVIL,
        emulation=EVIL,
        packages={EVIL: EVIL},
        extra={EVIL: EVIL},
    )
    return Run(
        run_id=f"r-{EVIL}",
        started="2026-11-29T00:00:00+00:00",
        leapfrog_version=EVIL,
        host=EVIL,
        argv=["leapfrog", EVIL],
        baseline="native",
        targets=[
            TargetInfo("native", "native", description=EVIL, facts=TargetFacts(arch="x86_64")),
            TargetInfo(f"rv{EVIL}", "chroot", description=EVIL, facts=evil_facts),
            TargetInfo(f"dead{EVIL}", "chroot", description=EVIL, error=EVIL),
        ],
        cells=[
            CellResult("native", f"s{EVIL}", Verdict.PARTIAL, cases(), wall=2.0, log=EVIL),
            CellResult(f"rv{EVIL}", f"s{EVIL}", Verdict.PARTIAL, cases(), wall=20.0, log=EVIL, message=EVIL),
            CellResult(f"dead{EVIL}", f"s{EVIL}", Verdict.INFRA_ERROR, [], message=EVIL),
        ],
        projects=[hostile_project_deps()],
    )


def hostile_project_deps() -> ProjectDeps:
    """A --project's dependency table where every text (from PyPI, an index, the project) is hostile."""
    offer = {"package": EVIL, "version": EVIL, "fits": True, "url": EVIL, "sha256": EVIL, "note": EVIL}
    requirement = {"requirement": EVIL, "name": EVIL, "choice": EVIL}
    column: dict[str, Any] = dict.fromkeys(("target", "distro", "release", "arch", "python", "index_error"), EVIL)
    column["not_run"] = EVIL
    column["index"] = {"url": EVIL, "date": EVIL, "fetched": EVIL, "verified": EVIL}
    column["requirements"] = [
        {**requirement, "offers": [{**offer, "source": "debian"}, {**offer, "source": "pypi-wheel"}]},
        {**requirement, "name": f"2{EVIL}", "offers": [{**offer, "source": "pypi-sdist"}, {**offer, "source": EVIL}]},
    ]
    return ProjectDeps(f"project:{EVIL}", EVIL, EVIL, [column, {**column, "target": f"rv{EVIL}", "index": None}])


def hostile_comparison(run: Run) -> Comparison:
    rv, suite = f"rv{EVIL}", f"s{EVIL}"
    return Comparison(
        base_run_id=f"base-{EVIL}",
        run_id=run.run_id,
        changes=[
            CaseChange(rv, suite, f"t.py::test_{EVIL}", "new-failure", EVIL, EVIL),
            CaseChange(rv, suite, f"t.py::test_ok [{EVIL}]", "slower", EVIL, EVIL, 2.0),
            CaseChange(rv, suite, EVIL, EVIL, EVIL, EVIL),
        ],
    )


def hostile_history() -> list[RunSummary]:
    return [
        RunSummary(f"h{i}-{EVIL}", f"2026-11-2{i}T00:00:00{EVIL}", {f"rv{EVIL}": (i, 4, 1.0 + i), EVIL: (1, 2, 3.0)})
        for i in range(3)
    ]


def big_run(cases_per_cell: int, targets: int = 4, suites: int = 5, *, output: str = "") -> Run:
    """``targets`` x ``suites`` cells of ``cases_per_cell`` cases; a few percent fail, a few carry metrics."""
    names = [f"target-{t}" for t in range(targets)]
    cells = []
    for t, target in enumerate(names):
        for s in range(suites):
            cases = []
            for i in range(cases_per_cell):
                status = Status.FAILED if i % 37 == 5 and t else Status.PASSED
                c = CaseResult(
                    f"tests/test_mod{i % 50}.py::test_case[{i}]",
                    status,
                    0.001 * (1 + i % 17) * (1 + 4 * t),
                    message="assert x == y" if status is Status.FAILED else "",
                    output=output if status is Status.FAILED else "",
                )
                if i % 101 == 7:
                    c.metrics = {"p50_ms": 1.0 + t, "p90_ms": 2.0 + t, "p99_ms": 3.0 + t, "rows": i}
                if i % 211 == 9 and status is Status.FAILED:
                    c.known_issue = "slow RVV path <https://example.org/issues/9>"
                cases.append(c)
            cells.append(CellResult(target, f"suite-{s}", verdict_for(cases), cases, wall=60.0))
    return Run(
        run_id="big",
        started="2026-11-29T00:00:00+00:00",
        finished="2026-11-29T03:00:00+00:00",
        baseline="target-0",
        targets=[
            TargetInfo(n, "chroot", facts=TargetFacts(arch="riscv64" if i else "x86_64")) for i, n in enumerate(names)
        ],
        cells=cells,
    )
