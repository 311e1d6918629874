"""Fit with fixed seeds on the target; parameters and predictions against the x86-64 golden."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sklearn_recipes as r
from conftest import Metrics, assert_close, assert_same, golden_meta, load_golden, versions_metrics

DATA = load_golden("data")
GOLDEN = load_golden("fit")

# (rtol, atol) per estimator for floating-point outputs; labels, indices and
# node counts are compared exactly. The data are well conditioned, so only
# rounding differs between targets unless an iterative solver stops elsewhere.
TOL: dict[str, tuple[float, float]] = {
    # closed-form least squares (LAPACK gelsd / Cholesky): rounding only
    "linear_regression": (1e-9, 1e-10),
    "ridge": (1e-9, 1e-10),
    # L-BFGS run to tol=1e-10: the optimum is reached to ~1e-8, iterates may differ in the last bits
    "logistic_regression": (1e-6, 1e-7),
    # trees: thresholds are midpoints of data values (exact), impurity sums differ in rounding only
    "decision_tree_classifier": (1e-9, 1e-12),
    "decision_tree_regressor": (1e-9, 1e-12),
    "random_forest_classifier": (1e-9, 1e-12),
    "random_forest_regressor": (1e-9, 1e-12),
    # float32 gradients and hessians in the histograms: ~1e-7 relative per sum, 10 rounds
    "hist_gradient_boosting": (1e-5, 1e-6),
    # means of cluster members and an SVD: rounding only
    "kmeans": (1e-9, 1e-9),
    "pca": (1e-9, 1e-10),
    # libsvm SMO run to tol=1e-8: the dual optimum is reached to ~1e-8
    "svc_pipeline": (1e-6, 1e-6),
    # Euclidean distances and vote fractions: rounding only
    "knn": (1e-12, 1e-12),
    "knn_distances": (1e-12, 1e-12),
    "gaussian_nb": (1e-9, 1e-12),
    "standard_scaler": (1e-12, 1e-12),
    # Adam, 200 epochs on a 16-unit network: rounding differences grow along the path
    "mlp_classifier": (1e-6, 1e-8),
}


#: Estimators whose training chooses between exactly tied splits (two features
#: that separate the same training samples, so the gains are equal) by the last
#: bit of floating-point impurity or gain sums. Those bits differ between
#: x86-64 and riscv64 (node impurities were seen to differ by 1e-14), so another
#: architecture may legitimately build a different but equally good model. On
#: such a target a mismatch is an expected failure with this reason, provided
#: the test score stays within QUALITY_SLACK of the golden one.
TIED_SPLITS = {
    "random_forest_regressor": (
        "a tree picks another of two exactly tied splits: the last bits of the impurity sums differ from "
        "x86-64 (seen on riscv64), so test points between the two thresholds get another value"
    ),
    "hist_gradient_boosting": (
        "the first boosting round picks another of two exactly tied splits: the last bits of the gain sums "
        "differ from x86-64 (seen on riscv64), and later rounds fit a different ensemble"
    ),
}
QUALITY_SLACK = 0.05  # accuracy or R^2 on the 60 test rows


def _score(name: str, predict: np.ndarray) -> float:
    """Accuracy for classifiers, R^2 for regressors, on the test rows."""
    if r.RECIPES[name].task == "c":
        return float(np.mean(predict == DATA["yc_test"]))
    y = DATA["yr_test"]
    return float(1.0 - np.sum((y - predict) ** 2) / np.sum((y - y.mean()) ** 2))


def _compare(name: str, result: dict[str, np.ndarray], metrics: Metrics) -> None:
    rtol, atol = TOL[name]
    for key, value in result.items():
        golden = GOLDEN[f"{name}.{key}"]
        value = np.asarray(value)
        if golden.dtype.kind in "iub":
            assert_same(key, value.astype(golden.dtype), golden, metrics=metrics)
        else:
            assert_close(key, value, golden, rtol=rtol, atol=atol, metrics=metrics)


@pytest.mark.parametrize("name", list(r.RECIPES))
def test_fit_predict(name: str, arch: str, metrics: Metrics) -> None:
    versions_metrics(metrics)
    start = time.perf_counter()
    model = r.fit(name, DATA)
    metrics["fit_ms"] = round((time.perf_counter() - start) * 1000.0, 3)
    result = r.RECIPES[name].outputs(model, r.inputs_for(name, DATA))
    if r.RECIPES[name].task != "u":
        metrics["test_score"] = _score(name, result["predict"])
        metrics["golden_test_score"] = _score(name, GOLDEN[f"{name}.predict"])
    try:
        _compare(name, result, metrics)
    except pytest.fail.Exception as exc:
        if name not in TIED_SPLITS or arch == golden_meta()["machine"]:
            raise
        mismatch = str(exc)
    else:
        return
    gap = abs(metrics["test_score"] - metrics["golden_test_score"])
    assert gap <= QUALITY_SLACK, (
        f"the model differs from the x86-64 golden and its test score is {metrics['test_score']:.4f} "
        f"against {metrics['golden_test_score']:.4f}: worse than tied splits explain. {mismatch}"
    )
    pytest.xfail(f"{TIED_SPLITS[name]} [{arch}]. {mismatch}")
