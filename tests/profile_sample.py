"""A hand-made run of one image under two ISA profiles (rva20, rva23) beside native, for the profile comparison.

Used by the unit tests of :mod:`harness.report.profiles` and by the browser test.
"""

from __future__ import annotations

from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict, verdict_for

IMAGE = "debian-trixie-riscv64-3e14d638ce15deb1"
RVA20 = "debian-trixie-riscv64-rva20"
RVA23 = "debian-trixie-riscv64-rva23"
RVA20_CPU = "rv64i,m=true,a=true,f=true,d=true,c=true,zicsr=true,zifencei=true"


def _riscv(cpu: str, isa: str, blas: str, simd: str) -> TargetFacts:
    return TargetFacts(
        arch="riscv64",
        isa=isa,
        cpu_model=cpu,
        emulation="qemu-user",
        extra={"qemu_version": "10.0.13", "qemu_cpu": cpu, "blas_runtime": blas, "numpy_simd": simd},
    )


def profile_run(*, case_name: str = "test_fft.py::test_rfft", profile_b: str = RVA23) -> Run:
    """numpy on native, rva20 and rva23; platform on the two profiles, rva20's an infra-error.

    numpy: matmul and svd pass everywhere (rva20 twice as slow as rva23, native ten
    times faster than rva23); ``case_name`` passes on rva20 and native but fails on
    rva23; test_rvv is skipped on rva20 and passes on rva23 (native lacks it).
    matmul's max_abs_err is 1e-7 on rva20 and 2e-7 on rva23, its median_ms 50 and 25;
    svd's mismatches are 0 on both.
    """
    numpy = {
        "native": [
            CaseResult("test_linalg.py::test_matmul", Status.PASSED, 0.125, metrics={"max_abs_err": 0.0}),
            CaseResult("test_linalg.py::test_svd", Status.PASSED, 0.25, metrics={"mismatches": 0}),
            CaseResult(case_name, Status.PASSED, 0.05),
        ],
        RVA20: [
            CaseResult(
                "test_linalg.py::test_matmul", Status.PASSED, 2.0, metrics={"max_abs_err": 1e-7, "median_ms": 50.0}
            ),
            CaseResult("test_linalg.py::test_svd", Status.PASSED, 4.0, metrics={"mismatches": 0}),
            CaseResult(case_name, Status.PASSED, 1.0),
            CaseResult("test_vector.py::test_rvv", Status.SKIPPED, 0.01, message="no V extension"),
        ],
        profile_b: [
            CaseResult(
                "test_linalg.py::test_matmul", Status.PASSED, 1.0, metrics={"max_abs_err": 2e-7, "median_ms": 25.0}
            ),
            CaseResult("test_linalg.py::test_svd", Status.PASSED, 2.0, metrics={"mismatches": 0.0}),
            CaseResult(case_name, Status.FAILED, 1.5, message="AssertionError: rfft differs"),
            CaseResult("test_vector.py::test_rvv", Status.PASSED, 0.5),
        ],
    }
    cells = [
        CellResult(t, "numpy", verdict_for(cases), cases, wall=sum(c.duration for c in cases))
        for t, cases in numpy.items()
    ]
    cells.append(CellResult(RVA20, "platform", Verdict.INFRA_ERROR, [], message="qemu-riscv64 was killed"))
    cells.append(
        CellResult(
            profile_b, "platform", Verdict.COMPATIBLE, [CaseResult("test_os.py::test_uname", Status.PASSED, 0.3)]
        )
    )
    return Run(
        run_id="20261201-1000",
        started="2026-12-01T10:00:00+00:00",
        finished="2026-12-01T10:05:00+00:00",
        baseline="native",
        targets=[
            TargetInfo("native", "native", facts=TargetFacts(arch="x86_64", emulation="native")),
            TargetInfo(
                RVA20,
                "chroot",
                image=IMAGE,
                facts=_riscv(RVA20_CPU, "rv64imafdc", "not OpenBLAS (reference BLAS)", "not found RVV"),
            ),
            TargetInfo(
                profile_b,
                "chroot",
                image=IMAGE,
                facts=_riscv(
                    "rva23u64",
                    "rv64imafdcv_zba_zbb_zbs_zicond",
                    "OpenBLAS 0.3.29 DYNAMIC_ARCH NO_AFFINITY RISCV64_ZVL128B MAX_THREADS=64"
                    "; core RISCV64_ZVL128B; 2 threads",
                    "found RVV",
                ),
            ),
            # Another image with one CPU model: never a group of its own.
            TargetInfo(
                "openeuler-docker", "docker", image="openeuler:24.03", facts=_riscv("rva23u64", "rv64gc", "", "")
            ),
        ],
        cells=cells,
    )
