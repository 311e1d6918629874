"""Build and CPU facts numpy reports (BLAS, SIMD baseline and dispatch, long double), recorded as metrics."""

from __future__ import annotations

import numpy as np
from conftest import Metrics


def _config() -> dict:
    config: dict = np.show_config(mode="dicts")
    return config


def _runtime_features() -> dict[str, bool]:
    from numpy._core._multiarray_umath import __cpu_features__

    features: dict[str, bool] = __cpu_features__
    return features


def test_show_config(arch: str, metrics: Metrics) -> None:
    config = _config()
    deps = config["Build Dependencies"]
    for lib in ("blas", "lapack"):
        metrics[f"{lib}"] = str(deps[lib].get("name", "none"))
        metrics[f"{lib}_version"] = str(deps[lib].get("version", "?"))
        metrics[f"{lib}_found"] = bool(deps[lib].get("found", False))
    metrics["compiler"] = f"{config['Compilers']['c']['name']} {config['Compilers']['c']['version']}"
    host = config["Machine Information"]["host"]
    metrics["build_cpu"] = str(host["cpu"])
    try:
        import threadpoolctl

        pools = threadpoolctl.threadpool_info()
        metrics["blas_runtime"] = (
            ", ".join(f"{p['internal_api']}:{p['num_threads']}" for p in pools) or "single-threaded"
        )
    except ImportError:
        metrics["blas_runtime"] = "threadpoolctl not installed"
    # numpy must have been built for the machine it runs on.
    family = {"x86_64": "x86_64", "riscv64": "riscv64", "aarch64": "aarch64"}.get(arch, arch)
    assert host["family"] == family, f"numpy was built for {host['family']}, running on {arch}"


def test_simd(metrics: Metrics) -> None:
    simd = _config()["SIMD Extensions"]
    runtime = _runtime_features()
    baseline = list(simd.get("baseline", []))
    found = list(simd.get("found", []))
    not_found = list(simd.get("not found", []))
    metrics["simd_baseline"] = " ".join(baseline) or "none"
    metrics["simd_dispatch_found"] = " ".join(found) or "none"
    metrics["simd_dispatch_not_found"] = " ".join(not_found) or "none"
    metrics["cpu_features_supported"] = " ".join(sorted(k for k, v in runtime.items() if v)) or "none"
    # numpy's own promise: the baseline it was compiled for is present, and every
    # dispatch target it reports as found is one the CPU supports.
    missing = [f for f in baseline + found if not runtime.get(f, False)]
    assert not missing, f"numpy reports {missing} as usable but the CPU lacks them: {runtime}"


def test_longdouble(metrics: Metrics) -> None:
    """long double is x87 80-bit on x86-64 and IEEE binary128 (software) on riscv64: recorded."""
    info = np.finfo(np.longdouble)
    metrics["longdouble_itemsize"] = int(np.dtype(np.longdouble).itemsize)
    metrics["longdouble_nmant"] = int(info.nmant)
    metrics["longdouble_eps"] = str(info.eps)
    one = np.longdouble(1)
    # finfo must describe the arithmetic actually performed.
    assert one + info.eps != one, "1 + eps rounds to 1"
    assert one + info.eps / 4 == one, "1 + eps/4 does not round to 1"
    assert info.eps == np.longdouble(2) ** -int(info.nmant), f"eps {info.eps} != 2**-{info.nmant}"
