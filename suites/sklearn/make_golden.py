#!/usr/bin/env python3
"""Regenerate every file under golden/ for the scikit-learn suite.

Run on a native x86-64 host with the same scikit-learn, numpy and scipy as the
image (Debian trixie: python3-sklearn 1.4.2, numpy 2.2.4, scipy 1.15.3), with
this folder as the cwd::

    python3 make_golden.py

Writes ``golden/data.npz`` (the data sets), ``golden/fit.npz`` (what each
fitted estimator answers), ``golden/models/<name>.pkl`` (models trained here,
to be served on the target), ``golden/served.npz`` (their answers here) and
``golden/meta.json`` (versions). Deterministic: every estimator has a fixed
random_state and runs single-threaded.
"""

from __future__ import annotations

import json
import pickle
import platform
import sys
from pathlib import Path

import numpy as np
import scipy
import skl_recipes as r
import sklearn
from threadpoolctl import threadpool_limits

OUT = Path(__file__).parent / "golden"


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in sorted(arrays.items())})
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(arrays)} arrays)")


def main() -> None:
    (OUT / "models").mkdir(parents=True, exist_ok=True)
    data = r.make_data()
    save("data", data)

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
    save("fit", fitted)
    save("served", served)

    meta = {
        "generator": "make_golden.py",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pickle_protocol": 4,
    }
    if meta["machine"] not in ("x86_64", "AMD64"):
        print(f"warning: goldens are meant to come from x86-64, this is {meta['machine']}", file=sys.stderr)
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'meta.json'}: {meta}")


if __name__ == "__main__":
    main()
