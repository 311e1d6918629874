"""Models trained and pickled on x86-64, loaded and served on the target.

Deployment trains once (on x86-64) and serves everywhere: the unpickled model
must give the same answers here. scikit-learn supports unpickling only with the
version that pickled the model, so another version is a skip with both
versions recorded.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import sklearn_recipes as r
from conftest import Metrics, assert_close, assert_same, golden_meta, load_golden, timed, versions_metrics

MODELS = Path(__file__).parent / "golden" / "models"
DATA = load_golden("data")
SERVED = load_golden("served")


def _require_same_version(metrics: Metrics) -> None:
    import sklearn

    versions_metrics(metrics)
    made_by = golden_meta()["scikit-learn"]
    if sklearn.__version__ != made_by:
        pytest.skip(
            f"the models were pickled by scikit-learn {made_by} (x86-64 golden); this target has "
            f"scikit-learn {sklearn.__version__}, and scikit-learn only supports unpickling with the same version"
        )


@pytest.mark.parametrize("name", r.PORTABLE)
def test_serve_pickled_model(name: str, bench_repeats: int, metrics: Metrics) -> None:
    _require_same_version(metrics)
    blob = (MODELS / f"{name}.pkl").read_bytes()
    metrics["pickle_bytes"] = len(blob)
    model = pickle.loads(blob)
    result = r.serve(name, model, DATA)
    expected = {k.split(".", 1)[1]: v for k, v in SERVED.items() if k.startswith(f"{name}.")}
    assert sorted(result) == sorted(expected), f"served outputs {sorted(result)} vs golden {sorted(expected)}"
    for key, value in result.items():
        golden = expected[key]
        if golden.dtype.kind in "iub":
            assert_same(key, np.asarray(value).astype(golden.dtype), golden, metrics=metrics)
        else:
            # Same model, same inputs: only this target's BLAS/libm rounding may differ.
            assert_close(key, value, golden, rtol=1e-10, atol=1e-12, metrics=metrics)
    # Latency of answering the 60 test rows (predict plus scores), as a server would.
    median, p90 = timed(lambda: r.serve(name, model, DATA), bench_repeats)
    metrics["serve_median_ms"] = round(median, 4)
    metrics["serve_p90_ms"] = round(p90, 4)


def test_pickle_roundtrip_on_target(metrics: Metrics) -> None:
    """A model fitted and pickled here loads back bit-identical answers (no version question)."""
    mismatched = []
    for name in r.PORTABLE:
        model = r.fit(name, DATA)
        before = r.serve(name, model, DATA)
        after = r.serve(name, pickle.loads(pickle.dumps(model, protocol=4)), DATA)
        for key, value in before.items():
            if not np.array_equal(value, after[key]):
                mismatched.append(f"{name}.{key}")
    metrics["models"] = len(r.PORTABLE)
    metrics["mismatched_outputs"] = len(mismatched)
    assert not mismatched, f"answers changed after a pickle round trip: {mismatched}"
