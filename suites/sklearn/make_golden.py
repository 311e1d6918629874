#!/usr/bin/env python3
"""Regenerate every file under golden/ for the scikit-learn suite.

Run on a native x86-64 host with the same scikit-learn, numpy and scipy as the
image (Debian trixie: python3-sklearn 1.4.2, numpy 2.2.4, scipy 1.15.3):
``leapfrog golden sklearn`` runs it in debian-trixie-amd64; by hand, with this
folder as the cwd::

    PYTHONPATH=../../harness/probe python3 make_golden.py

Writes ``golden/data.npz`` (the data sets), ``golden/fit.npz`` (what each
fitted estimator answers), ``golden/models/<name>.pkl`` (models trained here,
to be served on the target), ``golden/served.npz`` (their answers here) and
``golden/meta.json`` (versions). Deterministic: every estimator has a fixed
random_state and runs single-threaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import scipy
import sklearn
import sklearn_recipes as r
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, warn_unless_x86_64, write_meta
from threadpoolctl import threadpool_limits

OUT = Path(__file__).parent / "golden"


def main() -> None:
    (OUT / "models").mkdir(parents=True, exist_ok=True)
    data = r.make_data()
    save_golden(OUT, "data", data)

    fitted: dict[str, np.ndarray] = {}
    served: dict[str, np.ndarray] = {}
    with threadpool_limits(1):
        for name, recipe in r.RECIPES.items():
            model = r.fit(name, data)
            for key, value in recipe.outputs(model, r.inputs_for(name, data)).items():
                fitted[f"{name}.{key}"] = value
            if name in r.PORTABLE:
                path = OUT / "models" / f"{name}.pkl"
                path.write_bytes(pickle.dumps(model, protocol=4))
                for key, value in r.serve(name, model, data).items():
                    served[f"{name}.{key}"] = value
                print(f"wrote {path} ({path.stat().st_size} bytes)")
    save_golden(OUT, "fit", fitted)
    save_golden(OUT, "served", served)

    meta = {
        "generator": "make_golden.py",
        **generated_on(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pickle_protocol": 4,
    }
    warn_unless_x86_64()
    write_meta(OUT, meta)


if __name__ == "__main__":
    main()
