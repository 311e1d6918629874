"""What the scikit-learn suite fits: one definition shared by the tests and make_golden.py.

Every estimator has a fixed ``random_state`` and explicit hyper-parameters (so
that changed defaults between scikit-learn versions do not change the model),
runs single-threaded where it has a choice, and is fitted on data stored in
``golden/data.npz``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


def make_data() -> Arrays:
    """Synthetic classification and regression sets (generated once by make_golden.py and stored)."""
    rng = np.random.RandomState(7)
    n_train, n_test, n_features = 240, 60, 6
    n = n_train + n_test
    centers = rng.normal(0.0, 2.5, (3, n_features))
    yc = rng.randint(0, 3, n)
    xc = centers[yc] + rng.normal(0.0, 1.6, (n, n_features))
    xc[:, 5] *= 40.0  # one feature on another scale, so that scaling matters
    w = rng.normal(0.0, 1.0, n_features)
    xr = rng.normal(0.0, 1.0, (n, n_features))
    yr = xr @ w + 0.5 * np.sin(3 * xr[:, 0]) + rng.normal(0.0, 0.1, n)
    return {
        "Xc_train": xc[:n_train],
        "yc_train": yc[:n_train],
        "Xc_test": xc[n_train:],
        "yc_test": yc[n_train:],
        "Xr_train": xr[:n_train],
        "yr_train": yr[:n_train],
        "Xr_test": xr[n_train:],
        "yr_test": yr[n_train:],
    }


def canonical_rows(m: np.ndarray) -> np.ndarray:
    """Fix the arbitrary sign of each principal axis: largest-magnitude entry positive.

    (scikit-learn changed its own sign convention for PCA in 1.5.)
    """
    signs = np.sign(m[np.arange(m.shape[0]), np.argmax(np.abs(m), axis=1)])
    return m * signs[:, None]


@dataclass(frozen=True)
class Recipe:
    """An estimator, the data it is fitted on, and the arrays it is judged by."""

    build: Callable[[], Any]
    task: str  # "c" (classification), "r" (regression) or "u" (unsupervised, fitted on Xc)
    outputs: Callable[[Any, np.ndarray], Arrays]


def _linear(model: Any, x: np.ndarray) -> Arrays:
    return {"coef": np.asarray(model.coef_), "intercept": np.asarray(model.intercept_), "predict": model.predict(x)}


def _classifier(model: Any, x: np.ndarray) -> Arrays:
    return {"predict": model.predict(x), "proba": model.predict_proba(x)}


def _tree(model: Any, x: np.ndarray) -> Arrays:
    out = {"predict": model.predict(x), "importances": model.feature_importances_}
    if hasattr(model, "predict_proba"):
        out["proba"] = model.predict_proba(x)
    if hasattr(model, "tree_"):
        out["node_count"] = np.asarray(model.tree_.node_count)
        out["thresholds"] = model.tree_.threshold
    return out


def _build_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Standardised inputs: well conditioned, so L-BFGS reaches the optimum (stops on tol, not on ftol).
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, solver="lbfgs", tol=1e-10, max_iter=2000))


def _logistic(model: Any, x: np.ndarray) -> Arrays:
    return {
        "coef": model[-1].coef_,
        "intercept": model[-1].intercept_,
        "predict": model.predict(x),
        "proba": model.predict_proba(x),
    }


def _kmeans(model: Any, x: np.ndarray) -> Arrays:
    return {
        "labels": model.labels_,
        "centers": model.cluster_centers_,
        "inertia": np.asarray(model.inertia_),
        "predict": model.predict(x),
    }


def _pca(model: Any, x: np.ndarray) -> Arrays:
    comps = model.components_
    signs = np.sign(comps[np.arange(comps.shape[0]), np.argmax(np.abs(comps), axis=1)])
    return {
        "components": canonical_rows(comps),
        "explained_variance_ratio": model.explained_variance_ratio_,
        "singular_values": model.singular_values_,
        "transform": model.transform(x) * signs,
    }


def _svc(model: Any, x: np.ndarray) -> Arrays:
    return {"predict": model.predict(x), "decision": model.decision_function(x)}


def _knn(model: Any, x: np.ndarray) -> Arrays:
    dist, idx = model.kneighbors(x)
    return {"predict": model.predict(x), "proba": model.predict_proba(x), "distances": dist, "indices": idx}


def _scaler(model: Any, x: np.ndarray) -> Arrays:
    return {"mean": model.mean_, "scale": model.scale_, "transform": model.transform(x)}


def _b(name: str, **kw: Any) -> Callable[[], Any]:
    """A builder for ``sklearn.<module>.<Class>(**kw)``, imported when called."""
    module, cls = name.rsplit(".", 1)

    def build() -> Any:
        import importlib

        return getattr(importlib.import_module(f"sklearn.{module}"), cls)(**kw)

    return build


def _build_svc() -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=1.0, kernel="rbf", gamma="scale", tol=1e-8))


def _build_mlp() -> Any:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Adam for exactly 200 epochs (no early stop): the same arithmetic path on every target and
    # version (L-BFGS would stop at version-dependent iterations: scipy 1.15 vs 1.17 differ).
    mlp = MLPClassifier(
        hidden_layer_sizes=(16,),
        solver="adam",
        learning_rate_init=0.01,
        alpha=1e-2,
        max_iter=200,
        tol=0.0,
        n_iter_no_change=10_000,
        random_state=0,
    )
    return make_pipeline(StandardScaler(), mlp)


RECIPES: dict[str, Recipe] = {
    "linear_regression": Recipe(_b("linear_model.LinearRegression"), "r", _linear),
    "ridge": Recipe(_b("linear_model.Ridge", alpha=1.0, solver="cholesky"), "r", _linear),
    "logistic_regression": Recipe(_build_logistic, "c", _logistic),
    "decision_tree_classifier": Recipe(_b("tree.DecisionTreeClassifier", max_depth=6, random_state=0), "c", _tree),
    "decision_tree_regressor": Recipe(_b("tree.DecisionTreeRegressor", max_depth=6, random_state=0), "r", _tree),
    "random_forest_classifier": Recipe(
        _b(
            "ensemble.RandomForestClassifier",
            n_estimators=20,
            max_depth=6,
            max_features="sqrt",
            n_jobs=1,
            random_state=0,
        ),
        "c",
        _tree,
    ),
    "random_forest_regressor": Recipe(
        _b("ensemble.RandomForestRegressor", n_estimators=20, max_depth=6, max_features=1.0, n_jobs=1, random_state=0),
        "r",
        _tree,
    ),
    "hist_gradient_boosting": Recipe(
        _b("ensemble.HistGradientBoostingClassifier", max_iter=10, early_stopping=False, random_state=0),
        "c",
        _classifier,
    ),
    "kmeans": Recipe(_b("cluster.KMeans", n_clusters=3, n_init=4, algorithm="lloyd", random_state=0), "u", _kmeans),
    "pca": Recipe(_b("decomposition.PCA", n_components=3, svd_solver="full"), "u", _pca),
    "svc_pipeline": Recipe(_build_svc, "c", _svc),
    "knn": Recipe(_b("neighbors.KNeighborsClassifier", n_neighbors=5, algorithm="kd_tree"), "c", _classifier),
    "knn_distances": Recipe(_b("neighbors.KNeighborsClassifier", n_neighbors=5, algorithm="brute"), "c", _knn),
    "gaussian_nb": Recipe(_b("naive_bayes.GaussianNB"), "c", _classifier),
    "standard_scaler": Recipe(_b("preprocessing.StandardScaler"), "u", _scaler),
    "mlp_classifier": Recipe(_build_mlp, "c", _classifier),
}

#: Models trained and pickled on x86-64 by make_golden.py, served by the target.
PORTABLE = (
    "logistic_regression",
    "decision_tree_classifier",
    "random_forest_classifier",
    "hist_gradient_boosting",
    "kmeans",
    "pca",
    "svc_pipeline",
    "mlp_classifier",
)


def fit(name: str, data: Arrays) -> Any:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    recipe = RECIPES[name]
    model = recipe.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP stops at max_iter on purpose
        _fit(recipe, model, data)
    return model


def _fit(recipe: Recipe, model: Any, data: Arrays) -> None:
    if recipe.task == "c":
        model.fit(data["Xc_train"], data["yc_train"])
    elif recipe.task == "r":
        model.fit(data["Xr_train"], data["yr_train"])
    else:
        model.fit(data["Xc_train"])


def inputs_for(name: str, data: Arrays) -> np.ndarray:
    return data["Xr_test"] if RECIPES[name].task == "r" else data["Xc_test"]


def serve(name: str, model: Any, data: Arrays) -> Arrays:
    """What a deployed model answers: predictions (and scores) on the test inputs."""
    x = inputs_for(name, data)
    out = {"predict": np.asarray(model.predict(x))} if hasattr(model, "predict") else {}
    if hasattr(model, "predict_proba"):
        out["proba"] = model.predict_proba(x)
    if hasattr(model, "decision_function"):
        out["decision"] = model.decision_function(x)
    if hasattr(model, "transform"):
        out["transform"] = model.transform(x)
    return out
