"""What the numpy suite computes: one definition shared by the tests and make_golden.py.

Inputs are built here deterministically (from ``make_inputs``, stored in the
golden files by make_golden.py so that the tests never depend on the RNG they
also test); each recipe maps inputs to the arrays that are compared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Arrays = dict[str, np.ndarray]

INPUT_SEED = 20240601
LINALG_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- canonical forms


def canonical_columns(v: np.ndarray) -> np.ndarray:
    """Remove the arbitrary sign/phase of eigen- and singular vectors.

    Each column is scaled by a unit factor that makes its largest-magnitude
    entry real and positive (a vector is only defined up to that factor).
    """
    v = np.asarray(v)
    out = v.copy()
    for j in range(v.shape[-1]):
        col = v[..., j]
        k = int(np.argmax(np.abs(col)))
        pivot = col[k]
        out[..., j] = col * (np.conj(pivot) / np.abs(pivot))
    return out


def eig_order(w: np.ndarray) -> np.ndarray:
    """Order eigenvalues by real part, then imaginary part (LAPACK's order is not specified)."""
    return np.lexsort((np.round(w.imag, 4), np.round(w.real, 4)))


# --------------------------------------------------------------------------- linear algebra


def linalg_inputs(rng: np.random.Generator) -> Arrays:
    n = 8
    b = rng.standard_normal((n, n))
    return {
        "general": rng.standard_normal((n, n)) + 4.0 * np.eye(n),  # well conditioned, complex eigenvalues
        "spd": b @ b.T + n * np.eye(n),
        "rhs": rng.standard_normal((n, 3)),
        "tall": rng.standard_normal((12, 6)),
        "tall_rhs": rng.standard_normal((12, 2)),
        "batch": rng.standard_normal((3, 4, 4)) + 3.0 * np.eye(4),
        "batch_rhs": rng.standard_normal((3, 4, 1)),
    }


def _solve(x: Arrays) -> Arrays:
    return {"x": np.linalg.solve(x["general"], x["rhs"]), "batch": np.linalg.solve(x["batch"], x["batch_rhs"])}


def _inv(x: Arrays) -> Arrays:
    return {"inv": np.linalg.inv(x["general"]), "batch": np.linalg.inv(x["batch"])}


def _det(x: Arrays) -> Arrays:
    sign, logdet = np.linalg.slogdet(x["general"])
    return {"det": np.asarray(np.linalg.det(x["general"])), "sign": np.asarray(sign), "logdet": np.asarray(logdet)}


def _svd(x: Arrays) -> Arrays:
    u, s, vh = np.linalg.svd(x["tall"], full_matrices=False)
    return {"s": s, "u": canonical_columns(u), "v": canonical_columns(vh.T)}


def _eig(x: Arrays) -> Arrays:
    w, v = np.linalg.eig(x["general"])
    order = eig_order(w)
    w = w.astype(np.result_type(w, np.complex64))  # all-real spectra come back as a real array
    v = v.astype(w.dtype)
    return {"w": w[order], "v": canonical_columns(v[:, order])}


def _eigh(x: Arrays) -> Arrays:
    w, v = np.linalg.eigh(x["spd"])
    return {"w": w, "v": canonical_columns(v), "w_only": np.linalg.eigvalsh(x["spd"])}


def _cholesky(x: Arrays) -> Arrays:
    return {"l": np.linalg.cholesky(x["spd"])}


def _qr(x: Arrays) -> Arrays:
    q, r = np.linalg.qr(x["tall"])
    d = np.sign(np.diag(r))  # Householder QR is unique once diag(R) > 0
    return {"q": q * d, "r": r * d[:, None]}


def _lstsq(x: Arrays) -> Arrays:
    sol, resid, rank, sv = np.linalg.lstsq(x["tall"], x["tall_rhs"], rcond=None)
    return {"x": sol, "residuals": resid, "rank": np.asarray(rank), "sv": sv}


def _pinv_norms(x: Arrays) -> Arrays:
    a = x["tall"]
    return {
        "pinv": np.linalg.pinv(a),
        "norms": np.array([np.linalg.norm(a), np.linalg.norm(a, 2), np.linalg.norm(a, 1), np.linalg.norm(a, -2)]),
        "cond": np.asarray(np.linalg.cond(x["general"])),
        "rank": np.asarray(np.linalg.matrix_rank(a)),
    }


LINALG: dict[str, Callable[[Arrays], Arrays]] = {
    "solve": _solve,
    "inv": _inv,
    "det": _det,
    "svd": _svd,
    "eig": _eig,
    "eigh": _eigh,
    "cholesky": _cholesky,
    "qr": _qr,
    "lstsq": _lstsq,
    "pinv_norms": _pinv_norms,
}


def linalg_cast(x: Arrays, dtype: str) -> Arrays:
    return {k: v.astype(dtype) for k, v in x.items()}


# --------------------------------------------------------------------------- matmul / einsum

MATMUL_DTYPES = (
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint64",
)
MATMUL_SHAPE = (17, 23, 19)  # odd sizes reach the remainder loops of blocked kernels


def matmul_inputs(rng: np.random.Generator) -> Arrays:
    m, k, n = MATMUL_SHAPE
    out: Arrays = {}
    for name in MATMUL_DTYPES:
        dt = np.dtype(name)
        if dt.kind == "f":
            a, b = rng.uniform(-1, 1, (m, k)), rng.uniform(-1, 1, (k, n))
        elif dt.kind == "c":
            a = rng.uniform(-1, 1, (m, k)) + 1j * rng.uniform(-1, 1, (m, k))
            b = rng.uniform(-1, 1, (k, n)) + 1j * rng.uniform(-1, 1, (k, n))
        else:  # the whole range, so that products and sums wrap around
            info = np.iinfo(dt)
            a = rng.integers(info.min, info.max, (m, k), dtype=dt, endpoint=True)
            b = rng.integers(info.min, info.max, (k, n), dtype=dt, endpoint=True)
        out[f"{name}.a"] = a.astype(dt)
        out[f"{name}.b"] = b.astype(dt)
    return out


def matmul(x: Arrays, dtype: str) -> Arrays:
    a, b = x[f"{dtype}.a"], x[f"{dtype}.b"]
    return {
        "matmul": a @ b,
        "dot": np.dot(a, b),
        "batched": np.matmul(np.stack([a, a[::-1]]), b),
        "vec": a @ b[:, 0],
        "transposed": a.T.copy().T @ b,  # a non-contiguous operand
    }


EINSUM_EXPRS = {
    "matmul": ("ij,jk->ik", 2),
    "batch_matmul": ("bij,bjk->bik", 2),
    "trace": ("ii->", 1),
    "diag": ("ii->i", 1),
    "outer": ("i,j->ij", 2),
    "contract3": ("ijk,jl,k->il", 3),
    "sum_all": ("ijk->", 1),
}
EINSUM_DTYPES = ("float32", "float64", "int32", "int64")


def einsum_inputs(rng: np.random.Generator) -> Arrays:
    shapes = {
        "matmul": [(5, 7), (7, 6)],
        "batch_matmul": [(3, 4, 5), (3, 5, 2)],
        "trace": [(9, 9)],
        "diag": [(9, 9)],
        "outer": [(7,), (5,)],
        "contract3": [(4, 5, 6), (5, 3), (6,)],
        "sum_all": [(4, 5, 6)],
    }
    out: Arrays = {}
    for expr, shape_list in shapes.items():
        for i, shape in enumerate(shape_list):
            out[f"{expr}.{i}"] = rng.integers(-9, 10, shape).astype(np.float64) / 4.0
    return out


def einsum(x: Arrays, expr: str, dtype: str, optimize: bool) -> np.ndarray:
    spec, nargs = EINSUM_EXPRS[expr]
    ops = [x[f"{expr}.{i}"] for i in range(nargs)]
    scale = 4 if np.dtype(dtype).kind in "iu" else 1  # integer types get the same values times 4
    ops = [(o * scale).astype(dtype) for o in ops]
    return np.asarray(np.einsum(spec, *ops, optimize=optimize))


BENCH_N = 128


def bench_operands(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Operands with small dyadic entries: every product and sum is exact in float32 and float64."""
    i, j = np.indices((BENCH_N, BENCH_N))
    a = ((i * 7 + j * 3) % 11 - 5) / 4.0
    b = ((i * 5 + j * 11) % 13 - 6) / 4.0
    return a.astype(dtype), b.astype(dtype)


# --------------------------------------------------------------------------- FFT


def fft_inputs(rng: np.random.Generator) -> Arrays:
    def cplx(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    return {
        "c64": cplx(64),
        "c60": cplx(60),
        "c37": cplx(37),  # a prime length: Bluestein's algorithm
        "r64": rng.standard_normal(64),
        "r45": rng.standard_normal(45),
        "c2d": cplx(8, 12),
        "r3d": rng.standard_normal((4, 6, 5)),
        "h33": cplx(17),
    }


FFT_DTYPES = ("float32", "float64")


def _c(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(np.complex64 if dtype == "float32" else np.complex128)


FFT: dict[str, Callable[[Arrays, str], Arrays]] = {
    "fft": lambda x, d: {f"n{n}": np.fft.fft(_c(x[f"c{n}"], d)) for n in (64, 60, 37)},
    "ifft": lambda x, d: {f"n{n}": np.fft.ifft(_c(x[f"c{n}"], d), norm="ortho") for n in (64, 60, 37)},
    "rfft": lambda x, d: {
        "n64": np.fft.rfft(x["r64"].astype(d)),
        "n45": np.fft.rfft(x["r45"].astype(d)),
        "padded": np.fft.rfft(x["r45"].astype(d), n=50),
    },
    "irfft": lambda x, d: {"n64": np.fft.irfft(_c(x["c64"][:33], d)), "n45": np.fft.irfft(_c(x["c37"][:23], d), 45)},
    "fft2": lambda x, d: {"fft2": np.fft.fft2(_c(x["c2d"], d)), "ifft2": np.fft.ifft2(_c(x["c2d"], d))},
    "fftn": lambda x, d: {
        "rfftn": np.fft.rfftn(x["r3d"].astype(d)),
        "fftn_axes": np.fft.fftn(x["r3d"].astype(d), axes=(0, 2)),
    },
    "hfft": lambda x, d: {"hfft": np.fft.hfft(_c(x["h33"], d)), "ihfft": np.fft.ihfft(x["r64"].astype(d))},
    "helpers": lambda x, d: {
        "fftfreq": np.fft.fftfreq(10, 0.1),
        "rfftfreq": np.fft.rfftfreq(9, 0.5),
        "shift": np.fft.fftshift(np.fft.fft(_c(x["c60"], d))),
    },
}


# --------------------------------------------------------------------------- reductions with NaN


def reduction_inputs(rng: np.random.Generator) -> Arrays:
    x = rng.standard_normal((6, 9)) * 10.0
    x[0, [1, 4]] = np.nan
    x[2, 0] = np.nan
    x[4, :] = np.nan  # an all-NaN row
    x[[1, 3, 5], 8] = np.nan
    x[5, 2] = -0.0
    y = x.copy()
    y[4, :] = rng.standard_normal(9)  # no all-NaN slice (nanarg* raise on those)
    return {"x": x, "y": y}


def long_vector() -> np.ndarray:
    """100003 values in [0, 1) from integer hashing: exact, no RNG or libm involved, not stored."""
    i = np.arange(100_003, dtype=np.uint64)
    return ((i * np.uint64(2654435761)) % np.uint64(2**32)).astype(np.float64) / 2.0**32


REDUCTION_DTYPES = ("float32", "float64")


def _axes(fn: Callable[..., np.ndarray], a: np.ndarray, **kw: object) -> Arrays:
    return {f"axis{ax}": np.asarray(fn(a, axis=ax, **kw)) for ax in (None, 0, 1)}


REDUCTIONS: dict[str, Callable[[Arrays, str], Arrays]] = {
    "sum": lambda x, d: _axes(np.sum, x["x"].astype(d)),
    "max": lambda x, d: _axes(np.max, x["x"].astype(d)),
    "min": lambda x, d: _axes(np.min, x["x"].astype(d)),
    "mean": lambda x, d: _axes(np.mean, x["x"].astype(d)),
    "nansum": lambda x, d: _axes(np.nansum, x["x"].astype(d)),
    "nanprod": lambda x, d: _axes(np.nanprod, x["x"].astype(d) / 10),
    "nanmean": lambda x, d: _axes(np.nanmean, x["x"].astype(d)),
    "nanstd": lambda x, d: _axes(np.nanstd, x["x"].astype(d), ddof=1),
    "nanvar": lambda x, d: _axes(np.nanvar, x["x"].astype(d)),
    "nanmin": lambda x, d: _axes(np.nanmin, x["x"].astype(d)),
    "nanmax": lambda x, d: _axes(np.nanmax, x["x"].astype(d)),
    "nanargmin": lambda x, d: _axes(np.nanargmin, x["y"].astype(d)),
    "nanargmax": lambda x, d: _axes(np.nanargmax, x["y"].astype(d)),
    "nanmedian": lambda x, d: _axes(np.nanmedian, x["x"].astype(d)),
    "nanpercentile": lambda x, d: _axes(np.nanpercentile, x["x"].astype(d), q=[10, 50, 90]),
    "nancumsum": lambda x, d: _axes(np.nancumsum, x["x"].astype(d)),
    "fmax_fmin": lambda x, d: {
        "fmax": np.fmax.reduce(x["x"].astype(d), axis=1),
        "fmin": np.fmin.reduce(x["x"].astype(d), axis=0),
        "maximum": np.maximum(x["x"].astype(d), x["y"].astype(d)),
    },
    "long_sum": lambda x, d: {
        "sum": np.asarray(np.sum(long_vector().astype(d))),
        "cumsum_last": np.asarray(np.cumsum(long_vector().astype(d))[-1]),
        "mean": np.asarray(np.mean(long_vector().astype(d))),
        "std": np.asarray(np.std(long_vector().astype(d))),
    },
}


# --------------------------------------------------------------------------- casting

CAST_TARGETS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
CAST_SOURCES = ("float32", "float64")
#: Float values cast to every integer type. Whether a value is in range is
#: decided per target type; out-of-range, NaN and infinite values are undefined
#: behaviour in C and are recorded, not asserted.
CAST_VALUES = np.array(
    [
        0.0, -0.0, 1.5, -1.5, 2.999, -2.999, 127.0, 127.9, -128.0, -128.9, 128.0, -129.0, 255.0, 256.0,
        300.5, -1.0, 32767.0, 32768.0, -32769.0, 65535.0, 65536.0, 2147483520.0, 2147483648.0,
        -2147483904.0, 4294967296.0, 9.2233715e18, 9.223372036854775807e18, -9.223372036854775808e18,
        1.8446744073709552e19, 1e20, -1e20, np.inf, -np.inf, np.nan,
    ]
)  # fmt: skip


def cast_defined(values: np.ndarray, target: str) -> np.ndarray:
    """Which entries of ``values`` C and numpy define for a cast to ``target``.

    Those whose truncated value lies in the target's range; ``hi`` is a power
    of two, so the bounds are exact in float64.
    """
    info = np.iinfo(target)
    lo, hi = float(info.min), float(info.max + 1)
    with np.errstate(invalid="ignore"):
        t = np.trunc(values.astype(np.float64))
        return np.isfinite(t) & (t >= lo) & (t < hi)


def defined_casts() -> Arrays:
    """Casts whose result IEEE 754 and numpy define exactly (round to nearest even, overflow to inf)."""
    f64 = np.array([1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24, 3.4028235e38, 3.5e38, 1e-40, 1e-46, -1e-46, 65504.0,
                    65520.0, 6e-8, 2.0**-25, np.nan, -np.inf, 0.1, 1 / 3])  # fmt: skip
    i64 = np.array([2**53 + 1, 2**53 + 3, -(2**63), 2**63 - 1, 16777217, -16777219], dtype=np.int64)
    u64 = np.array([2**64 - 1, 2**63 + 1025, 2**53 + 1], dtype=np.uint64)
    return {
        "f64_to_f32": f64.astype(np.float32),
        "f64_to_f16": f64.astype(np.float16),
        "f32_to_f16": f64.astype(np.float32).astype(np.float16),
        "f16_to_f64": f64.astype(np.float16).astype(np.float64),
        "i64_to_f64": i64.astype(np.float64),
        "i64_to_f32": i64.astype(np.float32),
        "u64_to_f64": u64.astype(np.float64),
        "u64_to_f32": u64.astype(np.float32),
        "f64_to_bool": f64.astype(bool),
        "rint": np.rint(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.5000001])),
        "round2": np.round(np.array([1.005, 2.675, 0.125, -0.375]), 2),
        "i8_wrap": (np.arange(120, 136, dtype=np.int64)).astype(np.int8),
        "u8_from_neg_int": np.array([-1, -256, 257], dtype=np.int64).astype(np.uint8),
    }


# --------------------------------------------------------------------------- random streams

SEED = 12345
RAW_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def raw_stream(name: str) -> np.ndarray:
    bitgen = getattr(np.random, name)(SEED)
    return np.asarray(bitgen.random_raw(512), dtype=np.uint64)


def _perm(g: np.random.Generator) -> np.ndarray:
    a = np.arange(100)
    g.shuffle(a)
    return np.stack([a, g.permutation(100)])


N = 1000
RANDOM: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "integers": lambda g: g.integers(0, 1000, N),
    "integers_int8": lambda g: g.integers(-128, 127, N, dtype=np.int8, endpoint=True),
    "integers_uint64": lambda g: g.integers(0, 2**64 - 1, N, dtype=np.uint64, endpoint=True),
    "random_f64": lambda g: g.random(N),
    "random_f32": lambda g: g.random(N, dtype=np.float32),
    "uniform": lambda g: g.uniform(-3.0, 5.0, N),
    "standard_normal_f64": lambda g: g.standard_normal(N),
    "standard_normal_f32": lambda g: g.standard_normal(N, dtype=np.float32),
    "normal": lambda g: g.normal(1.5, 2.0, N),
    "exponential": lambda g: g.exponential(2.0, N),
    "standard_exponential_f32": lambda g: g.standard_exponential(N, dtype=np.float32),
    "gamma": lambda g: g.gamma(0.7, 2.0, N),
    "beta": lambda g: g.beta(2.0, 5.0, N),
    "poisson": lambda g: np.concatenate([g.poisson(3.0, N // 2), g.poisson(40.0, N // 2)]),
    "binomial": lambda g: np.concatenate([g.binomial(10, 0.3, N // 2), g.binomial(1000, 0.6, N // 2)]),
    "choice": lambda g: np.concatenate(
        [g.choice(50, 30, replace=False), g.choice(7, 100, p=np.linspace(1, 7, 7) / 28)]
    ),
    "permutation_shuffle": _perm,
    "multivariate_normal": lambda g: g.multivariate_normal([0.0, 1.0], [[2.0, 0.5], [0.5, 1.0]], 200),
    "dirichlet": lambda g: g.dirichlet([0.5, 1.0, 2.0], 200),
    "spawned": lambda g: np.concatenate([child.random(64) for child in g.spawn(3)]),
}

#: Recipes that go through LAPACK (SVD), so only agree to rounding, not bit for bit.
RANDOM_WITH_LAPACK = frozenset({"multivariate_normal"})


def legacy_streams() -> Arrays:
    rs = np.random.RandomState(SEED)
    return {
        "rand": rs.rand(200),
        "randn": rs.randn(200),
        "randint": rs.randint(0, 2**31 - 1, 200),
        "gamma": rs.gamma(1.5, size=200),
        "seedseq": np.random.SeedSequence(SEED).generate_state(16, np.uint64),
    }
